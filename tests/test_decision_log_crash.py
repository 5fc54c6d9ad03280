"""Killing the writer at any moment loses no acknowledged record and tears none.

A child process appends from eight threads and prints each seq as soon as
``append`` returns; the test SIGKILLs it at a random moment, reopens the log
(which checks its head and latest checkpoint), and verifies an export. Several
rounds run on the same database, so recovery from a crash is itself crashed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from policies.auditlog import (
    SqlDecisionLog,
    export_log,
    load_or_create_log_key,
    open_log_reader,
    verify_export,
)
from tests.test_decision_log import ORIGIN, T0

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import os, sys, threading
from pathlib import Path
from policies.auditlog import SqlDecisionLog, load_or_create_log_key
from tests.test_decision_log import ORIGIN, make_fields

url, key_file, base = sys.argv[1], sys.argv[2], int(sys.argv[3])
log = SqlDecisionLog(url, origin=ORIGIN, signing_key=load_or_create_log_key(Path(key_file)),
                     checkpoint_every=32)
os.write(1, b"ready\\n")

def work(worker):
    i = 0
    while True:
        record = log.append(make_fields(base + worker * 100_000 + i))
        os.write(1, b"%d\\n" % record.seq)
        i += 1

for worker in range(8):
    threading.Thread(target=work, args=(worker,), daemon=True).start()
threading.Event().wait()
"""


class Child:
    """The appending process and what it acknowledged."""

    def __init__(self, url: str, key_file: Path, base: int) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(key_file), str(base)],
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        self.data = bytearray()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            with self.lock:
                self.data += chunk

    def acked(self) -> list[int]:
        with self.lock:
            lines = bytes(self.data).split(b"\n")[:-1]  # the last may be partial
        return [int(line) for line in lines if line != b"ready"]

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked()) < count:
            assert self.proc.poll() is None, "the child died"
            assert time.monotonic() < deadline, "the child did not append in time"
            time.sleep(0.005)

    def kill(self) -> list[int]:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return self.acked()


@pytest.mark.slow
def test_sigkill_under_load_loses_no_acknowledged_record(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    key_file = tmp_path / "log.key"
    key = load_or_create_log_key(key_file)
    rng = random.Random(20250301)
    all_acked: set[int] = set()
    for round_ in range(5):
        child = Child(url, key_file, base=round_ * 1_000_000)
        child.wait_for(rng.randint(1, 50))
        time.sleep(rng.uniform(0.0, 0.6))
        acked = child.kill()
        assert len(acked) == len(set(acked)), "a seq was acknowledged twice"
        all_acked.update(acked)

        # Reopening checks the chain head and the latest signed checkpoint, and
        # signs the unsigned tail.
        log = SqlDecisionLog(url, origin=ORIGIN, signing_key=key)
        size = log.size()
        log.close()
        missing = sorted(s for s in all_acked if s >= size)
        assert not missing, f"round {round_}: acknowledged seqs lost: {missing[:10]}"
        assert size >= len(all_acked)

        with open_log_reader(url) as reader:
            out = tmp_path / f"round-{round_}.jsonl"
            summary = export_log(reader, out, now=T0)
            assert summary.tree_size == size
            assert [r.seq for r in reader.iter_records()] == list(range(size))
        result = verify_export(out, log.verifier_key)
        assert result.ok, result.problems
        assert result.report.records == size == result.report.attested_size
