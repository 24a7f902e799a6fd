"""Fault injection under sequential seeds (``make test-faults``): a sequential sweep whose driver is
killed mid-way and resumed ends with the seeds, runs and results of an uninterrupted one. Ray's own
``Repeater`` loses its groups on restore (ray#11918); the sequential searcher's whole state must come back."""

from __future__ import annotations

import time

import pytest

from tests.system.faults import (Sweep, assert_same_results, assert_sound, by_replicate, kill_process_group,
                                 mlflow_trials, record)

pytestmark = pytest.mark.faults

ARGS = ["--space", "smoke", "--num-configs", "2", "--seeds", "2..3", "--train-steps", "600", "--eval-interval", "100",
        "--max-concurrent", "2", "--search-seed", "7", "--success-threshold", "0.05"]
"""2 configurations x 2 to 3 sequential seeds x 600 steps (a low bar, so that outcomes can differ by seed)."""


def test_a_killed_sequential_sweep_resumes_into_the_same_seeds_and_results(tmp_path_factory):
    baseline = Sweep(tmp_path_factory.mktemp("seq-baseline"), "seq-baseline", ARGS)
    try:
        baseline.run()
    finally:
        baseline.cleanup()
    want = mlflow_trials(baseline.tracking_uri)
    assert_sound(want)

    faulted = Sweep(tmp_path_factory.mktemp("seq-faulted"), "seq-faulted", ARGS)
    try:
        started = time.monotonic()
        driver = faulted.start()
        faulted.wait_for(lambda results: [t for t, rows in results.items() if rows and "test/exact_match" in rows[-1]]
                         or None, driver, what="a finished seed")
        kill_process_group(driver)
        faulted.kill_ray()
        killed_after = time.monotonic() - started
        faulted.run("--resume")
    finally:
        faulted.cleanup()
    got = mlflow_trials(faulted.tracking_uri)
    assert_sound(got)
    assert_same_results(got, want)  # the same (configuration, seed) runs, bit for bit: no seed twice, none lost
    seeds = sorted(key[1] for key in by_replicate(got))
    record("sequential sweep: driver killed, then --resume", killed_after_s=round(killed_after, 1), runs=len(got),
           seeds=seeds, identical_to_baseline=True)
