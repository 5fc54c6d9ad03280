"""HTML rendering: the Jinja2 environment of the package's templates, and its filters."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

__all__ = ["environment", "render", "stylesheet"]


def _when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _short(uri: str) -> str:
    """``spiffe://fed/agency/a/role/name`` -> ``a/role/name``."""
    _, sep, rest = uri.partition("/agency/")
    return rest if sep and uri.startswith("spiffe://") else uri


def _rho(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def _hexstr(value: bytes | str) -> str:
    return value.hex() if isinstance(value, bytes) else value


@cache
def stylesheet() -> str:
    """Return the workbench's stylesheet (served, and inlined into reports)."""
    return (resources.files("officer") / "static" / "officer.css").read_text("utf-8")


@cache
def environment() -> jinja2.Environment:
    """Return the template environment (autoescaping, strict undefined)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("officer", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, short=_short, rho=_rho, pct=_pct, hexstr=_hexstr)
    env.globals["inline_css"] = lambda: Markup(stylesheet())
    return env


def render(name: str, **context: Any) -> str:
    """Render the template ``name`` with ``context``.

    Parameters
    ----------
    name : str
        The template file under ``officer/templates``.
    **context : Any
        Its variables.

    Returns
    -------
    str
        The HTML.
    """
    return environment().get_template(name).render(**context)
