"""The MLflow callback: its write queue never blocks on a value MLflow cannot store, it warns about a metric
outside every namespace, and a restored copy shares the live callback only within its fit; the statuses
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
from tune_jobs.runtime.driver_callbacks import bound
from tune_jobs.runtime.interruptions import TrialStatuses
from tune_jobs.runtime.mlflow_callback import MlflowTrialRuns, split_metrics

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


def test_a_metric_outside_every_namespace_is_named_in_a_warning_once_and_bookkeeping_is_not(tmp_path, caplog):
    report = {"val/exact_match": 0.5, "lr": 0.01, "weird/score": 3.0, "step": 10, "training_iteration": 2,
              "config/model/d_model": 8, "env/threads": 1, "env/device": "cpu", "date": "2026-12-02", "done": False}
    assert split_metrics(report) == ({"val/exact_match": 0.5, "lr": 0.01}, ["weird/score"])
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    with sweep_run("s", "exp", {}, {}, uri) as tracker, caplog.at_level(logging.WARNING):
        callback = MlflowTrialRuns(tracker)
        trial = SimpleNamespace(trial_id="t1", config=CONFIG)
        for step in (10, 20):
            callback.on_trial_result(0, [trial], trial, {**report, "step": step})
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
