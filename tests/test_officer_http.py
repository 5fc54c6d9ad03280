"""The officer's workbench over HTTP, against a real node over mTLS with activity."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import ssl
import threading
import time
import tomllib
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import tomli_w
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import coordinator
import node
import pki
from coordinator import Aggregation, QuerySpec
from demo import DEMO_POLICIES, DemoFederation, provision
from officer._app import create_app
from officer._integrity import PinnedKey
from officer._link import GrpcNodeLink
from officer._tls import PeerCertH11Protocol
from officer._workbench import Workbench
from policies.auditlog import (
    RecordFilter,
    encode_verifier_key,
    open_log_reader,
    verify_export,
)

with warnings.catch_warnings():
    # starlette 1.3's testclient reads an alias that anyio 4.16 deprecates.
    warnings.filterwarnings(
        "ignore", "The anyio.abc.BlockingPortal alias", DeprecationWarning
    )
    from starlette.testclient import TestClient

FED = "demo"
OFFICER = pki.Identity(FED, "agency-a", "officer", "alice")
SECOND = pki.Identity(FED, "hub", "coordinator", "second")


def officer_policy(version: int = 1) -> dict[str, Any]:
    """agency-a's demo policy with small budgets, so a few queries pass the threshold."""
    policy: dict[str, Any] = json.loads(json.dumps(DEMO_POLICIES["agency-a"]))
    policy["policy"]["version"] = version
    policy["budgets"] = [
        {
            "uid": "a-per-30-days",
            "description": "Each requester: rho 0.05 every 30 days",
            "assignees": ["*"],
            "rho_per_period": 0.05,
            "period_days": 30,
            "alert_threshold": 0.5,
        },
        {
            "uid": "a-lifetime",
            "description": "Each requester: rho 1 in all",
            "assignees": ["*"],
            "rho_lifetime": 1.0,
            "alert_threshold": 0.8,
        },
    ]
    if version > 1:
        policy["permissions"][0]["description"] = "Coordinators, statistics (rev. 2)"
    return policy


@dataclass
class OfficerNode:
    """One agency's node serving in this process, with generated activity."""

    fed: DemoFederation
    server: node.NodeServer
    root: Path
    state_url: str
    policy_file: Path
    officer: pki.LeafPaths
    second: pki.LeafPaths
    verifier_key: str
    federation_file: Path
    second_file: Path
    first_digest: str

    @property
    def address(self) -> str:
        return self.server.address

    def consultations(self) -> list[dict[str, Any]]:
        """The node's records of the officer's calls, read from its database."""
        reader = open_log_reader(self.state_url)
        try:
            found: list[dict[str, Any]] = [
                json.loads(r.canonical_json)
                for r in reader.iter_records(RecordFilter(requester=OFFICER.uri))
            ]
            return found
        finally:
            reader.close()

    def wait_signed(self, timeout: float = 10.0) -> int:
        """Wait until a checkpoint covers every record committed now; return its size."""
        reader = open_log_reader(self.state_url)
        try:
            size = reader.size()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                latest = reader.latest_checkpoint()
                if latest is not None and latest.tree_size >= size:
                    return latest.tree_size
                time.sleep(0.05)
        finally:
            reader.close()
        raise AssertionError("no checkpoint covered the log in time")

    def workbench(
        self, state_dir: Path | None, kit: pki.LeafPaths | None = None
    ) -> Workbench:
        material = (kit or self.officer).tls_files().read()
        return Workbench(
            GrpcNodeLink(self.address, material, timeout=10),
            PinnedKey(self.verifier_key),
            state_dir=state_dir,
            policy_file=self.policy_file,
            clock=lambda: datetime.now(UTC),
            officer=OFFICER.uri,
            denial_burst=5,
            denial_window=timedelta(minutes=10),
        )


def query(
    federation_file: Path, purpose: str = "statistics"
) -> coordinator.FederatedResult:
    config = coordinator.load_federation(federation_file)
    with coordinator.Coordinator.from_config(config, deadline=10) as hub:
        return hub.query(
            QuerySpec(
                dataset="incidents",
                aggregations=(Aggregation("count"),),
                purpose=purpose,
            )
        )


def write_federation(path: Path, kit: pki.LeafPaths, address: str) -> Path:
    path.write_text(
        tomli_w.dumps(
            {
                "federation": {"name": FED},
                "coordinator": {
                    "ca": str(kit.ca),
                    "cert": str(kit.cert),
                    "key": str(kit.key),
                },
                "nodes": [{"agency": "agency-a", "address": address}],
            }
        ),
        encoding="utf-8",
    )
    return path


def start_officer_node(root: Path) -> OfficerNode:
    """Provision agency-a alone, fast checkpoints, officer and second coordinator kits."""
    fed = provision(
        root,
        agencies=("agency-a",),
        rows={"agency-a": 300},
        policies={"agency-a": officer_policy(1)},
    )
    site = fed.sites[0]
    doc = tomllib.loads(site.node_config.read_text(encoding="utf-8"))
    doc["audit"] = {"key": "state/audit-log.key", "checkpoint_interval_seconds": 0.2}
    site.node_config.write_text(tomli_w.dumps(doc), encoding="utf-8")
    officer_kit = pki.issue(fed.ca_dir, OFFICER, root / "officer")
    second_kit = pki.issue(fed.ca_dir, SECOND, root / "second")
    config = node.load_node_config(site.node_config)
    server = node.create_server(config, listen="127.0.0.1:0")
    server.start()
    state_url = config.node.state_url
    reader = open_log_reader(state_url)
    verifier_key = reader.verifier_key
    reader.close()
    return OfficerNode(
        fed=fed,
        server=server,
        root=root,
        state_url=state_url,
        policy_file=site.policy,
        officer=officer_kit,
        second=second_kit,
        verifier_key=verifier_key,
        federation_file=fed.write_federation_file({"agency-a": server.address}),
        second_file=write_federation(root / "second.toml", second_kit, server.address),
        first_digest=hashlib.sha256(site.policy.read_bytes()).hexdigest(),
    )


def generate_activity(n: OfficerNode, wb: Workbench) -> None:
    """Queries allowed and denied, a policy revision the workbench saw both sides of."""
    for _ in range(3):
        assert query(n.federation_file).contributors == ("agency-a/node",)
    for _ in range(6):
        result = query(n.federation_file, purpose="marketing")
        assert [o.status for o in result.outcomes] == ["refused"]
    wb.policy_page()  # the workbench archives version 1
    n.policy_file.write_text(
        n.policy_file.read_text(encoding="utf-8").replace("version = 1", "version = 2"),
        encoding="utf-8",
    )
    from demo._provision import _policy_text

    n.policy_file.write_text(
        _policy_text("agency-a", officer_policy(2)), encoding="utf-8"
    )
    assert n.server.reload_policy()
    query(n.federation_file)
    query(n.second_file)


@pytest.fixture(scope="module")
def officer_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfficerNode]:
    n = start_officer_node(tmp_path_factory.mktemp("officer-node"))
    try:
        yield n
    finally:
        n.server.stop(0)


@pytest.fixture(scope="module")
def workbench(
    officer_node: OfficerNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workbench]:
    wb = officer_node.workbench(tmp_path_factory.mktemp("officer-state"))
    generate_activity(officer_node, wb)
    officer_node.wait_signed()
    try:
        yield wb
    finally:
        wb.close()


@pytest.fixture(scope="module")
def client(workbench: Workbench) -> Iterator[TestClient]:
    with TestClient(create_app(workbench)) as c:
        yield c


def rows(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)


def seqs(html: str) -> list[int]:
    return [int(s) for s in re.findall(r'<a href="/log/(\d+)">\d+</a></td>', html)]


# -- the log ------------------------------------------------------------------


def test_the_log_page_shows_the_newest_records_first(client: TestClient) -> None:
    response = client.get("/log")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    shown = seqs(response.text)
    match = re.search(r"of ([\d,]+) in the log", response.text)
    assert match is not None
    size = int(match[1].replace(",", ""))
    assert shown == list(range(size - 1, size - 1 - min(50, size), -1))
    oldest = seqs(client.get("/log?order=oldest&page_size=25").text)
    assert oldest == list(range(25))


def test_filters_are_applied(client: TestClient, officer_node: OfficerNode) -> None:
    analyst = "spiffe://demo/agency/hub/coordinator/analyst"
    page = client.get(f"/log?requester={quote(analyst)}&decision=deny&page_size=100")
    assert page.status_code == 200
    body = page.text
    assert len(rows(body)) == 6
    assert body.count('<span class="badge deny">deny</span>') == 6
    assert re.search(r'id="total">6<', body)
    allowed = client.get(
        f"/log?requester={quote(analyst)}&decision=allow&operation=disclosure&purpose=statistics&dataset=incidents"
    ).text
    assert re.search(r'id="total">4<', allowed)
    consult = client.get(
        f"/log?operation=consultation&requester={quote(OFFICER.uri)}"
    ).text
    assert "ListRecords" in consult
    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    assert re.search(r'id="total">0<', client.get(f"/log?since={future}").text)


def test_pages_partition_the_matching_records(client: TestClient) -> None:
    first = seqs(client.get("/log?decision=allow&order=oldest&page_size=3&page=1").text)
    second = seqs(
        client.get("/log?decision=allow&order=oldest&page_size=3&page=2").text
    )
    assert len(first) == 3 and len(second) == 3
    assert max(first) < min(second)
    last = client.get("/log?decision=allow&order=oldest&page_size=3&page=999999")
    assert last.status_code == 200  # clamped to the last page


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ("decision=maybe", "decision"),
        ("since=yesterday", "since"),
        ("page=0", "page"),
        ("page_size=abc", "page_size"),
        ("operation=reading", "operation"),
        ("since=2025-02-01&until=2025-01-01", "until"),
    ],
)
def test_a_malformed_filter_is_a_400_naming_it(
    client: TestClient, params: str, field: str
) -> None:
    response = client.get(f"/log?{params}")
    assert response.status_code == 400
    assert f"{field}:" in response.text


def test_a_record_is_shown_in_full_with_its_verified_inclusion_proof(
    client: TestClient, officer_node: OfficerNode
) -> None:
    officer_node.wait_signed()
    page = client.get("/log/3")
    assert page.status_code == 200
    assert "<strong>Included.</strong>" in page.text
    assert "audit path" in page.text and "Signed checkpoint" in page.text
    assert '"seq":3' in page.text.replace("&#34;", '"')
    assert client.get("/log/99999999").status_code == 404


# -- every view is logged -----------------------------------------------------

PAGES = [
    "/log",
    "/log?decision=deny",
    "/log/1",
    "/budgets",
    "/budgets/requester?uri=spiffe%3A%2F%2Fdemo%2Fagency%2Fhub%2Fcoordinator%2Fanalyst",
    "/policy",
    "/integrity",
    "/alerts",
    "/reports",
    "/reports/report.html?since=2020-01-01&until=2100-01-01",
    "/export.jsonl",
]


@pytest.mark.parametrize("path", PAGES)
def test_each_page_view_is_logged_at_the_node_as_a_consultation(
    client: TestClient, officer_node: OfficerNode, path: str
) -> None:
    before = len(officer_node.consultations())
    response = client.get(path)
    assert response.status_code == 200, response.text[:500]
    after = officer_node.consultations()
    new = after[before:]
    assert new, f"{path} was not logged"
    for record in new:
        assert record["operation"] == "consultation"
        assert record["requester"] == OFFICER.uri
        assert record["decision"] == "allow"


# -- budgets, policy, integrity, alerts, reports ----------------------------


def test_budgets_show_the_ledger_and_a_chart_that_agrees_with_it(
    client: TestClient,
) -> None:
    overview = client.get("/budgets").text.split('id="budgets"', 1)[1]
    assert (
        "hub/coordinator/analyst" in overview and "hub/coordinator/second" in overview
    )
    assert "past threshold" in overview
    assert "officer/alice" not in overview  # only consulted
    every = client.get("/budgets?all=1").text.split('id="budgets"', 1)[1]
    assert "officer/alice" in every
    uri = quote("spiffe://demo/agency/hub/coordinator/analyst")
    detail = client.get(f"/budgets/requester?uri={uri}&days=7").text
    assert detail.count("<svg") == 2
    assert detail.count("agrees with the ledger") == 2
    assert "rho 0.04 spent of 0.05" in detail
    assert client.get("/budgets/requester?uri=nobody").status_code == 404


def test_the_policy_page_shows_digest_history_and_changes(
    client: TestClient, officer_node: OfficerNode
) -> None:
    digest = hashlib.sha256(officer_node.policy_file.read_bytes()).hexdigest()
    page = client.get("/policy").text
    assert f'id="digest">{digest}<' in page
    assert "a-statistics" in page and "a-per-30-days" in page
    assert officer_node.first_digest[:16] in page and digest[:16] in page
    assert 'id="diff"' in page and "rev. 2" in page
    old = client.get(f"/policy/{officer_node.first_digest}")
    assert old.status_code == 200 and "Showing an earlier version" in old.text
    assert client.get(f"/policy/{'0' * 64}").status_code == 404


def test_the_integrity_panel_verifies_the_whole_log_and_the_export_verifies(
    client: TestClient, officer_node: OfficerNode, tmp_path: Path
) -> None:
    officer_node.wait_signed()
    page = client.get("/integrity").text
    assert "<strong>Verified.</strong>" in page
    assert "verifies with the pinned key" in page
    assert '<span class="badge ok">same</span>' in page
    again = client.get("/integrity").text
    assert "extends what was verified before" in again and 'badge ok">yes' in again
    export = client.get("/export.jsonl")
    assert export.headers["content-disposition"].startswith("attachment;")
    path = tmp_path / "export.jsonl"
    path.write_bytes(export.content)
    result = verify_export(path, officer_node.verifier_key)
    assert result.ok, result.problems
    assert result.report.records > 0


def test_alerts_show_the_burst_of_denials_and_the_budget_past_its_threshold(
    client: TestClient,
) -> None:
    page = client.get("/alerts").text
    bursts = page.split('id="bursts"', 1)[1]
    assert "hub/coordinator/analyst" in bursts
    assert re.search(r'<td class="num">6</td>', bursts)
    budgets = page.split('id="budget-alerts"', 1)[1].split("</table>", 1)[0]
    assert "a-per-30-days" in budgets and "past threshold" in budgets


def test_the_report_is_one_self_contained_html_file(client: TestClient) -> None:
    until = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    response = client.get(f"/reports/report.html?since=2020-01-01&until={until}")
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    html = response.text
    assert "<link" not in html and "<script" not in html and "src=" not in html
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", html)
    assert "Decision log report" in html and 'badge ok">verified' in html
    assert "hub/coordinator/analyst" in html and "marketing" in html
    inline = client.get(
        f"/reports/report.html?since=2020-01-01&until={until}&download=0"
    )
    assert "content-disposition" not in inline.headers
    assert (
        client.get("/reports/report.html?since=2025-02-01&until=2025-01-01").status_code
        == 400
    )


def test_a_certificate_that_is_not_an_officers_is_refused_by_the_node(
    officer_node: OfficerNode, tmp_path: Path
) -> None:
    kit = officer_node.second  # a coordinator
    wb = officer_node.workbench(tmp_path, kit)
    try:
        with TestClient(create_app(wb)) as c:
            response = c.get("/log")
        assert response.status_code == 502
        assert "PERMISSION_DENIED" in response.text
    finally:
        wb.close()


def test_the_local_copy_survives_a_restart_and_resumes(
    officer_node: OfficerNode, tmp_path: Path
) -> None:
    wb = officer_node.workbench(tmp_path)
    first = wb.index.sync(wb.link)
    size = wb.index.size
    wb.close()
    again = officer_node.workbench(tmp_path)
    try:
        assert again.index.size == size
        stats = again.index.sync(again.link)
        assert stats.calls == 1 and stats.records < first.records
    finally:
        again.close()


# -- the web server with TLS: officers' certificates only ---------------------


@contextlib.contextmanager
def serve_in_thread(app: Any, **options: Any) -> Iterator[int]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yield the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        http=PeerCertH11Protocol,
        ws="none",
        lifespan="on",
        log_level="warning",
        access_log=False,
        **options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def https_get(url: str, ca: Path, kit: pki.LeafPaths | None) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(ca))
    if kit is not None:
        context.load_cert_chain(str(kit.cert), str(kit.key))
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_beyond_localhost_only_officers_of_the_agency_get_in(
    officer_node: OfficerNode, workbench: Workbench
) -> None:
    ca = officer_node.fed.ca_dir
    web = pki.issue(
        ca,
        pki.Identity(FED, "agency-a", "node", "workbench"),
        officer_node.root / "web",
        hosts=["127.0.0.1"],
    )
    app = create_app(workbench, officers_of=(FED, "agency-a"))
    options = {
        "ssl_certfile": str(web.cert),
        "ssl_keyfile": str(web.key),
        "ssl_ca_certs": str(web.ca),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }
    with serve_in_thread(app, **options) as port:
        url = f"https://127.0.0.1:{port}/log"
        status, body = https_get(url, web.ca, officer_node.officer)
        assert status == 200 and "browser: agency-a/officer/alice" in body
        status, body = https_get(url, web.ca, officer_node.second)
        assert status == 403 and "role coordinator" in body
        foreign = pki.issue(
            ca,
            pki.Identity(FED, "agency-b", "officer", "bob"),
            officer_node.root / "bob",
        )
        status, body = https_get(url, web.ca, foreign)
        assert status == 403 and "agency-a" in body
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            https_get(url, web.ca, None)


# -- accord officer serve: startup errors have numbered exit codes -----------


def officer_toml(path: Path, n: OfficerNode, kit: pki.LeafPaths, **extra: Any) -> Path:
    doc: dict[str, Any] = {
        "node": {
            "address": n.address,
            "timeout_seconds": 5,
            "policy_file": str(n.policy_file),
        },
        "officer": {"ca": str(kit.ca), "cert": str(kit.cert), "key": str(kit.key)},
        "web": {"state_dir": str(path.parent / "state")},
    }
    for section, values in extra.items():
        doc.setdefault(section, {}).update(values)
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return path


def run_cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from accord_cli import app

    return CliRunner().invoke(app, list(args))


def test_serve_refuses_bad_settings_with_numbered_exit_codes(
    officer_node: OfficerNode, tmp_path: Path
) -> None:
    result = run_cli("officer", "serve", "--config", str(tmp_path / "missing.toml"))
    assert result.exit_code == 40 and "file not found" in result.output
    exposed = officer_toml(
        tmp_path / "exposed.toml",
        officer_node,
        officer_node.officer,
        web={"listen": "0.0.0.0:0"},
    )
    result = run_cli("officer", "serve", "--config", str(exposed))
    assert result.exit_code == 41 and "not a loopback address" in result.output
    coordinator_kit = officer_toml(
        tmp_path / "coord.toml", officer_node, officer_node.second
    )
    result = run_cli("officer", "serve", "--config", str(coordinator_kit))
    assert result.exit_code == 41 and "coordinator certificate" in result.output
    other = Ed25519PrivateKey.generate()
    wrong_key = officer_toml(
        tmp_path / "key.toml",
        officer_node,
        officer_node.officer,
        audit={
            "verifier_key": encode_verifier_key(
                "audit.agency-a.demo", other.public_key()
            )
        },
    )
    result = run_cli("officer", "serve", "--config", str(wrong_key))
    assert result.exit_code == 42 and "not the pinned" in result.output
    closed = officer_toml(
        tmp_path / "closed.toml",
        officer_node,
        officer_node.officer,
        node={"address": "127.0.0.1:9", "timeout_seconds": 2},
    )
    result = run_cli("officer", "serve", "--config", str(closed))
    assert result.exit_code == 42 and "UNAVAILABLE" in result.output
    codes = run_cli("officer", "exit-codes")
    assert codes.exit_code == 0 and all(
        f"  {c}  " in codes.output for c in (40, 41, 42, 43)
    )
