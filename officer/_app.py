"""The web application: Starlette routes that render the workbench's pages.

Read-only: every route is a GET, and none changes anything at the node. Pages are
rendered on the server (Jinja2); there is no script. Responses are not cached and
may not be framed; the Host header is checked (a page bound to localhost is not
readable through DNS rebinding).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from policies.auditlog import OPERATIONS

from ._errors import BadRequest, OfficerError
from ._query import PAGE_SIZES, parse_log_query, parse_time
from ._render import render
from ._report import render_report, report_filename
from ._tls import BROWSER_IDENTITY, OfficerOnly
from ._workbench import Workbench

__all__ = ["SECURITY_HEADERS", "create_app"]

_log = logging.getLogger("accord.officer")

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
}


def _html(
    request: Request, workbench: Workbench, name: str, section: str, **context: Any
) -> HTMLResponse:
    state = request.scope.get("state") or {}
    body = render(
        name,
        section=section,
        origin=workbench.pinned.name,
        officer=workbench.officer,
        browser=state.get(BROWSER_IDENTITY, ""),
        conflicts=workbench.index.conflicts,
        pinned_source=workbench.pinned_source,
        **context,
    )
    return HTMLResponse(body, headers=SECURITY_HEADERS)


def create_app(
    workbench: Workbench,
    *,
    allowed_hosts: Sequence[str] | None = None,
    officers_of: tuple[str, str] | None = None,
    warm_up: bool = False,
) -> Starlette:
    """Build the web application around a workbench.

    Parameters
    ----------
    workbench : Workbench
        What the pages read.
    allowed_hosts : Sequence[str], optional
        Host header values accepted; ``None`` accepts any (tests).
    officers_of : tuple[str, str], optional
        ``(federation, agency)``: require an officer client certificate of that
        agency on every request (with TLS).
    warm_up : bool, optional
        Sync the local copy in the background at start-up.

    Returns
    -------
    Starlette
        The ASGI application.
    """
    wb = workbench

    def home(request: Request) -> Response:
        return RedirectResponse("/log", status_code=303)

    def log(request: Request) -> Response:
        query = parse_log_query(request.query_params, default_size=wb.page_size)
        page = wb.log_page(query)
        hidden = [(k, v) for k, v in request.query_params.items() if k not in ("page",)]
        return _html(
            request,
            wb,
            "log.html",
            "/log",
            title="Decision log",
            p=page,
            operations=sorted(OPERATIONS),
            page_sizes=sorted({*PAGE_SIZES, query.page_size}),
            hidden=hidden,
        )

    def record(request: Request) -> Response:
        seq = request.path_params["seq"]
        view = wb.record(seq)
        return _html(request, wb, "record.html", "/log", title=f"Record {seq}", v=view)

    def budgets(request: Request) -> Response:
        show_all = request.query_params.get("all") == "1"
        page = _number(request, "page", 1)
        rows, page, pages = wb.budgets_page(page, show_all=show_all)
        return _html(
            request,
            wb,
            "budgets.html",
            "/budgets",
            title="Budgets",
            rows=rows,
            page=page,
            pages=pages,
            show_all=show_all,
        )

    def requester(request: Request) -> Response:
        uri = request.query_params.get("uri", "")
        if not uri:
            raise BadRequest("uri", "name the requester (its SAN URI)")
        days = _number(request, "days", 30)
        if not 1 <= days <= 3660:
            raise BadRequest("days", "expected 1 to 3660")
        view = wb.requester_budgets(uri, days=days)
        return _html(request, wb, "requester.html", "/budgets", title="Budgets", b=view)

    def policy(request: Request) -> Response:
        digest = request.path_params.get("digest")
        view = wb.policy_page(digest)
        return _html(request, wb, "policy.html", "/policy", title="Policy", pp=view)

    def integrity(request: Request) -> Response:
        view = wb.integrity_page()
        return _html(
            request, wb, "integrity.html", "/integrity", title="Integrity", ip=view
        )

    def alerts(request: Request) -> Response:
        view = wb.alerts_page()
        return _html(request, wb, "alerts.html", "/alerts", title="Alerts", al=view)

    def reports(request: Request) -> Response:
        span = wb.report_range()
        until = wb.clock().replace(microsecond=0)
        since = until - timedelta(days=30)
        return _html(
            request,
            wb,
            "reports.html",
            "/reports",
            title="Reports",
            since=since.strftime("%Y-%m-%dT%H:%M:%S"),
            until=until.strftime("%Y-%m-%dT%H:%M:%S"),
            size=wb.index.size,
            span=span,
        )

    def report(request: Request) -> Response:
        params = request.query_params
        if not params.get("since") or not params.get("until"):
            raise BadRequest("since", "give the period: since and until")
        since = parse_time(params["since"], "since")
        until = parse_time(params["until"], "until")
        if until <= since:
            raise BadRequest("until", "must be after since")
        data = wb.report(since, until)
        headers = dict(SECURITY_HEADERS)
        if params.get("download", "1") == "1":
            headers["content-disposition"] = (
                f'attachment; filename="{report_filename(data)}"'
            )
        return HTMLResponse(render_report(data), headers=headers)

    def export(request: Request) -> Response:
        path, size = wb.export()
        return FileResponse(
            path,
            media_type="application/jsonl",
            filename=f"decision-log-{wb.pinned.name}-{size}.jsonl",
            headers=SECURITY_HEADERS,
            background=BackgroundTask(shutil.rmtree, path.parent, True),
        )

    async def failed(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OfficerError)
        response = _html(
            request,
            wb,
            "error.html",
            "",
            title={400: "Bad request", 404: "Not found"}.get(
                exc.status_code, "The node could not be read"
            ),
            message=exc.message,
            back=request.headers.get("referer", "/log"),
        )
        response.status_code = exc.status_code
        return response

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if warm_up:

            def sync() -> None:
                try:
                    wb.sync(checkpoints=True)
                except OfficerError as exc:
                    _log.warning("first sync failed: %s", exc.message)

            threading.Thread(target=sync, name="officer warm-up", daemon=True).start()
        yield

    static = StaticFiles(directory=str(resources.files("officer") / "static"))
    middleware = []
    if allowed_hosts is not None:
        middleware.append(
            Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
        )
    if officers_of is not None:
        federation, agency = officers_of
        middleware.append(Middleware(OfficerOnly, federation=federation, agency=agency))
    return Starlette(
        routes=[
            Route("/", home),
            Route("/log", log),
            Route("/log/{seq:int}", record),
            Route("/budgets", budgets),
            Route("/budgets/requester", requester),
            Route("/policy", policy),
            Route("/policy/{digest}", policy),
            Route("/integrity", integrity),
            Route("/alerts", alerts),
            Route("/reports", reports),
            Route("/reports/report.html", report),
            Route("/export.jsonl", export),
            Mount("/static", app=static, name="static"),
        ],
        middleware=middleware,
        exception_handlers={OfficerError: failed},
        lifespan=lifespan,
    )


def _number(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name, "")
    if not value:
        return default
    if not value.isdigit() or len(value) > 9:
        raise BadRequest(name, f"{value!r} is not a positive whole number")
    return int(value)
