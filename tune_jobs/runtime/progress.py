"""A job's progress line: seeds done of planned, trials running, decisions so far, elapsed and an ETA.

On a terminal the line is redrawn in place (``tqdm``); in a log (stdout not a terminal) it is a plain
line, written when a seed ends and at most every ``LOG_EVERY`` seconds otherwise. The ETA comes from the
measured speed of the job: seeds done per second of wall time since the fit started (so it accounts for
the trials running at once), applied to the seeds still to do, where a running seed counts as done by
the share of its schedule it has trained (its last report's ``step`` over ``train.train_steps``). Counting
finished seeds only, the ETA of the default sweep swung from -15% to +97% of the real end between two
finishes (a seed runs for minutes); with the running share it stayed within 15% once a seed had finished
(RESULTS.md, 2026-12-03). A resumed fit counts the seeds its restored trials had done and measures its
own speed. Ray Tune's own trial table is printed at most once a minute (``slow_ray_table``).

``planned`` and ``decided`` are callables, read at every refresh: under sequential seeds the number of
seeds planned grows as a configuration's verdict asks for more, and a configuration may be decided
before all its seeds have run. There ``planned`` is the most the job may spend (``max`` seeds for each
open configuration) and ``least`` the fewest (``SequentialReplicates.least_seeds``: each open
configuration decided as soon as its design allows), and the ETA is the range between the two.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Callable, Mapping, Optional, TextIO

from ray.tune.experimental import output as ray_output
from tqdm import tqdm

from tune_jobs.runtime.driver_callbacks import DriverCallback
from tune_jobs.runtime.trial_config import SEEDS, config_id

logger = logging.getLogger(__name__)

LOG_EVERY = 60.0
"""Seconds between two plain progress lines in a log when no seed ended in between."""
RUNNING_SHARE_CAP = 0.99
"""Largest share of a seed a running trial counts for (it is done only when it ends)."""
RAY_TABLE_SECONDS = 60
"""Seconds between two of Ray Tune's trial tables (Ray 2.60 prints one every 30 s)."""


def eta_seconds(done: float, planned: int, elapsed: float, before: float = 0.0) -> Optional[float]:
    """Seconds left at the measured speed, ``(planned - done) * elapsed / (done - before)`` (``done``
    may count running seeds by the share they trained; ``before``: seeds a resumed job had done before
    this fit, which took none of ``elapsed``); 0 when nothing is left; None before any progress."""
    if done >= planned:
        return 0.0
    if done - before <= 0 or elapsed <= 0:
        return None
    return (planned - done) * elapsed / (done - before)


def schedule_share(config: Mapping[str, Any], result: Mapping[str, Any]) -> float:
    """The share of its schedule a running trial has trained, from its last report: ``(step + 1) /
    train.train_steps`` (0-based steps), capped below 1 (a seed is done when its trial ends); 0 when the
    report has no ``step`` or the config no ``train.train_steps`` (a command trial)."""
    step, total = result.get("step"), (config.get("train") or {}).get("train_steps")
    if not isinstance(step, (int, float)) or not isinstance(total, (int, float)) or total <= 0:
        return 0.0
    return min(max((float(step) + 1.0) / float(total), 0.0), RUNNING_SHARE_CAP)


def all_seeds_done(per_config: Callable[[], int]) -> Callable[[Mapping[str, int]], int]:
    """The decision count of fixed seeds: configurations with ``per_config()`` seeds done (a verdict
    waits for all of them)."""
    return lambda done: sum(1 for count in done.values() if count >= per_config())


def progress_line(done: int, planned: int, running: int, decisions: Optional[int], elapsed: float,
                  eta: Optional[float], eta_least: Optional[float] = None) -> str:
    """'seeds 4/12, 2 running, 1 decision, elapsed 02:10, ETA 04:20' (no decision count when
    ``decisions`` is None; ETA '?' before a speed is measured; times as ``tqdm.format_interval`` writes
    them: [H:]MM:SS). With ``eta_least`` below ``eta`` (sequential seeds: the ETA if every open
    configuration is decided at its fewest seeds) the ETA is a range: 'ETA 20:00 to 1:20:00'."""
    parts = [f"seeds {done}/{planned}", f"{running} running"]
    if decisions is not None:
        parts.append(f"{decisions} decision" + ("" if decisions == 1 else "s"))
    left = "?" if eta is None else tqdm.format_interval(eta)
    if eta is not None and eta_least is not None and tqdm.format_interval(eta_least) != left:
        left = f"{tqdm.format_interval(eta_least)} to {left}"
    return ", ".join([*parts, f"elapsed {tqdm.format_interval(elapsed)}", f"ETA {left}"])


class Progress(DriverCallback):
    """The progress line of one fit, fed by Tune's callback hooks (a ``DriverCallback``: it survives a
    restore by pickling as its key)."""

    def __init__(self, key: str, planned: Callable[[], int], decided: Optional[Callable[[Mapping[str, int]], int]],
                 out: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
                 least: Optional[Callable[[], int]] = None) -> None:
        super().__init__(key)
        self.planned = planned
        """Seeds planned in all: may change as seeds are added (sequential seeds: the most it may spend)."""
        self.least = least
        """Seeds the job spends at the least (sequential seeds); None: as planned."""
        self.decided = decided
        """(seeds done per configuration id) -> configurations decided so far (None: not counted)."""
        self.out = out or sys.stdout
        self.clock = clock
        self.start = clock()
        self.done: dict[str, int] = {}
        """Configuration id -> its seeds done (finished or errored)."""
        self.running = 0
        self.before: Optional[int] = None
        """Seeds of trials a resumed fit found already ended (counted at its first hook call)."""
        self.shares: dict[str, float] = {}
        """Running trial id -> seeds it stands for x the share of its schedule trained (``schedule_share``)."""
        self.last_line = -LOG_EVERY
        self.last_text = ""
        self.bar: Optional[tqdm] = None

    def line(self) -> str:
        """The progress line now."""
        done, planned, elapsed = sum(self.done.values()), self.planned(), self.clock() - self.start
        decisions = None if self.decided is None else self.decided(self.done)
        trained = done + sum(self.shares.values())
        least = None if self.least is None else eta_seconds(trained, self.least(), elapsed, self.before or 0)
        return progress_line(done, planned, self.running, decisions, elapsed,
                             eta_seconds(trained, planned, elapsed, self.before or 0), least)

    def count_restored(self, trials: list) -> None:
        """At the first hook call, count the seeds of trials already ended (a resumed fit: Tune calls
        no completion hook for them), so the line reads the job's seeds and the ETA this fit's speed."""
        if self.before is not None:
            return
        ended = [t for t in trials if t.status in ("TERMINATED", "ERROR")]
        for trial in ended:
            key = config_id(trial.config)
            self.done[key] = self.done.get(key, 0) + _seed_count(trial)
        self.before = sum(_seed_count(t) for t in ended)

    def show(self, changed: bool = False) -> None:
        """Redraw the line on a terminal; in a log, write it when ``changed`` or ``LOG_EVERY`` s passed."""
        if self.out.isatty():
            if self.bar is None:
                self.bar = tqdm(total=self.planned(), file=self.out, bar_format="{desc}", leave=True)
            self.bar.total = self.planned()
            self.bar.set_description_str(self.line())
            return
        now = self.clock()
        if not (changed or now - self.last_line >= LOG_EVERY):
            return  # the line is built only when it may be written: Tune calls this at every loop step
        text = self.line()
        if text != self.last_text:  # never the same line twice
            self.last_line, self.last_text = now, text
            print(text, file=self.out, flush=True)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.count_restored(trials)
        self.running = _running(trials)
        self.show()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trials, trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trials, trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.shares[trial.trial_id] = _seed_count(trial) * schedule_share(trial.config, result)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.count_restored(trials)
        self.running = _running(trials)
        self.show()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.running = 0
        self.show(changed=True)
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _ended(self, trials: list, trial: Any) -> None:
        self.count_restored([t for t in trials if t is not trial])
        key = config_id(trial.config)
        self.done[key] = self.done.get(key, 0) + _seed_count(trial)
        self.shares.pop(getattr(trial, "trial_id", None), None)
        self.running = _running(trials)
        self.show(changed=True)


def _seed_count(trial: Any) -> int:
    """Seeds a trial trains: its group's size (a stacked trial: K seeds), else 1."""
    return len(trial.config.get(SEEDS) or [None])


def _running(trials: list) -> int:
    return sum(1 for trial in trials if trial.status == "RUNNING")


def slow_ray_table(seconds: int = RAY_TABLE_SECONDS) -> None:
    """Print Ray Tune's trial table at most every ``seconds`` (its reporter's heartbeat, a class
    attribute Ray 2.60 does not expose otherwise); a warning, nothing changed, where Ray lacks it."""
    if not hasattr(ray_output.ProgressReporter, "_heartbeat_freq"):
        logger.warning("Ray Tune's reporter has no _heartbeat_freq: its trial table keeps Ray's own cadence")
        return
    ray_output.ProgressReporter._heartbeat_freq = seconds
