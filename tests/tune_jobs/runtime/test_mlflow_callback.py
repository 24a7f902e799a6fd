"""Which trials a fit left cut short: the status at Tune's last step, or the restored one for a trial never stepped."""

from types import SimpleNamespace

from ray.tune.experiment import Trial

from tune_jobs.runtime.mlflow_callback import MlflowTrialRuns


def test_a_trial_restored_finished_is_not_cut_short_and_a_running_one_is():
    callback = MlflowTrialRuns(SimpleNamespace(sweep_id="s"))
    trial = lambda trial_id, status: SimpleNamespace(trial_id=trial_id, status=status)  # noqa: E731
    callback.on_step_end(iteration=1, trials=[trial("running", Trial.RUNNING), trial("done", Trial.TERMINATED)])
    # a Ctrl-C: Tune's clean-up marks the running trial TERMINATED before on_experiment_end
    callback.on_experiment_end(trials=[trial("running", Trial.TERMINATED), trial("done", Trial.TERMINATED),
                                       trial("restored", Trial.TERMINATED), trial("failed", Trial.ERROR)])
    assert callback.interrupted(["running", "done", "restored", "failed"]) == {"running"}
