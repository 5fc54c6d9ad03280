"""Contradictions between the parts of a policy, each located by its field path.

Each check reads the parts that validated on their own, so a file with a typo in one
rule still gets every contradiction elsewhere reported in the same run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, TypeVar

import pydantic

from policies._budgets import Budget
from policies._datasets import Column, Dataset
from policies._header import Duties, PolicyHeader
from policies._privacy import epsilon_at, rho_for_epsilon
from policies._rules import Permission, Prohibition, Rule
from policies._salvage import salvage

FieldPath: TypeAlias = tuple[str | int, ...]
RuleKind: TypeAlias = Literal["permissions", "prohibitions"]

_M = TypeVar("_M", bound=pydantic.BaseModel)


@dataclass(frozen=True)
class Issue:
    """One contradiction: the field at fault and what is wrong.

    Parameters
    ----------
    loc : FieldPath
        The field at fault, e.g. ``("permissions", 0, "columns", 2)``.
    message : str
        What is wrong and what was expected.
    at : FieldPath | None
        Where to point when ``loc`` is not written in the file (a missing table).
    """

    loc: FieldPath
    message: str
    at: FieldPath | None = field(default=None)


#: Relative disagreement tolerated between max_epsilon and max_rho.
_CAP_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Parts:
    """The parts of a policy that are valid on their own.

    Parameters
    ----------
    header : PolicyHeader | None
        ``[policy]``, or ``None`` if it is invalid.
    datasets : Mapping[str, Dataset | None]
        Every declared dataset; ``None`` for one that is invalid.
    permissions, prohibitions, budgets : Sequence[tuple[int, ...]]
        The valid rules with their index in the file.
    duties : Duties | None
        ``[duties]`` (defaults when absent), or ``None`` if it is invalid.
    declares_budgets : bool
        Whether the file declares any budget, valid or not.
    declares_duties : bool
        Whether the file has a ``[duties]`` table.
    shaky_columns : Mapping[str, frozenset[str]]
        Per dataset, the columns declared but invalid: neither declared nor absent.
    """

    header: PolicyHeader | None
    datasets: Mapping[str, Dataset | None]
    permissions: Sequence[tuple[int, Permission]]
    prohibitions: Sequence[tuple[int, Prohibition]]
    budgets: Sequence[tuple[int, Budget]]
    duties: Duties | None
    declares_budgets: bool
    declares_duties: bool = True
    shaky_columns: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        header: PolicyHeader,
        datasets: Mapping[str, Dataset],
        permissions: Sequence[Permission],
        prohibitions: Sequence[Prohibition],
        budgets: Sequence[Budget],
        duties: Duties,
    ) -> Parts:
        """Return the parts of a policy whose every part is valid."""
        return cls(
            header,
            dict(datasets),
            list(enumerate(permissions)),
            list(enumerate(prohibitions)),
            list(enumerate(budgets)),
            duties,
            bool(budgets),
        )

    @classmethod
    def salvage(cls, data: Mapping[str, Any]) -> Parts:
        """Salvage each part of raw ``data``: what is valid, with neutral stand-ins."""
        raw_datasets = data.get("datasets")
        datasets: dict[str, Dataset | None] = {}
        shaky: dict[str, frozenset[str]] = {}
        if isinstance(raw_datasets, dict):
            for name, raw in raw_datasets.items():
                dataset = salvage(Dataset, raw)
                datasets[str(name)] = dataset
                raw_columns = raw.get("columns") if isinstance(raw, dict) else None
                if dataset is not None and isinstance(raw_columns, dict):
                    shaky[str(name)] = frozenset(
                        str(c) for c in raw_columns if c not in dataset.columns
                    )
        return cls(
            salvage(PolicyHeader, data.get("policy")),
            datasets,
            list(_salvage_items(Permission, data.get("permissions"))),
            list(_salvage_items(Prohibition, data.get("prohibitions"))),
            list(_salvage_items(Budget, data.get("budgets"))),
            salvage(Duties, data.get("duties", {})),
            bool(data.get("budgets")),
            "duties" in data,
            shaky,
        )


def _salvage_items(model: type[_M], raw: object) -> Iterator[tuple[int, _M]]:
    if not isinstance(raw, list):
        return
    for index, item in enumerate(raw):
        value = salvage(model, item)
        if value is not None:
            yield index, value


def contradictions(parts: Parts) -> list[Issue]:
    """Return every contradiction between the valid parts of a policy."""
    issues: list[Issue] = []
    issues += _header(parts)
    for name, dataset in parts.datasets.items():
        if dataset is not None:
            issues += _dataset(name, dataset)
    for index, permission in parts.permissions:
        issues += _rule(parts, "permissions", index, permission)
        issues += _permission(parts, index, permission)
    for index, prohibition in parts.prohibitions:
        issues += _rule(parts, "prohibitions", index, prohibition)
    issues += _uids(parts)
    for index, budget in parts.budgets:
        issues += _budget(index, budget)
    issues += _duties(parts)
    return issues


def _header(parts: Parts) -> Iterator[Issue]:
    header = parts.header
    if header is None:
        return
    if (
        header.valid_from is not None
        and header.valid_until is not None
        and header.valid_until <= header.valid_from
    ):
        yield Issue(
            ("policy", "valid_until"),
            f"expected a date-time later than valid_from ({header.valid_from.isoformat()})",
        )


def _dataset(name: str, dataset: Dataset) -> Iterator[Issue]:
    for column_name, column in dataset.columns.items():
        yield from _column(("datasets", name, "columns", column_name), column)


def _column(path: FieldPath, column: Column) -> Iterator[Issue]:
    if column.bounds is not None:
        lower, upper = column.bounds
        if not column.numeric:
            yield Issue(
                (*path, "bounds"),
                f"bounds are only for integer and float columns; this one is {column.type}",
            )
        elif lower > upper:
            yield Issue(
                (*path, "bounds"),
                f"expected [lower, upper] with lower <= upper (got [{lower:g}, {upper:g}])",
            )
        elif column.type == "integer" and not (
            float(lower).is_integer() and float(upper).is_integer()
        ):
            yield Issue(
                (*path, "bounds"), "expected whole numbers for an integer column"
            )
    if column.categories is not None:
        if column.type != "category":
            yield Issue(
                (*path, "categories"),
                f"categories are only for category columns; this one is {column.type}",
            )
        seen: set[str] = set()
        for index, value in enumerate(column.categories):
            if value in seen:
                yield Issue((*path, "categories", index), f"{value!r} is listed twice")
            seen.add(value)


def _scope(parts: Parts, rule: Rule) -> list[tuple[str, Dataset]] | None:
    """Return the declared datasets a rule covers; ``None`` if one of them is invalid."""
    names = rule.datasets or list(parts.datasets)
    scope = []
    for name in names:
        if name not in parts.datasets:
            continue
        dataset = parts.datasets[name]
        if dataset is None:
            return None
        scope.append((name, dataset))
    return scope


def _rule(parts: Parts, kind: RuleKind, index: int, rule: Rule) -> Iterator[Issue]:
    base: FieldPath = (kind, index)
    for k, name in enumerate(rule.datasets):
        if name not in parts.datasets:
            yield Issue(
                (*base, "datasets", k),
                f"dataset {name!r} is not declared under [datasets]",
            )
    granting = kind == "permissions"
    scope = _scope(parts, rule)
    if not scope or (granting and not rule.datasets):
        return  # a dataset is invalid, or the rule's datasets are: nothing to check
    shaky = set().union(*(parts.shaky_columns.get(name, ()) for name, _ in scope))
    id_column = parts.header.privacy_unit.id_column if parts.header else None
    for listed in ("columns", "group_by"):
        for k, column in enumerate(getattr(rule, listed)):
            path = (*base, listed, k)
            if column in shaky:
                continue
            if granting:
                yield from _granted_column(path, column, scope, id_column)
            elif not any(
                column in ds.columns
                or column in ds.never_release
                or column == id_column
                for _, ds in scope
            ):
                yield Issue(path, _undeclared(column, scope))


def _granted_column(
    path: FieldPath,
    column: str,
    scope: list[tuple[str, Dataset]],
    id_column: str | None,
) -> Iterator[Issue]:
    if column == id_column:
        yield Issue(
            path,
            f"column {column!r} is the privacy unit's id_column, which is never released",
        )
        return
    for name, dataset in scope:
        if column in dataset.never_release:
            yield Issue(
                path,
                f"column {column!r} is in datasets.{name}.never_release; "
                "a permission cannot grant it",
            )
            return
    declared = [
        (name, ds.columns[column]) for name, ds in scope if column in ds.columns
    ]
    if not declared:
        yield Issue(path, _undeclared(column, scope))
        return
    if path[2] == "group_by":
        for name, spec in declared:
            if not spec.groupable:
                kind = spec.type + (
                    " without categories" if spec.type == "category" else ""
                )
                yield Issue(
                    path,
                    f"column {column!r} of dataset {name!r} is {kind}; grouping needs a "
                    "category column with categories, or a boolean column",
                )
                return


def _undeclared(column: str, scope: list[tuple[str, Dataset]]) -> str:
    names = ", ".join(name for name, _ in scope)
    return f"column {column!r} is not declared in dataset {names}"


def _permission(parts: Parts, index: int, rule: Permission) -> Iterator[Issue]:
    base: FieldPath = ("permissions", index)
    if rule.columns:
        for k, column in enumerate(rule.group_by):
            if column not in rule.columns:
                yield Issue(
                    (*base, "group_by", k),
                    f"column {column!r} is not among the rule's columns, so no request "
                    "could group by it",
                )
    header = parts.header
    if header is not None:
        delta = header.delta
        if rule.max_epsilon is not None and rule.max_rho is not None:
            implied = rho_for_epsilon(rule.max_epsilon, delta)
            if abs(implied / rule.max_rho - 1.0) > _CAP_TOLERANCE:
                yield Issue(
                    (*base, "max_epsilon"),
                    f"max_epsilon {rule.max_epsilon:g} and max_rho {rule.max_rho:g} "
                    f"disagree at delta {delta:g}: max_rho {rule.max_rho:g} is epsilon "
                    f"{epsilon_at(rule.max_rho, delta):.4g}; set only one of them",
                )
        cap = rule.rho_cap(delta)
        if rule.default_rho is not None and cap is not None and rule.default_rho > cap:
            yield Issue(
                (*base, "default_rho"),
                f"default_rho {rule.default_rho:g} exceeds the rule's cap of rho {cap:.6g}",
            )
        if (
            rule.expires is not None
            and header.valid_from is not None
            and rule.expires <= header.valid_from
        ):
            yield Issue(
                (*base, "expires"),
                "the permission expires before the policy is valid "
                f"(valid_from {header.valid_from.isoformat()})",
            )
    trains = "train" in rule.actions
    if trains and not rule.apps:
        yield Issue(
            (*base, "actions", rule.actions.index("train")),
            "action train needs the allowed apps, in apps",
        )
    if rule.apps and not trains:
        yield Issue(
            (*base, "apps"), "apps are only for action train; add train to actions"
        )
    for k, app in enumerate(rule.apps):
        if app.digest is None:
            yield Issue(
                (*base, "apps", k, "digest"),
                "required field is missing: a permission pins each app's code digest, "
                '"sha256:<64 hex digits>"',
            )
    if rule.max_rounds is not None and not trains:
        yield Issue((*base, "max_rounds"), "max_rounds is only for action train")


def _uids(parts: Parts) -> Iterator[Issue]:
    seen: dict[str, str] = {}
    entries: list[tuple[str, int, str]] = [
        *(("permissions", i, r.uid) for i, r in parts.permissions),
        *(("prohibitions", i, r.uid) for i, r in parts.prohibitions),
        *(("budgets", i, b.uid) for i, b in parts.budgets),
    ]
    for kind, index, uid in entries:
        if not uid:
            continue
        if uid in seen:
            yield Issue(
                (kind, index, "uid"), f"uid {uid!r} is already used by {seen[uid]}"
            )
        else:
            seen[uid] = f"{kind}[{index}]"


def _budget(index: int, budget: Budget) -> Iterator[Issue]:
    base: FieldPath = ("budgets", index)
    per_period, days = budget.rho_per_period, budget.period_days
    if per_period is None and days is None and budget.rho_lifetime is None:
        yield Issue(
            base,
            "a budget needs a limit: rho_per_period with period_days, rho_lifetime, "
            "or both",
        )
    if per_period is not None and days is None:
        yield Issue((*base, "rho_per_period"), "rho_per_period needs period_days")
    if days is not None and per_period is None:
        yield Issue((*base, "period_days"), "period_days needs rho_per_period")
    if (
        per_period is not None
        and budget.rho_lifetime is not None
        and per_period > budget.rho_lifetime
    ):
        yield Issue(
            (*base, "rho_per_period"),
            f"rho_per_period {per_period:g} exceeds rho_lifetime {budget.rho_lifetime:g}: "
            "the period limit could never be reached",
        )


def _duties(parts: Parts) -> Iterator[Issue]:
    first_budget: FieldPath = ("budgets", parts.budgets[0][0] if parts.budgets else 0)
    if (
        parts.declares_budgets
        and parts.duties is not None
        and parts.duties.notify is None
    ):
        yield Issue(
            ("duties", "notify"),
            "budgets alert the compliance officer: expected notify = "
            '"mailto:..." under [duties]',
            None if parts.declares_duties else first_budget,
        )
