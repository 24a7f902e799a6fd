"""Seed-batched trials in a sweep: K seeds in one Tune trial, and MLflow still one run per seed, as before."""

from __future__ import annotations

import pytest

from search_spaces import Choice, SearchSpace
from tests.mlflow_helpers import job_runs
from tune_jobs.sweep_addition import SweepArgs, run_addition_sweep

SPACE = SearchSpace(
    name="stacked", description="one tiny configuration, 4 seeds, 2 per trial", seeds=(0, 1, 2, 3),
    sections={"model": {"d_model": 4, "d_ff": 8},
              "train": {"lr": Choice((0.01,)), "train_steps": 40, "eval_interval": 20, "warmup_steps": 5,
                        "batch_size": 32, "val_size": 64, "test_size": 64}})


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    ray = pytest.importorskip("ray")
    root = tmp_path_factory.mktemp("stacked")
    uri = f"sqlite:///{root / 'mlruns.db'}"
    args = SweepArgs(num_configs=1, name="stacked-sweep", experiment="stacked", tracking_uri=uri,
                     storage_path=str(root / "ray_results"), max_concurrent=2, seeds_per_trial=2)
    try:
        table = run_addition_sweep(args, SPACE)
    finally:
        ray.shutdown()
    return (table, *job_runs(uri, "stacked"), root)


def test_two_trials_of_two_seeds_give_four_runs_and_one_verdict_row(sweep):
    table, client, parent, children, root = sweep
    assert len(table) == 1 and table.iloc[0]["seeds_run"] == 4 and table.iloc[0]["seeds"] == "0,1,2,3"
    assert len([p for p in (root / "ray_results" / "stacked-sweep").iterdir() if p.is_dir()]) == 2  # two Tune trials
    assert sorted(c.data.params["seed"] for c in children) == ["0", "1", "2", "3"]
    assert {c.info.status for c in children} == {"FINISHED"} and parent.info.status == "FINISHED"
    assert len({c.data.tags["trial_id"] for c in children}) == 4
    assert {c.data.params["train.stream"] for c in children} == {"counter"}


def test_each_seed_run_has_its_metrics_tags_and_single_format_checkpoints(sweep):
    _, client, _, children, _ = sweep
    for run in children:
        history = client.get_metric_history(run.info.run_id, "val/exact_match")
        assert [m.step for m in history] == [0, 20, 39]
        assert "test/exact_match" in run.data.metrics and run.data.tags["verdict"]
        files = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
        assert files == {"checkpoints/best.pt", "checkpoints/last.pt"}
