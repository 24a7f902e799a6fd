"""A smoke sweep on a local Ray: what lands in MLflow, including a trial that crashes."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from tests.mlflow_helpers import job_runs
from search_spaces import Choice, SearchSpace
from tune_jobs.sweep_addition import SweepArgs, run_addition_sweep
from tune_jobs.verdicts.seeds import INCONCLUSIVE

# One configuration trains; the other trains on the 'meta' device, which fails at the first
# loss.item(): a real crash inside the trial, not a mock.
SPACE = SearchSpace(
    name="test", description="two tiny configurations, one of which crashes", seeds=(0, 1, 2),
    sections={
        "model": {"d_model": 4, "d_ff": 8},
        "train": {"lr": 0.01, "train_steps": 40, "eval_interval": 20, "warmup_steps": 5, "batch_size": 32,
                  "val_size": 64, "test_size": 64, "mode": "fast", "device": Choice(("cpu", "meta"))},
    },
    points_to_evaluate=({"train": {"device": "cpu"}}, {"train": {"device": "meta"}}),
)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    ray = pytest.importorskip("ray")
    root = tmp_path_factory.mktemp("sweep")
    uri = f"sqlite:///{root / 'mlruns.db'}"
    args = SweepArgs(space="smoke", num_configs=2, name="test-sweep", experiment="test", tracking_uri=uri,
                     storage_path=root / "ray_results", max_concurrent=2)
    try:
        table = run_addition_sweep(args, SPACE)
    finally:
        ray.shutdown()
    client, parent, children = job_runs(uri, "test")
    return table, client, parent, children


def test_verdict_table(sweep):
    table, *_ = sweep
    assert len(table) == 2
    crashed = table[table["errored"] == 3]
    trained = table[table["errored"] == 0]
    assert len(crashed) == 1 and crashed.iloc[0]["verdict"] == INCONCLUSIVE and crashed.iloc[0]["seeds_run"] == 0
    assert len(trained) == 1 and trained.iloc[0]["seeds_run"] == 3 and trained.iloc[0]["seeds"] == "0,1,2"


def test_parent_run_holds_the_verdicts(sweep):
    table, client, parent, children = sweep
    assert parent.info.status == "FINISHED"
    for name in table["name"]:
        assert parent.data.tags[f"verdict.{name}"].split()[0] in ("INCONCLUSIVE", "NOT", "SEED-SENSITIVE",
                                                                   "REPRODUCIBLE")
    assert parent.data.tags["best_config"] == table.iloc[0]["name"]
    assert parent.data.tags["best_verdict"] == parent.data.tags[f"verdict.{table.iloc[0]['name']}"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"verdict.json", "verdict.csv"} <= artifacts
    assert parent.data.params["job.num_configs"] == "2" and parent.data.metrics["perf/job_seconds"] > 0


def test_one_nested_run_per_trial_none_left_running(sweep):
    _, client, parent, children = sweep
    assert len(children) == 6
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert len({c.data.tags["trial_id"] for c in children}) == 6
    statuses = sorted(c.info.status for c in children)
    assert statuses == ["FAILED"] * 3 + ["FINISHED"] * 3


def test_failed_trials_keep_their_error(sweep):
    _, client, _, children = sweep
    for run in children:
        if run.info.status == "FAILED":
            assert "meta" in run.data.tags["error"]
            assert run.data.params["train.device"] == "meta"


def test_finished_trials_have_metrics_tags_and_checkpoint(sweep):
    _, client, _, children = sweep
    for run in (c for c in children if c.info.status == "FINISHED"):
        for key in ("train/loss", "val/exact_match", "val/token_accuracy", "lr"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [0, 20, 39], key
        tags = run.data.tags
        for key in ("seed", "config_id", "trial_id", "git_commit", "torch_version", "device", "threads", "verdict"):
            assert key in tags, key
        assert tags["threads"] == "1" and tags["device"] == "cpu"
        assert run.data.params["seed"] == tags["seed"]
        files = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
        assert "checkpoints/best.pt" in files


def test_names_outcomes_and_per_configuration_metrics(sweep):
    table, client, parent, children = sweep
    assert parent.info.run_name == "sweep-addition test" and parent.data.tags["sweep_id"] == "test-sweep"
    # the two configurations differ in train.device only, which names leave out: the table tells them apart
    assert list(table.columns[:2]) == ["name", "config_id"]
    assert sorted(table["name"]) == sorted(f"d4-ff8-lr0.01-{c}" for c in table["config_id"])
    assert sorted(c.info.run_name for c in children) == [f"d4-ff8-lr0.01 s{s}" for s in (0, 0, 1, 1, 2, 2)]
    by_status = {(c.info.status, c.data.tags["outcome"]) for c in children}
    assert by_status == {("FAILED", "errored"), ("FINISHED", "failed")}  # 40 steps never learn addition
    trained = table[table["errored"] == 0].iloc[0]
    for child in children:
        assert child.data.tags["config"] == f"d4-ff8-lr0.01-{child.data.tags['config_id']}"
        if child.info.status == "FINISHED":
            assert child.data.metrics["config/success_rate"] == trained["success_rate"] == 0.0
            assert child.data.tags["config_success_rate"] == "0"  # read as text: rounded
    assert not [key for key in parent.data.metrics if key.startswith("success_rate/")]  # in verdict.json only


def test_parent_params_description_figures_and_study(sweep):
    table, client, parent, _ = sweep
    params = parent.data.params
    assert params["job.train_steps"] == "40" and params["job.seeds"] == "[0, 1, 2]" and params["job.mode"] == "fast"
    assert params["job.concurrent_trials"] == "2" and params["space.trials"] == "6"
    assert "null" not in params.values()
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith(f"Best configuration: **{trained_name(table)}**")
    assert f"| {trained_name(table)} | NOT REPRODUCED | 0/3 |" in note
    figures = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert figures == {"figures/success_rate.png", "figures/learning_curves.png", "figures/grokking_steps.png"}
    for figure in figures:
        assert f"get-artifact?path={figure.replace('/', '%2F')}&run_uuid={parent.info.run_id}" in note
    journal = Path(client.tracking_uri[len("sqlite:///"):]).parent / "optuna" / "studies.log"
    study = optuna.load_study(study_name="test-sweep", storage=JournalStorage(JournalFileBackend(str(journal))))
    assert sorted(t.params["train.device"] for t in study.trials) == ["cpu", "meta"]  # named as MLflow names it
    assert {t.user_attrs["config_id"] for t in study.trials} == set(table["config_id"])


def trained_name(table):
    return table[table["errored"] == 0].iloc[0]["name"]
