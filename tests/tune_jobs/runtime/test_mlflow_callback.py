"""The MLflow callback: its write queue never blocks on a value MLflow cannot store, it warns about a metric
outside every namespace (never about a trial's resolved config, ``param/*``, logged as params with the run's
source, or ``grokking_step``), and a restored copy shares the live callback only within its fit; the statuses
callback knows which trials a fit left cut short (the status at Tune's last step, or the restored one)."""

from __future__ import annotations

import logging
import pickle
import time
from types import SimpleNamespace

import pytest

from mlflow.tracking import MlflowClient
from ray.tune.experiment import Trial

from mlflow_utils import sweep_run
from trainables.addition.config import TrainConfig
from tune_jobs.runtime.driver_callbacks import bound
from tune_jobs.runtime.interruptions import TrialStatuses
from tune_jobs.runtime.mlflow_callback import MlflowTrialRuns, split_metrics
from tune_jobs.trials.addition_record import addition_params

CONFIG = {"model": {"d_model": 8}, "seeds": [0], "seeds_per_trial": 1}


def test_a_result_with_a_step_mlflow_cannot_store_is_dropped_and_the_queue_goes_on(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    with sweep_run("s", "exp", {}, {}, uri) as tracker:
        callback = MlflowTrialRuns(tracker)
        trial = SimpleNamespace(trial_id="t1", config=CONFIG)
        started = time.monotonic()
        for step in (1e400, float("nan"), 10**30, -5, 1.5, None):
            callback.on_trial_result(0, [trial], trial, {"step": step, "val/exact_match": 0.5})
        callback.on_trial_result(0, [trial], trial, {"step": 10, "val/exact_match": 0.75})
        callback.flush(timeout_s=5)
        assert time.monotonic() - started < 30 and not callback.pending and callback.failures == 0
    history = MlflowClient(uri).get_metric_history(callback.runs["t1"], "val/exact_match")
    assert [(m.step, m.value) for m in history] == [(10, 0.75)]


def report_twice(uri: str, config: dict, report: dict) -> MlflowTrialRuns:
    """The callback after trial t1 of ``config`` reported ``report`` at steps 10 and 20 into a new job at ``uri``."""
    with sweep_run("s", "exp", {}, {}, uri) as tracker:
        callback = MlflowTrialRuns(tracker)
        trial = SimpleNamespace(trial_id="t1", config=config)
        for step in (10, 20):
            callback.on_trial_result(0, [trial], trial, {**report, "step": step})
        callback.flush(timeout_s=5)
    return callback


def test_a_metric_outside_every_namespace_is_named_in_a_warning_once_and_bookkeeping_is_not(tmp_path, caplog):
    report = {"val/exact_match": 0.5, "lr": 0.01, "weird/score": 3.0, "step": 10, "training_iteration": 2,
              "config/model/d_model": 8, "env/threads": 1, "env/device": "cpu", "date": "2026-12-02", "done": False}
    assert split_metrics(report) == ({"val/exact_match": 0.5, "lr": 0.01}, ["weird/score"])
    with caplog.at_level(logging.WARNING):
        callback = report_twice(f"sqlite:///{tmp_path / 'm.db'}", CONFIG, report)
    warnings = [r.getMessage() for r in caplog.records if "weird/score" in r.getMessage()]
    assert len(warnings) == 1 and "METRIC_PREFIXES" in warnings[0] and callback.refused == {"weird/score"}


def test_a_restored_copy_shares_the_live_callback_only_inside_its_fit():
    live = TrialStatuses("job-1")
    state = pickle.dumps(live)
    with bound([live]):
        copy = pickle.loads(state)
        copy.on_step_end(iteration=1, trials=[SimpleNamespace(trial_id="a", status=Trial.RUNNING)])
    assert live.statuses == {"a": Trial.RUNNING}
    with pytest.raises(RuntimeError, match="restored outside its fit"):
        pickle.loads(state)


def test_a_trial_restored_finished_is_not_cut_short_and_a_running_one_is():
    callback = TrialStatuses("job-1")
    trial = lambda trial_id, status: SimpleNamespace(trial_id=trial_id, status=status)  # noqa: E731
    callback.on_step_end(iteration=1, trials=[trial("running", Trial.RUNNING), trial("done", Trial.TERMINATED)])
    # a Ctrl-C: Tune's clean-up marks the running trial TERMINATED before on_experiment_end
    callback.on_experiment_end(trials=[trial("running", Trial.TERMINATED), trial("done", Trial.TERMINATED),
                                       trial("restored", Trial.TERMINATED), trial("failed", Trial.ERROR)])
    assert callback.interrupted(["running", "done", "restored", "failed"]) == {"running"}


def test_the_callback_logs_each_stacked_seeds_resolved_config_and_source_without_a_warning(tmp_path, caplog):
    config = {"model": {"d_model": 8}, "train": {"lr": 0.015}, "seeds": [3, 4], "seeds_per_trial": 2}
    resolved = addition_params(config, TrainConfig(lr=0.015))
    report = {"step": 10, **resolved, "seed3/val/exact_match": 0.5, "seed4/val/exact_match": 1.0,
              "seed4/grokking_step": 10.0}
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    with caplog.at_level(logging.WARNING):
        callback = report_twice(uri, config, report)
    assert not callback.refused and not [r for r in caplog.records if "outside every metric namespace" in r.getMessage()]
    client = MlflowClient(uri)
    for seed in (3, 4):
        run = client.get_run(callback.runs[f"t1-s{seed}"])
        assert run.data.params["seed"] == str(seed) and run.data.params["train.lr"] == "0.015"
        assert run.data.params["train.batch_size"] == "512" and run.data.params["model.n_layer"] == "1"
        assert run.data.params["grokking_censored_at"] == str(TrainConfig().train_steps - 1)
        assert run.data.tags["mlflow.source.name"] == f"make rerun RUN={run.info.run_id} TRACKING_URI={uri}"
    assert client.get_run(callback.runs["t1-s4"]).data.metrics["grokking_step"] == 10.0
