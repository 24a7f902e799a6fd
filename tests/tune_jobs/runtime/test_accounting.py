"""The job's accounting of its capacity: what the slots idled at the end while the last trials finished."""

import time
from types import SimpleNamespace

import pytest

from tune_jobs.runtime.accounting import Accounting, drain_idle_seconds, trial_intervals


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


def test_a_fit_adds_its_trials_time_and_the_shares_split_the_capacity():
    grid = [SimpleNamespace(metrics={"timestamp": 110.0, "time_total_s": 10.0}),
            SimpleNamespace(metrics={"timestamp": 130.0, "time_total_s": 30.0})]
    accounting = Accounting(started=0.0, opened_at=0.0)
    assert accounting.seconds() > 0 and accounting.overhead_share() != accounting.overhead_share()  # NaN: no fit yet
    accounting.add_fit(grid, slots=2)
    assert (accounting.slots, accounting.trial_seconds, accounting.drain_seconds) == (2, 40.0, 20.0)
    accounting.started = time.perf_counter() - 50.0  # opened 50 s ago: capacity 100 slot-seconds
    assert accounting.overhead_share() == pytest.approx(1 - 40 / 100, abs=1e-3)
    assert accounting.drain_share() == pytest.approx(20 / 100, abs=1e-3)
    assert set(accounting.metrics()) == {"perf/job_seconds", "perf/trial_seconds", "perf/overhead_share",
                                         "perf/drain_share"}


def test_a_resumed_job_counts_only_what_its_trials_trained_since_it_opened():
    # opened at 100: a trial that ended at 90 (before the resume) is not this job's; one restored from its
    # checkpoint carries time_total_s 50 over the restore but trained here from 100 to 120 only
    grid = [SimpleNamespace(metrics={"timestamp": 90.0, "time_total_s": 90.0}),
            SimpleNamespace(metrics={"timestamp": 120.0, "time_total_s": 50.0}),
            SimpleNamespace(metrics={"timestamp": 130.0, "time_total_s": 25.0})]
    accounting = Accounting(opened_at=100.0)
    accounting.add_fit(grid, slots=2)
    assert accounting.trial_seconds == pytest.approx(20.0 + 25.0)
    accounting.started = time.perf_counter() - 30.0  # 30 s x 2 slots of capacity: the share stays in [0, 1]
    assert 0.0 <= accounting.overhead_share() <= 1.0
