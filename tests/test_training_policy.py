"""Each node refuses training its policy does not allow, logs it, and the job goes on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from coordinator.training import JobFailed
from tests._training import (
    APPS,
    TrainingFederation,
    decisions,
    spec,
    start_training_federation,
    training_policy,
)

MLP = APPS["mlp"]


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainingFederation]:
    """agency-a: DP at least z = 2.24 (max rho 0.1); agency-b: at least 5
    participants; agency-c: only the MLP is allow-listed."""
    fed = start_training_federation(
        tmp_path_factory.mktemp("strict"),
        {
            "agency-a": training_policy(
                max_rho=0.1, exact=False, min_participants=None
            ),
            "agency-b": training_policy(min_participants=5),
            "agency-c": training_policy(
                apps=[{"name": MLP.name, "digest": MLP.digest}]
            ),
        },
    )
    try:
        yield fed
    finally:
        fed.stop()


def test_each_node_refuses_under_its_own_rule(strict: TrainingFederation) -> None:
    job = spec(privacy={"noise_multiplier": 1.0}, job={"rounds": 1, "min_nodes": 1})
    with strict.trainer() as trainer, pytest.raises(JobFailed, match="no node trained"):
        trainer.start(job, job_id="all-refuse")
    messages = {
        d["reason"]
        for agency in ("agency-a", "agency-b", "agency-c")
        for d in decisions(strict, agency)
        if d["query_id"].startswith("all-refuse/")
    }
    joined = " | ".join(sorted(messages))
    assert "rho 0.5 per query: the cap is rho 0.1" in joined  # DP below the minimum
    assert "fewer than 5 participating agencies (3)" in joined  # too few participants
    assert "app 'logistic-regression' at that digest" in joined  # not allow-listed


def test_the_job_goes_on_with_the_nodes_that_allow_it(
    strict: TrainingFederation,
) -> None:
    job = spec(privacy={"noise_multiplier": 3.0}, job={"rounds": 2, "min_nodes": 1})
    with strict.trainer() as trainer:
        result = trainer.start(job, job_id="goes-on")
    first, second = result.rounds
    assert first.participants == ["agency-a/node"]
    assert set(first.failures) == {
        "agency-b/node (train)",
        "agency-c/node (train)",
    }
    # Refused by policy: left out of the later rounds instead of asked again.
    assert second.participants == ["agency-a/node"]
    assert second.failures == {}
    spend = result.spent["agency-a/node"]
    assert spend.noise_multiplier == 3.0
    assert spend.rho == pytest.approx(4 * 1 / (2 * 3.0**2))  # 2 rounds x (train + eval)
    denied = [
        d for d in decisions(strict, "agency-b") if d["query_id"].startswith("goes-on/")
    ]
    assert [d["decision"] for d in denied] == ["deny"]


def test_purpose_not_allowed(strict: TrainingFederation) -> None:
    job = spec(job={"rounds": 1, "min_nodes": 1, "purpose": "investigation"})
    with strict.trainer() as trainer, pytest.raises(JobFailed):
        trainer.start(job, job_id="wrong-purpose")
    reasons = [
        d["reason"]
        for d in decisions(strict, "agency-a")
        if d["query_id"].startswith("wrong-purpose/")
    ]
    assert reasons and "purpose 'investigation'" in reasons[0]


def test_digest_mismatch_is_refused_before_the_policy(
    strict: TrainingFederation,
) -> None:
    job = spec(job={"rounds": 1, "min_nodes": 1, "app_digest": "sha256:" + "0" * 64})
    with strict.trainer() as trainer, pytest.raises(JobFailed) as failure:
        trainer.start(job, job_id="other-digest")
    assert "FAILED_PRECONDITION" in str(failure.value) or "installed at digest" in str(
        failure.value
    )
    logged = [
        d
        for d in decisions(strict, "agency-a")
        if d["query_id"].startswith("other-digest/")
    ]
    assert logged and {d["decision"] for d in logged} == {"deny"}
    assert {d["reason"] for d in logged} == {"invalid request: job.app"}
    assert {d["privacy_charged"] for d in logged} == {0}


def test_a_policy_pinning_another_digest_refuses(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    lr = APPS["logistic-regression"]
    fed = start_training_federation(
        tmp_path_factory.mktemp("pinned"),
        {
            agency: training_policy(
                apps=[{"name": lr.name, "digest": "sha256:" + "1" * 64}]
            )
            for agency in ("agency-a", "agency-b", "agency-c")
        },
    )
    try:
        with fed.trainer() as trainer, pytest.raises(JobFailed):
            trainer.start(spec(job={"rounds": 1}), job_id="pinned")
        reasons = [d["reason"] for d in decisions(fed, "agency-b")]
        assert "app 'logistic-regression' at that digest" in reasons[-1]
    finally:
        fed.stop()
