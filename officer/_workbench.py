"""The workbench: what each page shows, read from the node (sans HTTP).

Every public method makes at least one call to the node, which the node writes to
its decision log as a consultation by the officer; the web application only turns
the results into HTML.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any

import pki
from policies.auditlog import (
    RecordFilter,
    StoredCheckpoint,
    StoredRecord,
    export_log,
    record_payload,
)

from ._alerts import BudgetAlert, DenialBurst, budget_alerts, denial_bursts
from ._chart import ChartSeries, consumption_series, render_chart, value_at
from ._errors import NotFound
from ._index import (
    AUDIT_METHOD_PREFIX,
    IntArray,
    LogIndex,
    PolicyRun,
    RequesterActivity,
    from_micros,
    seq_pages,
)
from ._integrity import (
    CheckpointCheck,
    InclusionCheck,
    LogVerification,
    PinnedKey,
    Verifier,
    check_checkpoint,
    check_consistency,
    check_inclusion,
)
from ._link import NodeLink
from ._policyview import PolicyArchive, PolicyVersion, policy_diff
from ._query import LogFilter, LogQuery
from ._views import BudgetLine, BudgetReport

__all__ = ["Workbench"]

Clock = Callable[[], datetime]

#: Requesters per page of the budgets overview (one ``GetBudget`` call each).
BUDGET_PAGE = 20
#: Most requesters whose budgets the alerts page asks the node for.
ALERT_REQUESTERS = 200


@dataclass(frozen=True)
class LogRow:
    """One record on the log page (from the node's answer)."""

    seq: int
    time: datetime
    payload: dict[str, Any]

    @property
    def method(self) -> str:
        """The RPC name, without its service."""
        return str(self.payload.get("method", "")).rsplit("/", 1)[-1]


@dataclass(frozen=True)
class LogPage:
    """The log page: one page of records, the filters and where it stands."""

    query: LogQuery
    rows: list[LogRow]
    total: int
    pages: int
    page: int
    log_size: int
    node_calls: int
    missing: list[int]
    suggestions: dict[str, list[str]]


@dataclass(frozen=True)
class RecordView:
    """One record in full, with its inclusion proof and what the check found."""

    seq: int
    payload: dict[str, Any]
    canonical_json: str
    chain_hash: str
    signed: CheckpointCheck | None
    proof_hashes: list[str]
    inclusion: InclusionCheck | None
    pending: bool
    related: list[tuple[int, str, str]]


@dataclass(frozen=True)
class BudgetRow:
    """A requester on the budgets overview."""

    activity: RequesterActivity
    report: BudgetReport | None
    error: str = ""


@dataclass(frozen=True)
class BudgetChart:
    """One budget of a requester: the ledger's figures, the log's, and the chart."""

    line: BudgetLine
    series: ChartSeries
    svg: str
    log_value: float

    @property
    def agrees(self) -> bool:
        """Whether the log-derived figure matches the ledger's (to 1e-9 rho)."""
        return abs(self.log_value - self.line.rho_spent) <= 1e-9 + 1e-9 * abs(
            self.line.rho_spent
        )


@dataclass(frozen=True)
class RequesterBudgets:
    """A requester's budgets, charts and recent charges."""

    requester: str
    report: BudgetReport
    charts: list[BudgetChart]
    charges: list[tuple[datetime, float, int]]
    start: datetime
    end: datetime
    days: int


@dataclass(frozen=True)
class PolicyPage:
    """The policy page: current file, the node's digest, history and a diff."""

    current: PolicyVersion
    shown: PolicyVersion
    node_digest: str
    runs: list[PolicyRun]
    archived: set[str]
    diff: list[str]
    previous: str


@dataclass(frozen=True)
class IntegrityPage:
    """The integrity panel."""

    latest: CheckpointCheck | None
    pinned: PinnedKey
    pinned_source: str
    stated_key: str
    saved_size: int | None
    consistent: bool | None
    verification: LogVerification | None
    conflicts: list[str]
    index_size: int
    checkpoints: int


@dataclass(frozen=True)
class AlertsPage:
    """Alerts: budgets, bursts of denials, integrity, policy."""

    budgets: list[BudgetAlert]
    bursts: list[DenialBurst]
    verification: LogVerification | None
    conflicts: list[str]
    policy_mismatch: tuple[str, str] | None
    requesters_checked: int
    requesters_total: int
    errors: list[str]
    burst_threshold: int
    burst_window: timedelta


@dataclass(frozen=True)
class ReportData:
    """Everything a period report shows; rendered by :func:`officer.render_report`."""

    generated_at: datetime
    officer: str
    origin: str
    pinned_key: str
    since: datetime
    until: datetime
    records: int
    by_decision: list[tuple[str, int]]
    by_operation: list[tuple[str, int]]
    by_requester: list[tuple[str, int]]
    by_purpose: list[tuple[str, int]]
    by_dataset: list[tuple[str, int]]
    rho_by_requester: list[tuple[str, float]]
    denials: list[dict[str, Any]]
    bursts: list[DenialBurst]
    budget_alerts: list[BudgetAlert]
    policy_runs: list[PolicyRun]
    consultations: list[tuple[str, int]]
    rows: list[dict[str, Any]]
    rows_total: int
    latest: CheckpointCheck | None
    verification: LogVerification | None
    first_seq: int | None = None
    last_seq: int | None = None
    charts: list[tuple[str, str]] = field(default_factory=list)


class _IndexSource:
    """The local copy as a :class:`policies.auditlog.LogSource`, for ``export_log``."""

    def __init__(self, index: LogIndex, origin: str, verifier_key: str) -> None:
        self._index = index
        self.origin = origin
        self.verifier_key = verifier_key

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        covered = [
            c for c in self._index.checkpoints() if c.tree_size <= self._index.size
        ]
        return covered[-1] if covered else None

    def iter_records(
        self, where: RecordFilter | None = None, *, stop: int | None = None
    ) -> Iterator[StoredRecord]:
        epoch = from_micros(0)
        for seq, line in enumerate(self._index.iter_lines(stop)):
            # export_log writes canonical_json only; the other fields are unused.
            yield StoredRecord(
                seq, epoch, "", "", "", "", line[:-1].decode("utf-8"), b"", b""
            )

    def iter_checkpoints(
        self, *, stop: int | None = None
    ) -> Iterator[StoredCheckpoint]:
        for checkpoint in self._index.checkpoints():
            if stop is not None and checkpoint.tree_size > stop:
                return
            yield checkpoint


def _payload(stored: StoredRecord) -> dict[str, Any]:
    return record_payload(stored)


class Workbench:
    """Reads the node for the officer's pages.

    Parameters
    ----------
    link : NodeLink
        The node (over mTLS with the officer's certificate, in production).
    pinned : PinnedKey
        The log's pinned verifier key.
    state_dir : Path, optional
        Where the local copy, policy versions and the last verified checkpoint
        are kept; ``None``: a temporary folder.
    policy_file : Path, optional
        The node's policy file, read locally.
    clock : Clock
        The current time (UTC).
    officer : str, optional
        The officer's identity (shown on pages and reports).
    pinned_source : str, optional
        Where the pinned key came from (``configuration`` or ``first use``).
    page_size : int, optional
        Default records per log page.
    denial_burst : int, optional
        Denials that make a burst...
    denial_window : timedelta, optional
        ... within this window.
    report_max_records : int, optional
        Most records listed in a report (the export holds them all).
    witnesses : tuple[str, ...], optional
        Verifier keys of witnesses whose cosignatures to check.
    """

    def __init__(
        self,
        link: NodeLink,
        pinned: PinnedKey,
        *,
        state_dir: Path | None,
        policy_file: Path | None,
        clock: Clock,
        officer: str = "",
        pinned_source: str = "configuration",
        page_size: int = 50,
        denial_burst: int = 5,
        denial_window: timedelta = timedelta(minutes=10),
        report_max_records: int = 2_000,
        witnesses: tuple[str, ...] = (),
    ) -> None:
        self.link = link
        self.pinned = pinned
        self.clock = clock
        self.officer = officer
        self.pinned_source = pinned_source
        self.page_size = page_size
        self.denial_burst = denial_burst
        self.denial_window = denial_window
        self.report_max_records = report_max_records
        self.witnesses = witnesses
        self.policy_file = policy_file
        self.state_dir = state_dir
        folder = None
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            ident = sha256(pinned.text.encode()).hexdigest()[:16]
            folder = state_dir / "logs" / f"{pinned.name}-{ident}"
        self.index = LogIndex(folder)
        self.verifier = Verifier(
            pinned, None if folder is None else folder.parent.parent, clock
        )
        self.policies = PolicyArchive(
            None if state_dir is None else state_dir / "policies"
        )

    def close(self) -> None:
        """Close the link and forget a temporary copy."""
        self.link.close()
        self.index.close()

    # -- the log ---------------------------------------------------------------

    def sync(self, *, checkpoints: bool = False) -> int:
        """Bring the local copy up to date; return the calls made to the node."""
        return self.index.sync(self.link, checkpoints=checkpoints).calls

    def log_page(self, query: LogQuery) -> LogPage:
        """Return one page of records that match ``query``, read from the node.

        Parameters
        ----------
        query : LogQuery
            Filters, order, page and size.

        Returns
        -------
        LogPage
            The records (as the node serves them now) and the page's place.
        """
        calls = self.sync()
        seqs = self.index.matching(query.where)
        total = len(seqs)
        pages = max(1, math.ceil(total / query.page_size))
        page = min(query.page, pages)
        chunk = seq_pages(seqs, page, query.page_size, query.order == "newest")
        found, more = self._fetch(query.where, chunk)
        calls += more
        rows = [
            LogRow(s, found[s].time, _payload(found[s]))
            for s in chunk.tolist()
            if s in found
        ]
        return LogPage(
            query=query,
            rows=rows,
            total=total,
            pages=pages,
            page=page,
            log_size=self.index.size,
            node_calls=calls,
            missing=[s for s in chunk.tolist() if s not in found],
            suggestions={
                name: self.index.distinct(name)
                for name in ("requester", "purpose", "dataset")
            },
        )

    def _fetch(
        self, where: LogFilter, chunk: IntArray, *, max_calls: int = 20
    ) -> tuple[dict[int, StoredRecord], int]:
        """Ask the node for the records ``chunk`` names (one call, usually)."""
        if not len(chunk):
            return {}, 0
        times = self.index.times(chunk)
        lo, hi = int(times.min()), int(times.max())
        narrowed = where.record_filter(since=from_micros(lo), until=from_micros(hi + 1))
        wanted = set(chunk.tolist())
        found: dict[int, StoredRecord] = {}
        token, calls = "", 0
        size = min(1000, 2 * len(wanted) + 16)
        while calls < max_calls:
            page = self.link.records(narrowed, page_size=size, page_token=token)
            calls += 1
            for stored in page.records:
                if stored.seq in wanted:
                    found[stored.seq] = stored
                    self._cross_check(stored)
            if len(found) == len(wanted) or not page.next_page_token:
                break
            token = page.next_page_token
        return found, calls

    def _cross_check(self, stored: StoredRecord) -> None:
        leaf = sha256(b"\x00" + stored.canonical_json.encode("utf-8")).digest()
        if stored.seq < self.index.size and self.index.leaf(stored.seq) != leaf:
            self.index.conflicts.append(
                f"seq {stored.seq}: the node served it differently on the log page "
                "than in the copy"
            )

    def record(self, seq: int) -> RecordView:
        """Return record ``seq`` in full with its inclusion proof, checked.

        Parameters
        ----------
        seq : int
            The record.

        Returns
        -------
        RecordView
            The record, the signed checkpoint and the proof's verdict; a record
            newer than the latest checkpoint is shown from the local copy, marked
            pending.

        Raises
        ------
        NotFound
            If the log has no such record.
        """
        latest = self.link.latest_checkpoint()
        signed = (
            None
            if latest is None
            else check_checkpoint(latest, self.pinned, self.witnesses)
        )
        if latest is not None and signed is not None and seq < latest.tree_size:
            proof = self.link.inclusion_proof(seq, latest.tree_size)
            inclusion = check_inclusion(proof, seq, signed)
            stored = proof.record
            hashes = [h.hex() for h in proof.hashes]
            self._cross_check(stored)
            pending = False
        else:
            self.sync()
            stored = self.index.stored(seq)
            inclusion, hashes, pending = None, [], True
        payload = _payload(stored)
        related: list[tuple[int, str, str]] = []
        query_id = str(payload.get("query_id", ""))
        if query_id and seq < self.index.size:
            same = self.index.matching(LogFilter(requester=stored.requester))
            for other in same.tolist():
                if other == seq:
                    continue
                line = self.index.stored(other)
                other_payload = _payload(line)
                if other_payload.get("query_id") == query_id:
                    related.append(
                        (
                            other,
                            str(other_payload.get("decision")),
                            str(other_payload.get("reason")),
                        )
                    )
                if len(related) >= 20:
                    break
        return RecordView(
            seq=seq,
            payload=payload,
            canonical_json=stored.canonical_json,
            chain_hash=stored.chain_hash.hex(),
            signed=signed,
            proof_hashes=hashes,
            inclusion=inclusion,
            pending=pending,
            related=related,
        )

    # -- budgets ---------------------------------------------------------------

    def _active(self, show_all: bool = False) -> list[RequesterActivity]:
        out = []
        for activity in self.index.requesters():
            if not activity.requester.startswith("spiffe://"):
                continue
            if activity.consultations_only and not show_all:
                continue
            out.append(activity)
        return out

    def budgets_page(
        self, page: int = 1, *, show_all: bool = False
    ) -> tuple[list[BudgetRow], int, int]:
        """Return a page of requesters with their budgets, most recently active first.

        Parameters
        ----------
        page : int, optional
            The page, from 1 (:data:`BUDGET_PAGE` requesters each).
        show_all : bool, optional
            Include requesters that only consulted (officers, metadata readers).

        Returns
        -------
        tuple[list[BudgetRow], int, int]
            The rows, the page shown and the number of pages.
        """
        self.sync()
        active = self._active(show_all)
        pages = max(1, math.ceil(len(active) / BUDGET_PAGE))
        page = min(max(page, 1), pages)
        rows = []
        for activity in active[(page - 1) * BUDGET_PAGE : page * BUDGET_PAGE]:
            try:
                rows.append(BudgetRow(activity, self.link.budgets(activity.requester)))
            except NotFound as exc:
                rows.append(BudgetRow(activity, None, exc.message))
        return rows, page, pages

    def requester_budgets(self, requester: str, *, days: int = 30) -> RequesterBudgets:
        """Return a requester's budgets with consumption charts over ``days``.

        Parameters
        ----------
        requester : str
            The requester's SAN URI.
        days : int, optional
            How far back the charts go.

        Returns
        -------
        RequesterBudgets
            The ledger's figures, the log-derived series and recent charges.
        """
        try:
            pki.Identity.parse(requester)
        except pki.PkiError:
            raise NotFound(f"{requester!r} is not a requester identity") from None
        report = self.link.budgets(requester)
        self.sync()
        end = self.clock()
        start = end - timedelta(days=days)
        charts = []
        all_charges = self.index.charges(requester)
        for line in report.budgets:
            charges = (
                self.index.charges(requester, line.purpose)
                if line.purpose
                else all_charges
            )
            series = consumption_series(
                [(t, r) for t, r, _ in charges],
                start=start,
                end=end,
                limit=line.rho_limit,
                alert_threshold=line.alert_threshold,
                period_days=line.period_days,
                label=f"{line.budget_id} ({line.scope}{', ' + line.purpose if line.purpose else ''})",
            )
            charts.append(
                BudgetChart(
                    line=line,
                    series=series,
                    svg=render_chart(series),
                    log_value=value_at(series, end),
                )
            )
        return RequesterBudgets(
            requester=requester,
            report=report,
            charts=charts,
            charges=all_charges[-50:][::-1],
            start=start,
            end=end,
            days=days,
        )

    # -- policy ----------------------------------------------------------------

    def policy_page(self, digest: str | None = None) -> PolicyPage:
        """Return the policy (current or an archived version) and its history.

        Parameters
        ----------
        digest : str, optional
            Show this archived version instead of the current file.

        Returns
        -------
        PolicyPage
            The version shown, the node's digest, the digests in the log.

        Raises
        ------
        NotFound
            If ``digest`` was never archived here, or no policy file is configured.
        """
        facts = self.link.node_facts()
        self.sync()
        if self.policy_file is None:
            current = PolicyVersion(
                "", "", "", None, ["no policy file configured ([node] policy_file)"]
            )
        else:
            current = self.policies.read(self.policy_file)
        shown = current
        if digest is not None and digest != current.digest:
            archived = self.policies.get(digest)
            if archived is None:
                raise NotFound(f"no copy of policy {digest[:12]} was kept here")
            shown = archived
        runs = self.index.policy_runs()
        digests = [run.digest for run in runs]
        previous = ""
        if shown.digest in digests:
            at = len(digests) - 1 - digests[::-1].index(shown.digest)
            for earlier in reversed(digests[:at]):
                if earlier != shown.digest:
                    previous = earlier
                    break
        diff: list[str] = []
        if previous:
            older = self.policies.get(previous)
            if older is not None:
                diff = policy_diff(older, shown)
        return PolicyPage(
            current=current,
            shown=shown,
            node_digest=facts.policy_digest,
            runs=runs,
            archived={d for d in set(digests) if self.policies.has(d)},
            diff=diff,
            previous=previous,
        )

    # -- integrity -------------------------------------------------------------

    def integrity_page(self) -> IntegrityPage:
        """Check the latest checkpoint, consistency with the last seen one, the log.

        Returns
        -------
        IntegrityPage
            What verified and what did not.
        """
        latest = self.link.latest_checkpoint()
        _, stated = self.link.log_key()
        check = (
            None
            if latest is None
            else check_checkpoint(latest, self.pinned, self.witnesses)
        )
        saved_note = self.verifier.saved_note()
        saved_size: int | None = None
        consistent: bool | None = None
        if saved_note is not None and check is not None and check.checkpoint:
            saved = check_checkpoint(
                StoredCheckpoint(0, b"", saved_note, self.clock()), self.pinned
            )
            if saved.checkpoint is not None:
                saved_size = saved.checkpoint.size
                if saved_size <= check.checkpoint.size:
                    proof = self.link.consistency_proof(
                        saved_size, check.checkpoint.size
                    )
                    consistent = check_consistency(
                        saved.checkpoint, check.checkpoint, proof
                    )
                else:
                    consistent = False
        self.sync(checkpoints=True)
        verification = self.verifier.verify(self.index)
        return IntegrityPage(
            latest=check,
            pinned=self.pinned,
            pinned_source=self.pinned_source,
            stated_key=stated,
            saved_size=saved_size,
            consistent=consistent,
            verification=verification,
            conflicts=list(self.index.conflicts),
            index_size=self.index.size,
            checkpoints=len(self.index.checkpoints()),
        )

    # -- alerts ----------------------------------------------------------------

    def alerts_page(self) -> AlertsPage:
        """Return the current alerts.

        Returns
        -------
        AlertsPage
            Budgets past their thresholds (as the node's ledger stands), bursts
            of denials (from the log), and integrity or policy problems.
        """
        self.sync()
        seqs, times, requesters = self.index.denials()
        bursts = denial_bursts(
            seqs.tolist(),
            times.tolist(),
            requesters,
            threshold=self.denial_burst,
            window=self.denial_window,
        )
        active = self._active()
        reports, errors = [], []
        for activity in active[:ALERT_REQUESTERS]:
            try:
                reports.append(self.link.budgets(activity.requester))
            except NotFound as exc:
                errors.append(f"{activity.requester}: {exc.message}")
        mismatch = None
        if self.policy_file is not None:
            facts = self.link.node_facts()
            current = self.policies.read(self.policy_file)
            if facts.policy_digest and current.digest != facts.policy_digest:
                mismatch = (current.digest, facts.policy_digest)
        return AlertsPage(
            budgets=budget_alerts(reports),
            bursts=bursts,
            verification=self.verifier.cached,
            conflicts=list(self.index.conflicts),
            policy_mismatch=mismatch,
            requesters_checked=min(len(active), ALERT_REQUESTERS),
            requesters_total=len(active),
            errors=errors,
            burst_threshold=self.denial_burst,
            burst_window=self.denial_window,
        )

    # -- reports ---------------------------------------------------------------

    def report_range(self) -> tuple[datetime, datetime] | None:
        """Sync, and return the time range the log covers (for the report form)."""
        self.sync()
        return self.index.time_range()

    def report(self, since: datetime, until: datetime) -> ReportData:
        """Gather a period's report for a supervisory authority.

        Parameters
        ----------
        since, until : datetime
            The period (``until`` excluded).

        Returns
        -------
        ReportData
            Figures, lists, verification and the signed checkpoint.
        """
        latest_stored = self.link.latest_checkpoint()
        latest = (
            None
            if latest_stored is None
            else check_checkpoint(latest_stored, self.pinned, self.witnesses)
        )
        self.sync(checkpoints=True)
        verification = self.verifier.verify(self.index)
        where = LogFilter(since=since, until=until)
        seqs = self.index.matching(where)
        index = self.index
        denied = index.matching(LogFilter(since=since, until=until, decision="deny"))
        d_seqs, d_times, d_requesters = index.denials()
        in_period = (d_times >= _micros(since)) & (d_times < _micros(until))
        bursts = denial_bursts(
            d_seqs[in_period].tolist(),
            d_times[in_period].tolist(),
            [
                r
                for r, keep in zip(d_requesters, in_period.tolist(), strict=True)
                if keep
            ],
            threshold=self.denial_burst,
            window=self.denial_window,
        )
        rho: dict[str, float] = {}
        for activity in index.requesters():
            charges = index.charges(activity.requester)
            total = sum(r for t, r, _ in charges if since <= t < until)
            if total > 0:
                rho[activity.requester] = total
        active_in_period = {r for r, _ in index.value_counts("requester", seqs)}
        reports: list[BudgetReport] = []
        for activity in self._active():
            if activity.requester in active_in_period and len(reports) < 50:
                reports.append(self.link.budgets(activity.requester))
        methods = index.column("method", seqs)
        operations = index.column("operation", seqs)
        requesters = index.column("requester", seqs)
        consult: dict[str, int] = {}
        for method, operation, requester in zip(
            methods, operations, requesters, strict=True
        ):
            if operation == "consultation" and method.startswith(AUDIT_METHOD_PREFIX):
                consult[requester] = consult.get(requester, 0) + 1
        runs = [
            run
            for run in index.policy_runs()
            if run.last >= since and run.first < until
        ]
        limit = self.report_max_records
        rows = [_payload(index.stored(int(s))) for s in seqs[:limit].tolist()]
        denials = [_payload(index.stored(int(s))) for s in denied[:limit].tolist()]
        return ReportData(
            generated_at=self.clock(),
            officer=self.officer,
            origin=self.pinned.name,
            pinned_key=self.pinned.text,
            since=since,
            until=until,
            records=len(seqs),
            by_decision=index.value_counts("decision", seqs),
            by_operation=index.value_counts("operation", seqs),
            by_requester=index.value_counts("requester", seqs),
            by_purpose=index.value_counts("purpose", seqs),
            by_dataset=index.value_counts("dataset", seqs),
            rho_by_requester=sorted(rho.items(), key=lambda p: -p[1]),
            denials=denials,
            bursts=bursts,
            budget_alerts=budget_alerts(reports),
            policy_runs=runs,
            consultations=sorted(consult.items(), key=lambda p: -p[1]),
            rows=rows,
            rows_total=len(seqs),
            latest=latest,
            verification=verification,
            first_seq=int(seqs[0]) if len(seqs) else None,
            last_seq=int(seqs[-1]) if len(seqs) else None,
        )

    def export(self, folder: Path | None = None) -> tuple[Path, int]:
        """Write the verifiable JSONL export of the copy, up to its latest checkpoint.

        Parameters
        ----------
        folder : Path, optional
            Where to write it; a temporary folder by default.

        Returns
        -------
        tuple[Path, int]
            The file and the tree size it covers.
        """
        origin, stated = self.link.log_key()
        self.sync(checkpoints=True)
        target = Path(folder or tempfile.mkdtemp(prefix="accord-export-"))
        out = target / "decision-log.jsonl"
        summary = export_log(
            _IndexSource(self.index, origin, stated), out, now=self.clock()
        )
        return out, summary.tree_size


def _micros(moment: datetime) -> int:
    return (moment - from_micros(0)) // timedelta(microseconds=1)
