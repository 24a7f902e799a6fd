"""Interruption is a state, not a result: Ctrl-C or SIGTERM of the driver ends every unfinished run KILLED,
judges nothing cut short, says how to resume, and exits 130."""

from __future__ import annotations

import os
import signal
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.system.faults import Sweep, mlflow_trials

ARGS = ["--space", "smoke", "--num-configs", "2", "--seeds", "2", "--train-steps", "4000", "--eval-interval", "100",
        "--max-concurrent", "2"]
"""2 configurations x 2 seeds of 4,000 steps: no trial can finish before the signal."""


def _past(step: int):
    return lambda results: any(rows and rows[-1]["step"] >= step for rows in results.values())


GROUP = "group"
"""Send the next signal to the driver's whole process group (what `timeout`, systemd, Slurm and a closed
terminal do), not to the driver alone."""


@pytest.mark.parametrize("signals", [(signal.SIGINT,), (signal.SIGTERM,), (signal.SIGINT, signal.SIGINT),
                                     (GROUP, signal.SIGTERM)],
                         ids=["ctrl-c", "sigterm", "ctrl-c-twice", "sigterm-group"])
def test_an_interrupted_sweep_is_killed_not_judged(tmp_path, signals):
    sweep = Sweep(tmp_path, "interrupt", ARGS)
    driver = sweep.start()
    try:
        sweep.wait_for(_past(200), driver, timeout_s=300, what="a trial past step 200")
        to_group = signals[0] == GROUP
        for sent in signals[1:] if to_group else signals:
            if to_group:  # the sweep was started in a session of its own: its group id is its pid
                os.killpg(driver.pid, sent)
            else:
                driver.send_signal(sent)
            time.sleep(0.5)
        driver.wait(30 if to_group else 300)  # within seconds, whatever Ray's processes did with it
    finally:
        sweep.cleanup()
    output = sweep.output(driver)
    assert driver.returncode == 130, output[-3000:]
    trials = mlflow_trials(sweep.tracking_uri)
    assert trials and {t["status"] for t in trials} == {"KILLED"}, [t["status"] for t in trials]
    assert any(len(t["histories"].get("val/exact_match", [])) >= 3 for t in trials)  # what was reported is logged

    client = MlflowClient(sweep.tracking_uri)
    (parent,) = client.search_runs([client.get_experiment_by_name("faults").experiment_id], "tags.role = 'sweep'")
    assert parent.info.status == "KILLED"
    assert not any(tag.startswith("verdict.") and not value.startswith("INTERRUPTED")
                   for tag, value in parent.data.tags.items() if tag != "verdict.best_config")
    if len(signals) == 1 or signals[0] == GROUP:  # a graceful stop: the verdict table says so, and how to resume
        assert "INTERRUPTED" in output and "make sweep-addition RESUME=1 NAME=interrupt" in output
    assert "Traceback" not in output.split("Verdicts of")[-1]
