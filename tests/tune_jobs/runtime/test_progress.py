"""The progress line: seeds done of planned, trials running, decisions, elapsed and an ETA from the
measured speed in steps; a range where seeds stop once solved or sequential seeds may end the job
sooner; in place on a terminal, plain lines in a log. Stand-in trials, no Ray started."""

from __future__ import annotations

import io
import pickle
from types import SimpleNamespace

import pytest
from ray.tune.experimental import output as ray_output

from tune_jobs.runtime.progress import (LOG_EVERY, Progress, all_seeds_done, eta_seconds, progress_line,
                                        schedule_steps, slow_ray_table, steps_trained)


def test_eta_is_the_work_left_at_the_measured_speed():
    assert eta_seconds(left=8, trained=4, elapsed=100.0) == 200.0  # 25 s a unit -> 8 left
    assert eta_seconds(left=6000, trained=3000, elapsed=90.0) == 180.0
    assert eta_seconds(left=8, trained=0, elapsed=100.0) is None  # no speed measured yet
    assert eta_seconds(left=0, trained=12, elapsed=100.0) == 0.0


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
    progress.on_trial_complete(2, [a0, a1, b0], a0)
    a0.status = "TERMINATED"  # Tune sets it after the hook
    clock.now = 60.0
    progress.on_trial_error(3, [a0, a1, b0], a1)
    a1.status = "ERROR"  # a stacked trial of 2 seeds that crashed: both are done
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
    progress.on_trial_complete(1, [a0, a1], a0)  # 1 seed in 100 s: 8 to 35 seeds left
    a0.status = "TERMINATED"  # Tune sets it after the hook
    assert progress.line() == "seeds 1/36, 1 running, elapsed 01:40, ETA 13:20 to 58:20"
    plan["most"] = plan["least"] = 2  # every configuration decided at the seeds that ran
    assert progress.line().endswith("ETA 01:40")  # the running seed still trains
    progress.on_trial_complete(2, [a0, a1], a1)
    a1.status = "TERMINATED"  # Tune sets it after the hook
    assert progress.line().endswith("ETA 00:00")


def test_a_seeds_schedule_and_the_steps_it_trained_come_from_its_config_and_reports():
    assert schedule_steps({"train": {"train_steps": 1000}}) == 1000
    assert schedule_steps({"train": {"train_steps": 1000}, "run": {"max_steps": 300}}) == 300  # STEPS=300
    assert schedule_steps({"train": {"train_steps": 200}, "run": {"max_steps": 300}}) == 200
    assert schedule_steps({"command": {}}) is None  # a command trial: no schedule
    assert steps_trained({"step": 499}) == 500  # 0-based steps
    assert steps_trained({"step": 999, "val/stopped_at_step": 399.0}) == 400  # carried forward past its stop
    assert steps_trained({"objective": 1.0}) is None


def scheduled(name: str, trial_id: str, seeds: list[int], steps: int = 1000) -> SimpleNamespace:
    """A stand-in trial of configuration ``name`` with a schedule of ``steps``."""
    t = trial(name, seeds)
    t.trial_id, t.config["train"] = trial_id, {"train_steps": steps}
    return t


def test_a_running_seed_counts_by_the_steps_it_trained_measured_from_the_first_report():
    clock, out = Clock(), io.StringIO()
    progress = Progress("job", lambda: 4, None, out=out, clock=clock)
    a0, a1 = scheduled("a", "t0", [0]), scheduled("a", "t1", [1, 2])
    progress.on_trial_start(0, [a0, a1], a0)
    clock.now = 20.0  # Ray's start and the first compile: not part of the speed
    progress.on_trial_result(1, [a0, a1], a0, {"step": 99})
    clock.now = 40.0
    progress.on_trial_result(2, [a0, a1], a1, {"step": 49})
    assert progress.line().endswith("ETA ?")  # 20 s of reports: too short to measure a speed
    clock.now = 120.0
    progress.on_trial_result(2, [a0, a1], a0, {"step": 599})  # 500 more steps of one seed
    progress.on_trial_result(2, [a0, a1], a1, {"step": 249})  # 250 of each of two stacked seeds
    # 1,000 steps in 100 s; left: 400 + 2 x 750 + a fourth seed's 1,000 = 2,900 -> 290 s
    assert progress.line() == "seeds 0/4, 2 running, elapsed 02:00, ETA 04:50"
    progress.on_trial_result(3, [a0, a1], a0, {"step": 999})
    progress.on_trial_complete(3, [a0, a1], a0)  # ran its whole schedule: one value, no range
    a0.status = "TERMINATED"  # Tune sets it after the hook
    assert progress.line() == "seeds 1/4, 1 running, elapsed 02:00, ETA 02:58"  # 1,400 in 100 s, 2,500 left


def test_seeds_of_different_schedules_weigh_their_steps():
    clock, out = Clock(), io.StringIO()
    # two cells, of 1,000 and 3,000 steps, two seeds each: a seed still to start weighs the mean, 2,000
    progress = Progress("job", lambda: 4, None, out=out, clock=clock, seed_steps=2000.0)
    short, long_ = scheduled("a", "t0", [0], 1000), scheduled("b", "t1", [0], 3000)
    progress.on_trial_start(0, [short, long_], short)
    clock.now = 20.0
    progress.on_trial_result(1, [short, long_], short, {"step": 199})
    clock.now = 120.0
    progress.on_trial_result(2, [short, long_], short, {"step": 999})
    progress.on_trial_result(2, [short, long_], long_, {"step": 1199})
    progress.on_trial_complete(2, [short, long_], short)
    short.status = "TERMINATED"
    # 2,000 steps in 100 s; left: 1,800 of the long seed and 2 x 2,000 to start -> 290 s (as seeds: 1.7 of
    # 4 done, 2.3 left at 1.7 a 100 s, 135 s)
    assert progress.line() == "seeds 1/4, 1 running, elapsed 02:00, ETA 04:50"


def test_seeds_that_stop_once_solved_make_the_eta_a_range():
    clock, out = Clock(), io.StringIO()
    progress = Progress("job", lambda: 4, None, out=out, clock=clock)
    a0, a1 = scheduled("a", "t0", [0]), scheduled("b", "t1", [0])
    progress.on_trial_start(0, [a0, a1], a0)
    clock.now = 20.0
    progress.on_trial_result(1, [a0, a1], a0, {"step": 99})
    clock.now = 120.0
    progress.on_trial_result(2, [a0, a1], a0, {"step": 499})
    progress.on_trial_result(2, [a0, a1], a0, {"step": 999, "val/stopped_at_step": 499.0})  # carried forward
    progress.on_trial_result(2, [a0, a1], a1, {"step": 199})
    progress.on_trial_complete(2, [a0, a1], a0)  # solved at half its schedule
    a0.status = "TERMINATED"
    # 600 steps in 100 s. At most: 800 of a1 and 2 x 1,000 to start (2,800: 467 s); at the least each
    # seed left stops at half its schedule as a0 did: 300 of a1 and 2 x 500 (1,300: 217 s)
    assert progress.line() == "seeds 1/4, 1 running, elapsed 02:00, ETA 03:36 to 07:46"
    progress.on_trial_error(3, [a0, a1], a1)  # a crash is no early stop: the low end still reads a0's half
    a1.status = "ERROR"
    # 600 steps in 100 s; 2 x 500 (167 s) or 2 x 1,000 (333 s) left
    assert progress.line() == "seeds 2/4, 0 running, elapsed 02:00, ETA 02:46 to 05:33"


def test_a_resumed_fit_counts_the_seeds_done_before_it_and_its_own_speed():
    clock, out = Clock(), io.StringIO()
    progress = Progress("job", lambda: 4, None, out=out, clock=clock)
    a0, a1 = scheduled("a", "t0", [0]), scheduled("a", "t1", [1])
    a0.status, a0.last_result = "TERMINATED", {"step": 999}  # ended before the restore
    a1.last_result = {"step": 199}  # had trained 200 steps before the restore: not this fit's speed
    progress.on_step_end(0, [a0, a1])
    clock.now = 20.0
    progress.on_trial_result(1, [a0, a1], a1, {"step": 299})
    clock.now = 120.0
    progress.on_trial_result(2, [a0, a1], a1, {"step": 799})
    assert progress.line() == "seeds 1/4, 1 running, elapsed 02:00, ETA 07:20"  # 500 in 100 s, 200 + 2 x 1,000 left
    progress.on_trial_result(3, [a0, a1], a1, {"step": 999})
    progress.on_trial_complete(3, [a0, a1], a1)
    a1.status = "TERMINATED"
    assert progress.line() == "seeds 2/4, 0 running, elapsed 02:00, ETA 04:45"  # 700 in 100 s, 2,000 left


def test_on_a_terminal_the_line_is_redrawn_in_place():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    clock, out = Clock(), Terminal()
    progress = Progress("job", lambda: 2, None, out=out, clock=clock)
    only = trial("a", [0])
    progress.on_trial_start(0, [only], only)
    clock.now = 42.0
    progress.on_trial_complete(1, [only], only)
    only.status = "TERMINATED"  # Tune sets it after the hook
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
