"""The MLflow callback: its write queue never blocks on a value MLflow cannot store, and it knows which
trials a fit left cut short (the status at Tune's last step, or the restored one for a trial never stepped)."""

from __future__ import annotations

import time
from types import SimpleNamespace

from mlflow.tracking import MlflowClient
from ray.tune.experiment import Trial

from mlflow_utils import sweep_run
from tune_jobs.runtime.mlflow_callback import MlflowTrialRuns

CONFIG = {"model": {"d_model": 8}, "seed": 0}


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


def test_a_trial_restored_finished_is_not_cut_short_and_a_running_one_is():
    callback = MlflowTrialRuns(SimpleNamespace(sweep_id="s"))
    trial = lambda trial_id, status: SimpleNamespace(trial_id=trial_id, status=status)  # noqa: E731
    callback.on_step_end(iteration=1, trials=[trial("running", Trial.RUNNING), trial("done", Trial.TERMINATED)])
    # a Ctrl-C: Tune's clean-up marks the running trial TERMINATED before on_experiment_end
    callback.on_experiment_end(trials=[trial("running", Trial.TERMINATED), trial("done", Trial.TERMINATED),
                                       trial("restored", Trial.TERMINATED), trial("failed", Trial.ERROR)])
    assert callback.interrupted(["running", "done", "restored", "failed"]) == {"running"}
