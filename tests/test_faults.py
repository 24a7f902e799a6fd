"""Fault injection (``make test-faults``): kill a trial's process, kill the driver and resume.

Each scenario runs the same small sweep as an uninterrupted baseline, as real driver processes,
and asserts: every trial's final result is in MLflow exactly once, no run is left RUNNING, no
metric is logged twice at a step, and the results equal the baseline's bit for bit.
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.faults import Sweep, assert_same_results, assert_sound, by_replicate, kill_process_group, mlflow_trials

pytestmark = pytest.mark.faults

ARGS = ["--space", "smoke", "--num-configs", "2", "--seeds", "2", "--train-steps", "800", "--eval-interval", "100",
        "--max-concurrent", "2", "--search-seed", "7"]
"""2 configurations (the record's point, then one TPE draw) x 2 seeds x 800 steps, checkpoints every 100."""


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    sweep = Sweep(tmp_path_factory.mktemp("baseline"), "baseline", ARGS)
    try:
        sweep.run()
    finally:
        sweep.cleanup()
    trials = mlflow_trials(sweep.tracking_uri)
    assert_sound(trials)
    assert len(trials) == 4
    return trials


@pytest.fixture
def sweep(tmp_path):
    sweep = Sweep(tmp_path, "faulted", ARGS)
    yield sweep
    sweep.cleanup()


def _running_past(step):
    def condition(results):
        for trial_id, rows in results.items():
            if rows and rows[-1]["step"] >= step and not rows[-1].get("done"):
                return trial_id, rows[-1]["pid"]
        return None
    return condition


def test_a_killed_trial_process_is_retried_from_its_checkpoint(sweep, baseline):
    driver = sweep.start()
    trial_id, pid = sweep.wait_for(_running_past(300), driver, what="a trial past step 300")
    os.kill(pid, signal.SIGKILL)  # the trial's worker process dies (OOM killer, preempted VM)
    driver.wait(900)
    sweep.kill_ray()
    assert driver.returncode == 0, sweep.output(driver)[-4000:]

    trials = mlflow_trials(sweep.tracking_uri)
    assert_sound(trials)
    assert_same_results(trials, baseline)
    killed = next(t for t in trials if t["tags"]["trial_id"] == trial_id)
    resumed_at = [value for _, value in killed["histories"]["resumed_from_step"]]
    assert resumed_at and min(resumed_at) >= 300  # it went on from a checkpoint, not from step 0


def test_a_killed_driver_resumes_without_rerunning_finished_trials(sweep, baseline):
    driver = sweep.start()

    def one_done_one_running(results):
        done = [t for t, rows in results.items() if rows and "test/exact_match" in rows[-1]]  # its final report
        return done if done and _running_past(200)(results) else None

    finished = sweep.wait_for(one_done_one_running, driver, what="a finished trial and one past step 200")
    kill_process_group(driver)  # the laptop running the driver closes: driver and its local Ray die at once
    sweep.kill_ray()
    before = sweep.results()
    assert len(mlflow_trials(sweep.tracking_uri)) < 4 or any(
        t["status"] == "RUNNING" for t in mlflow_trials(sweep.tracking_uri))

    sweep.run("--resume")
    after = sweep.results()
    for trial_id in finished:  # finished trials were not trained again (at most their final report is repeated)
        assert {row["step"] for row in after[trial_id]} == {row["step"] for row in before[trial_id]}
    trials = mlflow_trials(sweep.tracking_uri)
    assert_sound(trials)
    assert_same_results(trials, baseline)  # same configurations: Optuna's state came back too
    assert any("resumed_from_step" in t["histories"] for t in trials)
    assert len(by_replicate(trials)) == 4
