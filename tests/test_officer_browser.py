"""The officer's workbench in a real browser: headless Chromium driven by Playwright.

Needs Debian's ``chromium`` (``/usr/bin/chromium``) and the ``playwright`` Python
package (its own browser download is not used). Without them the tests skip, and
fail under ``CI=true``. Screenshots of the main pages go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from officer._app import create_app
from policies.auditlog import verify_export
from tests.conftest import IN_CI
from tests.test_officer_http import (
    OfficerNode,
    generate_activity,
    serve_in_thread,
    start_officer_node,
)

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("ACCORD_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
#: The flags python-svc.md gives for headless Chromium on this kind of machine.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _need_browser() -> Any:
    """Return playwright's sync API; skip (fail under CI=true) without Chromium."""
    problem = None
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        problem = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api
    except ImportError:
        problem = (
            problem
            or "the playwright package is not installed (pip install playwright)"
        )
    if problem:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)
    return playwright.sync_api


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, OfficerNode]]:
    """A node with activity, and the workbench served by uvicorn on 127.0.0.1."""
    _need_browser()
    node = start_officer_node(tmp_path_factory.mktemp("browser-node"))
    try:
        wb = node.workbench(tmp_path_factory.mktemp("browser-state"))
        try:
            generate_activity(node, wb)
            node.wait_signed()
            app = create_app(wb, allowed_hosts=["127.0.0.1", "localhost"])
            with serve_in_thread(app) as port:
                yield f"http://127.0.0.1:{port}", node
        finally:
            wb.close()
    finally:
        node.server.stop(0)


@pytest.fixture(scope="module")
def page(served: tuple[str, OfficerNode]) -> Iterator[Any]:
    sync_api = _need_browser()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(
            base_url=served[0],
            viewport={"width": 1360, "height": 900},
            accept_downloads=True,
        )
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"officer-{name}.png"), full_page=True)


def test_the_log_filters_and_a_record_with_its_proof(page: Any) -> None:
    page.goto("/log")
    assert page.title().startswith("Decision log")
    assert page.locator("#records tbody tr").count() > 10
    shot(page, "log")
    page.select_option("select[name=decision]", "deny")
    page.click("#apply")
    page.wait_for_url("**decision=deny**")
    badges = page.locator("#records .badge").all_inner_texts()
    assert badges and set(badges) == {"deny"}
    assert page.inner_text("#total") == "6"
    shot(page, "log-denials")
    page.locator("#records tbody tr a").first.click()
    page.wait_for_url("**/log/*")
    assert "Included." in page.inner_text("#inclusion")
    shot(page, "record")


def test_budgets_and_a_requesters_chart(page: Any) -> None:
    page.goto("/log")
    page.click("nav.main >> text=Budgets")
    assert "past threshold" in page.inner_text("#budgets")
    shot(page, "budgets")
    page.click("#budgets >> text=hub/coordinator/analyst")
    page.wait_for_url(re.compile(r"/budgets/requester\?uri="))
    assert page.locator("svg.chart").count() == 2
    assert page.locator(".budget-chart .badge.ok", has_text="agrees").count() == 2
    shot(page, "budget-chart")


def test_policy_integrity_and_alerts(
    page: Any, served: tuple[str, OfficerNode]
) -> None:
    page.goto("/log")
    page.click("nav.main >> text=Policy")
    assert len(page.inner_text("#digest").strip()) == 64
    assert page.locator("#history tr").count() >= 3  # header + two versions
    shot(page, "policy")
    page.click("nav.main >> text=Integrity")
    assert "Verified." in page.inner_text("#verification")
    shot(page, "integrity")
    with page.expect_download() as download:
        page.click("#export")
    path = ARTIFACTS / "officer-export.jsonl"
    download.value.save_as(str(path))
    result = verify_export(path, served[1].verifier_key)
    assert result.ok, result.problems
    page.click("nav.main >> text=Alerts")
    assert "hub/coordinator/analyst" in page.inner_text("#bursts")
    shot(page, "alerts")


def test_a_period_report_opens_in_the_browser(page: Any) -> None:
    page.goto("/reports")
    shot(page, "reports")
    page.select_option("select[name=download]", "0")
    page.fill("input[name=since]", "2020-01-01T00:00:00")
    page.click("#make-report")
    page.wait_for_url(re.compile(r"/reports/report\.html\?"))
    assert "Decision log report" in page.inner_text("h2")
    assert page.locator("#report-records tr").count() > 10
    shot(page, "report")
