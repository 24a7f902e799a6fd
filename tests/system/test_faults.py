"""Fault injection (``make test-faults``): kill a trial's process, kill the driver and resume.

Each scenario runs the same small sweep as an uninterrupted baseline, as real driver processes,
and asserts: every trial's final result is in MLflow exactly once, no run is left RUNNING, no
metric is logged twice at a step, and the results equal the baseline's bit for bit.
"""

from __future__ import annotations

import os
import signal

import pytest

import time

from tests.system.faults import (Sweep, assert_same_results, assert_sound, by_replicate, failed_calls, kill_node,
                                 kill_process_group, mlflow_trials, record)

pytestmark = pytest.mark.faults

ARGS = ["--space", "smoke", "--num-configs", "2", "--seeds", "2", "--train-steps", "800", "--eval-interval", "100",
        "--max-concurrent", "2", "--search-seed", "7"]
"""2 configurations (the record's point, then one TPE draw) x 2 seeds x 800 steps, checkpoints every 100."""


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    sweep = Sweep(tmp_path_factory.mktemp("baseline"), "baseline", ARGS)
    started = time.monotonic()
    try:
        sweep.run()
    finally:
        sweep.cleanup()
    trials = mlflow_trials(sweep.tracking_uri)
    assert_sound(trials)
    assert len(trials) == 4
    record("uninterrupted baseline", wall_s=round(time.monotonic() - started, 1), trials=len(trials))
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
    started = time.monotonic()
    driver = sweep.start()
    trial_id, pid = sweep.wait_for(_running_past(300), driver, what="a trial past step 300")
    killed_at = sweep.results()[trial_id][-1]["step"]
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
    record("trial process killed", wall_s=round(time.monotonic() - started, 1), last_reported_step=killed_at,
           resumed_from_step=min(resumed_at), runs=len(trials), identical_to_baseline=True)


def test_a_killed_driver_resumes_without_rerunning_finished_trials(sweep, baseline):
    started = time.monotonic()
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

    killed_after = time.monotonic() - started
    resumed = time.monotonic()
    sweep.run("--resume")
    after = sweep.results()
    for trial_id in finished:  # finished trials were not trained again (at most their final report is repeated)
        assert {row["step"] for row in after[trial_id]} == {row["step"] for row in before[trial_id]}
    trials = mlflow_trials(sweep.tracking_uri)
    assert_sound(trials)
    assert_same_results(trials, baseline)  # same configurations: Optuna's state came back too
    assert any("resumed_from_step" in t["histories"] for t in trials)
    assert len(by_replicate(trials)) == 4
    record("driver killed, then --resume", killed_after_s=round(killed_after, 1),
           resume_wall_s=round(time.monotonic() - resumed, 1), finished_before_kill=len(finished),
           resumed_from_steps=sorted(min(v for _, v in t["histories"]["resumed_from_step"])
                                     for t in trials if "resumed_from_step" in t["histories"]),
           adopted_orphan_runs=sum("previous_trial_ids" in t["tags"] for t in trials), runs=len(trials),
           identical_to_baseline=True)


def test_an_mlflow_outage_mid_sweep_loses_no_result(sweep, baseline):
    from tests.system.faults import MlflowServer

    server = MlflowServer(sweep.root).start()
    sweep.server = server.uri
    try:
        started = time.monotonic()
        driver = sweep.start()
        sweep.wait_for(_running_past(100), driver, what="a trial past step 100")
        server.stop()  # the tracking server goes down while trials train
        time.sleep(20)
        assert driver.poll() is None, "the sweep stopped when MLflow went away"
        server.start()
        driver.wait(900)
        sweep.kill_ray()
        output = sweep.output(driver)
        assert driver.returncode == 0, output[-4000:]
        trials = mlflow_trials(sweep.tracking_uri)
    finally:
        server.stop()
    assert_sound(trials)
    assert_same_results(trials, baseline)
    assert failed_calls(output) > 0  # the outage was seen, and recovered from
    record("MLflow server down 20 s mid-sweep", wall_s=round(time.monotonic() - started, 1),
           failed_then_retried_calls=failed_calls(output), runs=len(trials), identical_to_baseline=True)


def test_a_killed_worker_node_moves_its_trials_to_the_head(sweep, baseline):
    from tests.system.faults import MlflowServer
    from tune_jobs import cluster

    server = MlflowServer(sweep.root).start()
    sweep.server = server.uri
    info = cluster.up(sweep.root / "cluster", port=int(os.environ.get("REPROTUNE_TEST_CLUSTER_PORT", 6690)))
    started = time.monotonic()
    try:
        driver = sweep.start("--ray-address", info.address, **info.env)  # the env cluster.env holds (auth token)

        def on_worker_past_300(results):
            for trial_id, rows in results.items():
                if rows and rows[-1].get("env/node") == "worker" and rows[-1]["step"] >= 300 \
                        and "test/exact_match" not in rows[-1]:
                    return trial_id
            return None

        trial_id = sweep.wait_for(on_worker_past_300, driver, what="a trial on the worker node past step 300")
        assert kill_node(info.root, "worker")  # the node is preempted
        driver.wait(900)
        output = sweep.output(driver)
        assert driver.returncode == 0, output[-4000:]
        trials = mlflow_trials(sweep.tracking_uri)
    finally:
        cluster.down(info.root)
        server.stop()
    assert_sound(trials)
    assert_same_results(trials, baseline)
    moved = next(t for t in trials if t["tags"]["trial_id"] == trial_id)
    assert moved["tags"]["node"] == "head" and min(v for _, v in moved["histories"]["resumed_from_step"]) >= 300
    assert {t["tags"]["node"] for t in trials} <= {"head", "worker"}
    record("worker node killed", wall_s=round(time.monotonic() - started, 1),
           resumed_from_step=min(v for _, v in moved["histories"]["resumed_from_step"]),
           nodes_of_runs=sorted(t["tags"]["node"] for t in trials), runs=len(trials), identical_to_baseline=True)
