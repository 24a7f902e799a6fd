"""A short reproduction on a local Ray: the claimed seed twice plus one more, verdict fields in MLflow."""

import pytest
from mlflow.tracking import MlflowClient

from tune_jobs.reproduce import ReproduceArgs, run_reproduction

CLAIM = """name = "tiny-claim"
description = "a tiny configuration said to score at least 0.0 on AdderBoard"
source_repository = "tests"
source_commit = "none"
source_device = "cpu"
protocol = "adderboard"
comparison = "at_least"
claimed_value = 0.0
tolerance = 0.0

[model]
d_model = 4
d_ff = 8

[train]
seed = 5
train_steps = 1000
warmup_steps = 10
eval_interval = 10
batch_size = 32
val_size = 64
test_size = 64
"""


@pytest.fixture(scope="module")
def reproduction(tmp_path_factory):
    ray = pytest.importorskip("ray")
    root = tmp_path_factory.mktemp("reproduce")
    claim = root / "tiny-claim.toml"
    claim.write_text(CLAIM)
    uri = f"sqlite:///{root / 'mlruns.db'}"
    args = ReproduceArgs(claim=str(claim), seeds=1, train_steps=20, name="test-reproduce", experiment="repro",
                         tracking_uri=uri, storage_path=root / "ray_results", max_concurrent=2)
    try:
        verdict, runs = run_reproduction(args)
    finally:
        ray.shutdown()
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("repro")
    all_runs = client.search_runs([experiment.experiment_id])
    return verdict, runs, client, all_runs


def test_verdict(reproduction):
    verdict, runs, *_ = reproduction
    assert verdict.verdict == "CLAIM REPRODUCED"  # anything >= 0.0 meets this claim
    assert verdict.deterministic and verdict.first_difference_step is None  # same seed, same machine, same threads
    assert (verdict.other_successes, verdict.other_seeds) == (1, 1)
    assert sorted(zip(runs["role"], runs["seed"])) == [("claimed-a", 5), ("claimed-b", 5), ("other", 6)]
    assert all(runs["trace_length"] == 20)
    assert runs["measured"].between(0, 1).all()
    assert runs.set_index("role").loc["claimed-a", "trace"] == runs.set_index("role").loc["claimed-b", "trace"]


def test_mlflow_holds_the_claim_verdict(reproduction):
    verdict, runs, client, all_runs = reproduction
    parent = next(r for r in all_runs if r.data.tags.get("role") == "sweep")
    children = [r for r in all_runs if r.data.tags.get("role") == "trial"]
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert tags["claim.verdict"] == "CLAIM REPRODUCED" and tags["claim.deterministic"] == "true"
    assert tags["claim.other_seeds"] == "1/1"
    assert "torch" in tags["claim.environment"] and "1 thread(s)" in tags["claim.environment"]
    assert len(children) == 3 and {c.info.status for c in children} == {"FINISHED"}
    assert {c.data.tags["mlflow.runName"] for c in children} == {
        "tiny-claim claimed-a s5", "tiny-claim claimed-b s5", "tiny-claim other s6"}
    assert parent.info.run_name == "reproduce tiny-claim"
    for child in children:
        assert child.data.tags["claim.verdict"] == "CLAIM REPRODUCED" and child.data.tags["outcome"] == "success"
        assert "protocol/exact_match" in child.data.metrics
    assert "runs.csv" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    figures = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert figures == {"figures/claim_values.png", "figures/learning_curves.png"}
    note = parent.data.tags["mlflow.note.content"]
    assert "**VERDICT: CLAIM REPRODUCED**" in note and "get-artifact?path=figures%2Fclaim_values.png" in note
    assert parent.data.params["job.train_steps"] == "20" and parent.data.params["job.command_job"] == "none"


def test_other_seeds_stacked_in_one_trial_name_their_stream(tmp_path):
    """SEEDS_PER_TRIAL: the claimed seed's two runs stay in faithful mode (the reference's streams), the
    others train stacked on the counter stream, and the verdict says which run used which."""
    ray = pytest.importorskip("ray")
    claim = tmp_path / "tiny-claim.toml"
    claim.write_text(CLAIM)
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    args = ReproduceArgs(claim=str(claim), seeds=3, train_steps=20, name="stacked-reproduce", experiment="repro",
                         tracking_uri=uri, storage_path=tmp_path / "ray_results", max_concurrent=2, seeds_per_trial=3)
    try:
        verdict, runs = run_reproduction(args)
    finally:
        ray.shutdown()
    assert (verdict.other_successes, verdict.other_seeds) == (3, 3) and verdict.deterministic
    streams = dict(zip(zip(runs["role"], runs["seed"]), runs["stream"]))
    assert streams == {("claimed-a", 5): "reference", ("claimed-b", 5): "reference", ("other", 6): "counter",
                       ("other", 7): "counter", ("other", 8): "counter"}
    assert all(runs["trace_length"] == 20) and runs["measured"].between(0, 1).all()
    assert len([p for p in (tmp_path / "ray_results" / "stacked-reproduce").iterdir() if p.is_dir()]) == 3
    client = MlflowClient(uri)
    parent = client.search_runs([client.get_experiment_by_name("repro").experiment_id], "tags.role = 'sweep'")[0]
    assert parent.data.tags["claim.data_streams"] == "claimed-a, claimed-b: reference; other: counter"
