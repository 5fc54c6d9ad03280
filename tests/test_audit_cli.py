"""``accord audit``: show, export, key, and offline verification that catches tampering."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from accord_cli import app
from policies.auditlog import EXIT_CODES, SqlDecisionLog, log_verifier_key
from tests.test_decision_log import KEY, ORIGIN, OTHER_KEY, append_concurrently

SIZE = 300
EVERY = 64


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audit") / "audit.db"
    log = SqlDecisionLog(
        f"sqlite:///{path}", origin=ORIGIN, signing_key=KEY, checkpoint_every=EVERY
    )
    append_concurrently(log, threads=1, each=SIZE)
    log.close()
    return path


@pytest.fixture
def db(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of a closed log of SIZE records, checkpoints every EVERY."""
    path = tmp_path / "audit.db"
    shutil.copyfile(template, path)
    return path


@pytest.fixture
def vkey() -> str:
    return log_verifier_key(ORIGIN, KEY)


def invoke(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(app, ["audit", *args])


def export(runner: CliRunner, db: Path, out: Path) -> Path:
    result = invoke(runner, "export", "--db", f"sqlite:///{db}", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


def verify(runner: CliRunner, path: Path, key: str, *extra: str) -> Any:
    return invoke(runner, "verify", str(path), "--public-key", key, *extra)


def sql(path: Path, statement: str, *args: Any) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(statement, args)
    conn.close()


def test_exit_codes_are_documented() -> None:
    assert set(EXIT_CODES) == {1, 2, 3}


def test_key_prints_the_verifier_key(runner: CliRunner, db: Path, vkey: str) -> None:
    result = invoke(runner, "key", "--db", f"sqlite:///{db}")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == vkey
    result = invoke(runner, "key", "--db", f"sqlite:///{db}", "--format", "json")
    assert json.loads(result.stdout) == {"origin": ORIGIN, "verifier_key": vkey}


def test_show_filters_and_limits(runner: CliRunner, db: Path) -> None:
    result = invoke(
        runner,
        "show",
        "--db",
        f"sqlite:///{db}",
        "--decision",
        "deny",
        "--purpose",
        "statistics",
        "--since",
        "2025-03-01T08:31:00Z",
        "--limit",
        "5",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    records = data["records"]
    assert [r["seq"] for r in records] == [64, 74, 84, 94, 104]
    assert all(
        r["decision"] == "deny" and r["purpose"] == "statistics" for r in records
    )
    assert data["more"] is True and data["tree_size"] == SIZE


def test_show_prints_a_table(runner: CliRunner, db: Path) -> None:
    result = runner.invoke(
        app,
        [
            "audit",
            "show",
            "--db",
            f"sqlite:///{db}",
            "--dataset",
            "cases",
            "--limit",
            "3",
        ],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    assert "3 records" in result.stdout
    assert "│ cases " in result.stdout and "agency-c/coordinator/hub" in result.stdout
    assert "more records match" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since: 'yesterday' is not an ISO 8601 time"),
        (["--decision", "maybe"], "--decision: 'maybe' is not one of"),
    ],
)
def test_show_usage_mistakes_get_one_line(
    runner: CliRunner, db: Path, args: list[str], message: str
) -> None:
    result = invoke(runner, "show", "--db", f"sqlite:///{db}", *args)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"error: {result.stderr.strip()[7:]}"]
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_one_source_is_required(runner: CliRunner, db: Path, tmp_path: Path) -> None:
    result = invoke(runner, "show")
    assert result.exit_code == 2 and "exactly one of --node" in result.stderr
    result = invoke(runner, "show", "--node", "127.0.0.1:1")
    assert result.exit_code == 2 and "--ca, --cert, --key missing" in result.stderr
    result = invoke(runner, "show", "--db", f"sqlite:///{tmp_path / 'nope.db'}")
    assert result.exit_code == 3 and "no decision log database" in result.stderr


def test_export_and_verify(
    runner: CliRunner, db: Path, vkey: str, tmp_path: Path
) -> None:
    out, csv_out = tmp_path / "log.jsonl", tmp_path / "log.csv"
    result = invoke(
        runner,
        "export",
        "--db",
        f"sqlite:///{db}",
        "--out",
        str(out),
        "--csv",
        str(csv_out),
    )
    assert result.exit_code == 0, result.output
    assert f"exported {SIZE} records" in result.stderr
    assert len(csv_out.read_text(encoding="utf-8-sig").splitlines()) == SIZE + 1
    key_file = tmp_path / "log.pub"
    key_file.write_text(vkey + "\n")
    saved = tmp_path / "saved.note"
    result = verify(runner, out, str(key_file), "--save-checkpoint", str(saved))
    assert result.exit_code == 0, result.output
    assert f"verified: {SIZE} records" in result.stdout
    assert saved.read_text().startswith(f"{ORIGIN}\n{SIZE}\n")
    result = verify(runner, out, vkey, "--since", str(saved), "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["attested_size"] == SIZE
    assert report["first_bad_seq"] is None and report["problems"] == []


# --- tampering ---------------------------------------------------------------------


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def record_line(lines: list[bytes], seq: int) -> int:
    """Index of record ``seq`` in an export's lines (line 0 is the header)."""
    assert json.loads(lines[seq + 1])["seq"] == seq
    return seq + 1


def assert_not_verified(result: Any, first_bad: int | None) -> None:
    assert result.exit_code == 1, result.output
    first = "none" if first_bad is None else str(first_bad)
    assert result.stdout.splitlines()[0] == f"NOT VERIFIED: first bad seq {first}"
    assert len(result.stdout.splitlines()) >= 2  # every problem follows


def test_an_edited_record_in_the_database(
    runner: CliRunner, db: Path, vkey: str, tmp_path: Path
) -> None:
    sql(
        db,
        "UPDATE audit_records SET canonical_json = replace(canonical_json, "
        '\'"decision":"deny"\', \'"decision":"allow"\') WHERE seq = 104',
    )
    out = export(runner, db, tmp_path / "log.jsonl")
    assert_not_verified(verify(runner, out, vkey), 104)


def test_a_deleted_record_in_the_database(
    runner: CliRunner, db: Path, vkey: str, tmp_path: Path
) -> None:
    sql(db, "DELETE FROM audit_records WHERE seq = 150")
    out = export(runner, db, tmp_path / "log.jsonl")
    result = verify(runner, out, vkey)
    assert_not_verified(result, 150)
    assert "seq 150 missing" in result.stdout


def test_an_edited_checkpoint_in_the_database(
    runner: CliRunner, db: Path, vkey: str, tmp_path: Path
) -> None:
    sql(
        db,
        "UPDATE audit_checkpoints SET note = replace(note, ?, ?) WHERE tree_size = 128",
        f"{ORIGIN}\n128\n",
        f"{ORIGIN}\n127\n",
    )
    out = export(runner, db, tmp_path / "log.jsonl")
    result = verify(runner, out, vkey)
    assert result.exit_code == 1
    assert "does not verify" in result.stdout


def test_an_edited_line_in_an_export(
    runner: CliRunner, db: Path, vkey: str, tmp_path: Path
) -> None:
    out = export(runner, db, tmp_path / "log.jsonl")
    lines = lines_of(out)
    i = record_line(lines, 77)
    lines[i] = lines[i].replace(b'"purpose":"research"', b'"purpose":"training"')
    out.write_bytes(b"".join(lines))
    assert_not_verified(verify(runner, out, vkey), 77)


def test_a_deleted_line_in_an_export(
    runner: CliRunner, db: Path, vkey: str, tmp_path: Path
) -> None:
    out = export(runner, db, tmp_path / "log.jsonl")
    lines = lines_of(out)
    del lines[record_line(lines, 200)]
    out.write_bytes(b"".join(lines))
    assert_not_verified(verify(runner, out, vkey), 200)


def test_reordered_lines_in_an_export(
    runner: CliRunner, db: Path, vkey: str, tmp_path: Path
) -> None:
    out = export(runner, db, tmp_path / "log.jsonl")
    lines = lines_of(out)
    i = record_line(lines, 30)
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    out.write_bytes(b"".join(lines))
    assert_not_verified(verify(runner, out, vkey), 30)


def test_a_truncated_export(
    runner: CliRunner, db: Path, vkey: str, tmp_path: Path
) -> None:
    out = export(runner, db, tmp_path / "log.jsonl")
    lines = lines_of(out)
    kept = lines[: record_line(lines, 250)] + lines[SIZE + 1 :]  # checkpoints stay
    out.write_bytes(b"".join(kept))
    result = verify(runner, out, vkey)
    assert_not_verified(result, 250)
    assert "truncated" in result.stdout


def test_a_cleanly_truncated_export_fails_against_a_saved_checkpoint(
    runner: CliRunner, db: Path, vkey: str, tmp_path: Path
) -> None:
    out = export(runner, db, tmp_path / "log.jsonl")
    saved = tmp_path / "saved.note"
    assert verify(runner, out, vkey, "--save-checkpoint", str(saved)).exit_code == 0
    # Cut the records after 256 and every checkpoint beyond: a consistent prefix.
    lines = lines_of(out)
    header = json.loads(lines[0])
    header["tree_size"] = 256
    checkpoints = [
        line for line in lines[SIZE + 1 :] if json.loads(line)["tree_size"] <= 256
    ]
    prefix = [json.dumps(header).encode() + b"\n", *lines[1:257], *checkpoints]
    out.write_bytes(b"".join(prefix))
    assert verify(runner, out, vkey).exit_code == 0  # alone, a prefix verifies
    result = verify(runner, out, vkey, "--since", str(saved))
    assert_not_verified(result, 256)
    assert "since checkpoint" in result.stdout


def test_an_inserted_record_in_an_export(
    runner: CliRunner, db: Path, vkey: str, tmp_path: Path
) -> None:
    out = export(runner, db, tmp_path / "log.jsonl")
    lines = lines_of(out)
    i = record_line(lines, 10)
    lines.insert(i, lines[i])
    out.write_bytes(b"".join(lines))
    assert verify(runner, out, vkey).exit_code == 1


def test_an_appended_unsigned_record_in_an_export(
    runner: CliRunner, db: Path, vkey: str, tmp_path: Path
) -> None:
    from policies.auditlog import DecisionRecord

    out = export(runner, db, tmp_path / "log.jsonl")
    lines = lines_of(out)
    last = DecisionRecord.from_json(lines[SIZE])
    forged = DecisionRecord.from_dict(
        {
            **last.to_dict(),
            "seq": SIZE,
            "prev_hash": last.chain_hash(),
            "decision": "allow",
        }
    )
    lines.insert(SIZE + 1, forged.canonical_bytes() + b"\n")
    header = json.loads(lines[0])
    header["tree_size"] = SIZE + 1
    lines[0] = json.dumps(header).encode() + b"\n"
    out.write_bytes(b"".join(lines))
    result = verify(runner, out, vkey)
    assert_not_verified(result, SIZE)
    assert "not covered by any signed checkpoint" in result.stdout


def test_the_wrong_key_does_not_verify(
    runner: CliRunner, db: Path, tmp_path: Path
) -> None:
    out = export(runner, db, tmp_path / "log.jsonl")
    result = verify(
        runner, out, log_verifier_key(ORIGIN, OTHER_KEY), "--format", "json"
    )
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert any("no valid checkpoint" in p for p in report["problems"])
    assert any("not the pinned one" in p for p in report["problems"])


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda out, key: [str(out), "--public-key", "not-a-key"], "--public-key:"),
        (
            lambda out, key: [str(out.with_suffix(".csv")), "--public-key", key],
            "not an",
        ),
        (
            lambda out, key: [str(out.with_name("nope")), "--public-key", key],
            "cannot read",
        ),
        (
            lambda out, key: [str(out), "--public-key", key, "--since", str(out)],
            "not JSON nor a signed note",
        ),
    ],
)
def test_verify_usage_mistakes_get_one_line(
    runner: CliRunner, db: Path, vkey: str, tmp_path: Path, make_args: Any, message: str
) -> None:
    out = tmp_path / "log.jsonl"
    result = invoke(
        runner,
        "export",
        "--db",
        f"sqlite:///{db}",
        "--out",
        str(out),
        "--csv",
        str(out.with_suffix(".csv")),
    )
    assert result.exit_code == 0
    result = invoke(runner, "verify", *make_args(out, vkey))
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert "Traceback" not in result.output
