"""The job's accounting of its capacity: what the slots idled at the end while the last trials finished."""

from types import SimpleNamespace

import pytest

from tune_jobs.runtime.job import drain_idle_seconds, trial_intervals


def test_the_drain_is_the_idle_slot_time_after_the_last_start():
    # 2 slots: a and b from 0; c starts at 10 when a ends and runs to 40, b ends at 25: slot idle 25..40
    assert drain_idle_seconds([(0, 10), (0, 25), (10, 40)], 2) == 15
    # equal trials that end together leave nothing idle; one slot never idles
    assert drain_idle_seconds([(0, 10), (0, 10), (10, 20), (10, 20)], 2) == 0
    assert drain_idle_seconds([(0, 10), (10, 30)], 1) == 0
    # fewer trials than slots: the free slots idle the whole time
    assert drain_idle_seconds([(0, 10)], 4) == 30
    assert drain_idle_seconds([], 2) == 0


def test_intervals_come_from_the_last_report_and_skip_trials_that_never_reported():
    grid = [SimpleNamespace(metrics={"timestamp": 100, "time_total_s": 40.5}),
            SimpleNamespace(metrics={}), SimpleNamespace(metrics=None)]
    assert trial_intervals(grid) == [pytest.approx((59.5, 100.0))]
