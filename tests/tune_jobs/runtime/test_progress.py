"""The progress line: seeds done of planned, trials running, decisions, elapsed and an ETA from the
measured speed; in place on a terminal, plain lines in a log. Stand-in trials, no Ray started."""

from __future__ import annotations

import io
import pickle
from types import SimpleNamespace

import pytest
from ray.tune.experimental import output as ray_output

from tune_jobs.runtime.progress import (LOG_EVERY, Progress, all_seeds_done, eta_seconds, progress_line,
                                        schedule_share, slow_ray_table)


def test_eta_is_the_seeds_left_at_the_measured_speed():
    assert eta_seconds(done=4, planned=12, elapsed=100.0) == 200.0  # 25 s a seed -> 8 left
    assert eta_seconds(done=3, planned=9, elapsed=90.0) == 180.0
    assert eta_seconds(done=0, planned=12, elapsed=100.0) is None  # no speed measured yet
    assert eta_seconds(done=12, planned=12, elapsed=100.0) == 0.0


def test_the_line_reads_counts_and_times():
    assert progress_line(4, 12, 2, 1, 130.0, 260.0) == \
        "seeds 4/12, 2 running, 1 decision, elapsed 02:10, ETA 04:20"
    assert progress_line(0, 6, 3, 0, 5.0, None) == "seeds 0/6, 3 running, 0 decisions, elapsed 00:05, ETA ?"
    assert progress_line(1, 2, 0, None, 3725.0, 3725.0) == "seeds 1/2, 0 running, elapsed 1:02:05, ETA 1:02:05"
    # sequential seeds: from every open configuration decided at its fewest seeds to all at their most
    assert progress_line(3, 36, 2, 0, 600.0, 6600.0, 1000.0) == \
        "seeds 3/36, 2 running, 0 decisions, elapsed 10:00, ETA 16:40 to 1:50:00"
    assert progress_line(3, 9, 2, 0, 600.0, 1200.0, 1200.0).endswith("ETA 20:00")  # the same: one value


def trial(config_id_value: str, seeds: list[int], status: str = "RUNNING") -> SimpleNamespace:
    """A stand-in Tune trial of the configuration whose only field is ``x``."""
    return SimpleNamespace(config={"model": {"x": config_id_value}, "seeds": seeds}, status=status)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_callback_counts_seeds_decisions_and_prints_plain_lines_in_a_log():
    clock, out, plan = Clock(), io.StringIO(), {"seeds": 6}
    progress = Progress("job", lambda: plan["seeds"], all_seeds_done(lambda: 3), out=out, clock=clock)
    a0, a1, b0 = trial("a", [0]), trial("a", [1, 2]), trial("b", [0])
    progress.on_trial_start(0, [a0, a1, b0], a0)
    clock.now = 10.0
    progress.on_step_end(1, [a0, a1, b0])  # nothing ended, under LOG_EVERY since the last line: no line
    clock.now = 30.0
    a0.status = "TERMINATED"
    progress.on_trial_complete(2, [a0, a1, b0], a0)
    clock.now = 60.0
    a1.status = "ERROR"  # a stacked trial of 2 seeds that crashed: both are done
    progress.on_trial_error(3, [a0, a1, b0], a1)
    plan["seeds"] = 8  # sequential seeds asked for two more
    clock.now = 60.0 + LOG_EVERY
    progress.on_step_end(4, [a0, a1, b0])
    progress.on_step_end(5, [a0, a1, b0])  # the same line again: not written twice
    assert out.getvalue().splitlines() == [
        "seeds 0/6, 3 running, 0 decisions, elapsed 00:00, ETA ?",
        "seeds 1/6, 2 running, 0 decisions, elapsed 00:30, ETA 02:30",
        "seeds 3/6, 1 running, 1 decision, elapsed 01:00, ETA 01:00",
        "seeds 3/8, 1 running, 1 decision, elapsed 02:00, ETA 03:20"]


def test_under_sequential_seeds_the_eta_spans_the_fewest_to_the_most_seeds():
    clock, out, plan = Clock(), io.StringIO(), {"most": 36, "least": 9}
    progress = Progress("job", lambda: plan["most"], None, out=out, clock=clock, least=lambda: plan["least"])
    a0, a1 = trial("a", [0]), trial("b", [0])
    progress.on_trial_start(0, [a0, a1], a0)
    clock.now = 100.0
    a0.status = "TERMINATED"
    progress.on_trial_complete(1, [a0, a1], a0)  # 1 seed in 100 s: 8 to 35 seeds left
    assert progress.line() == "seeds 1/36, 1 running, elapsed 01:40, ETA 13:20 to 58:20"
    plan["most"] = plan["least"] = 1  # every configuration decided
    assert progress.line().endswith("ETA 00:00")


def test_a_running_seed_counts_by_the_share_of_its_schedule_it_trained():
    assert schedule_share({"train": {"train_steps": 1000}}, {"step": 499}) == 0.5
    assert schedule_share({"train": {"train_steps": 1000}}, {"step": 999}) == 0.99  # done only when it ends
    assert schedule_share({"train": {"train_steps": 1000}}, {"objective": 1.0}) == 0.0  # no step reported
    assert schedule_share({"command": {}}, {"step": 10}) == 0.0  # no schedule to read
    clock, out = Clock(), io.StringIO()
    progress = Progress("job", lambda: 4, None, out=out, clock=clock)
    a0, a1 = trial("a", [0]), trial("a", [1, 2])
    a0.trial_id, a1.trial_id = "t0", "t1"
    for t in (a0, a1):
        t.config["train"] = {"train_steps": 1000}
    progress.on_trial_start(0, [a0, a1], a0)
    clock.now = 100.0
    progress.on_trial_result(1, [a0, a1], a0, {"step": 499})  # half of one seed in 100 s
    progress.on_trial_result(1, [a0, a1], a1, {"step": 249})  # a quarter of each of two stacked seeds
    assert progress.line() == "seeds 0/4, 2 running, elapsed 01:40, ETA 05:00"  # 1 seed in 100 s, 3 left
    a0.status = "TERMINATED"
    progress.on_trial_complete(2, [a0, a1], a0)  # its share becomes a whole seed done
    assert progress.line() == "seeds 1/4, 1 running, elapsed 01:40, ETA 02:46"  # 1.5 in 100 s, 2.5 left


def test_a_resumed_fit_counts_the_seeds_done_before_it_and_its_own_speed():
    clock, out = Clock(), io.StringIO()
    progress = Progress("job", lambda: 4, None, out=out, clock=clock)
    a0, a1 = trial("a", [0], status="TERMINATED"), trial("a", [1])  # a0 ended before the restore
    a1.trial_id, a1.config["train"] = "t1", {"train_steps": 1000}
    progress.on_step_end(0, [a0, a1])
    clock.now = 100.0
    progress.on_trial_result(1, [a0, a1], a1, {"step": 499})
    assert progress.line() == "seeds 1/4, 1 running, elapsed 01:40, ETA 08:20"  # half a seed in 100 s, 2.5 left
    a1.status = "TERMINATED"
    progress.on_trial_complete(2, [a0, a1], a1)
    assert progress.line() == "seeds 2/4, 0 running, elapsed 01:40, ETA 03:20"


def test_on_a_terminal_the_line_is_redrawn_in_place():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    clock, out = Clock(), Terminal()
    progress = Progress("job", lambda: 2, None, out=out, clock=clock)
    only = trial("a", [0])
    progress.on_trial_start(0, [only], only)
    clock.now = 42.0
    only.status = "TERMINATED"
    progress.on_trial_complete(1, [only], only)
    progress.on_experiment_end([only])
    text = out.getvalue()
    assert "\r" in text and text.count("\n") == 1  # one line, redrawn, closed at the end
    assert text.rstrip().endswith("seeds 1/2, 0 running, elapsed 00:42, ETA 00:42")


def test_rays_trial_table_at_most_once_a_minute(monkeypatch):
    monkeypatch.setattr(ray_output.ProgressReporter, "_heartbeat_freq", 30)
    slow_ray_table()
    assert ray_output.ProgressReporter._heartbeat_freq == 60


def test_the_callback_pickles_as_its_key_and_is_refused_outside_its_fit():
    progress = Progress("job-x", lambda: 1, None, out=io.StringIO())
    with pytest.raises(RuntimeError, match="job-x"):
        pickle.loads(pickle.dumps(progress))
