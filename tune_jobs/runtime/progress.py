"""A job's progress line: seeds done of planned, trials running, decisions so far, elapsed and an ETA.

On a terminal the line is redrawn in place (``tqdm``); in a log (stdout not a terminal) it is a plain
line, written when a seed ends and at most every ``LOG_EVERY`` seconds otherwise. The ETA is the
training left at the job's measured speed. The speed is the steps the job's seeds have trained per
second of wall time since the fit's first report of steps (so it accounts for the trials running at
once, and not for Ray's start and the first compile, which made the first minutes' ETA read 6x), read from
each trial's reports (``step``; a seed that stopped early, solved, counts the steps to its stop,
``val/stopped_at_step``, not the carried-forward reports after it). The training left is each running
seed's schedule less what it trained, and each seed still to start at the mean schedule of the job's
seeds (``seed_steps``, or the mean over the trials the job holds): a cell of 100k steps weighs four
of 27k. A trial without a schedule (a command trial) is one unit of work that is done when it ends.

The ETA is a range when the job can end sooner than its plan. Seeds that stop once solved
(``stop_after_success``): the low end has every seed left stop at the mean share of its schedule the
seeds that stopped early trained, the high end every one run to its schedule's end; no ETA can say
which seeds will be solved before they are (the default sweep ran its failing seeds first: its one-value
ETA read +41% at 15 min of 23, RESULTS.md 2026-12-03). Sequential seeds (``least``): the low end has
every open configuration decided at its fewest seeds (``SequentialReplicates.least_seeds``), the high end
at ``max``. A resumed fit counts the seeds its restored trials had done and the steps they had trained,
and measures its own speed. Ray Tune's own trial table is printed at most once a minute
(``slow_ray_table``).

``planned`` and ``decided`` are callables, read at every refresh: under sequential seeds the number of
seeds planned grows as a configuration's verdict asks for more, and a configuration may be decided
before all its seeds have run. There ``planned`` is the most the job may spend (``max`` seeds for each
open configuration) and ``least`` the fewest.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from statistics import fmean
from typing import Any, Callable, Mapping, Optional, TextIO

from ray.tune.experimental import output as ray_output
from tqdm import tqdm

from tune_jobs.runtime.driver_callbacks import DriverCallback
from tune_jobs.runtime.results import STOPPED_AT
from tune_jobs.runtime.trial_config import SEEDS, config_id, run_settings, steps_run

logger = logging.getLogger(__name__)

LOG_EVERY = 60.0
"""Seconds between two plain progress lines in a log when no seed ended in between."""
RAY_TABLE_SECONDS = 60
"""Seconds between two of Ray Tune's trial tables (Ray 2.60 prints one every 30 s)."""
MEASURE_SECONDS = 30.0
"""Seconds of reports a speed is measured over before the line gives an ETA (a first report or two
moments apart gave 'ETA 627:32:32' in a replay of the default sweep)."""
ENDED = ("TERMINATED", "ERROR")
"""Tune's statuses of a trial that will train no more."""


def eta_seconds(left: float, trained: float, elapsed: float) -> Optional[float]:
    """Seconds to train ``left`` at the measured speed, ``left * elapsed / trained`` (``trained``: the
    work done in ``elapsed`` seconds, in the unit of ``left``, steps); 0 when nothing is left; None
    before any progress."""
    if left <= 0:
        return 0.0
    if trained <= 0 or elapsed <= 0:
        return None
    return left * elapsed / trained


def schedule_steps(config: Mapping[str, Any]) -> Optional[float]:
    """The steps a seed of ``config`` trains at most: ``train.train_steps``, or ``run.max_steps`` where
    smaller; None for a config without a schedule (a command trial)."""
    total = (config.get("train") or {}).get("train_steps")
    if not isinstance(total, (int, float)) or total <= 0:
        return None
    return float(steps_run(total, run_settings(config)))


def steps_trained(result: Mapping[str, Any]) -> Optional[float]:
    """The steps a seed has trained by ``result`` (one of its reports): ``step + 1`` (0-based steps), or
    the steps to its stop in a report carried forward after it stopped solved (``val/stopped_at_step``
    + 1); None when the report has no step."""
    step = result.get(STOPPED_AT, result.get("step"))
    return float(step) + 1.0 if isinstance(step, (int, float)) else None


@dataclass
class Work:
    """One trial's work, per seed: its schedule (``size``, steps; 1 for a trial without one) and what it
    has trained (``trained``, steps; a trial without a schedule is 0 until it ends, then 1)."""
    seeds: int
    size: float
    scheduled: bool
    """Its config has a schedule (``schedule_steps``): its reports' steps count."""
    trained: float = 0.0
    ended: bool = False
    stopped_early: bool = False
    """It ended, solved, before its schedule's end (``stop_after_success``)."""

    @property
    def share(self) -> float:
        return min(self.trained / self.size, 1.0)


def all_seeds_done(per_config: Callable[[], int]) -> Callable[[Mapping[str, int]], int]:
    """The decision count of fixed seeds: configurations with ``per_config()`` seeds done (a verdict
    waits for all of them)."""
    return lambda done: sum(1 for count in done.values() if count >= per_config())


def progress_line(done: int, planned: int, running: int, decisions: Optional[int], elapsed: float,
                  eta: Optional[float], eta_least: Optional[float] = None) -> str:
    """'seeds 4/12, 2 running, 1 decision, elapsed 02:10, ETA 04:20' (no decision count when
    ``decisions`` is None; ETA '?' before a speed is measured; times as ``tqdm.format_interval`` writes
    them: [H:]MM:SS). With ``eta_least`` below ``eta`` (the job may end sooner than planned: seeds that
    stop once solved, sequential seeds) the ETA is a range: 'ETA 20:00 to 1:20:00'."""
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
                 least: Optional[Callable[[], int]] = None, seed_steps: Optional[float] = None) -> None:
        super().__init__(key)
        self.planned = planned
        """Seeds planned in all: may change as seeds are added (sequential seeds: the most it may spend)."""
        self.least = least
        """Seeds the job spends at the least (sequential seeds); None: as planned."""
        self.decided = decided
        """(seeds done per configuration id) -> configurations decided so far (None: not counted)."""
        self.seed_steps = seed_steps
        """The mean schedule of a seed still to start, steps; None: the mean over the trials held."""
        self.out = out or sys.stdout
        self.clock = clock
        self.start = clock()
        self.done: dict[str, int] = {}
        """Configuration id -> its seeds done (finished or errored)."""
        self.running = 0
        self.work: dict[Any, Work] = {}
        """Trial id -> its work, for every trial the fit has held."""
        self.before: Optional[float] = None
        """Steps the restored trials had trained before this fit (counted at its first hook call)."""
        self.origin: Optional[tuple[float, float]] = None
        """(clock, steps trained by then) at the fit's first report of steps: the speed is measured from
        there, not from the fit's start, so Ray's start and the first compile do not count as slowness
        (the default sweep's first line read 'ETA 2:01:02' at 1 min for a 20-minute sweep)."""
        self.last_line = -LOG_EVERY
        self.last_text = ""
        self.bar: Optional[tqdm] = None

    def line(self) -> str:
        """The progress line now."""
        now, done, planned = self.clock(), sum(self.done.values()), self.planned()
        decisions = None if self.decided is None else self.decided(self.done)
        since, base = self.origin or (self.start, self.before or 0.0)
        trained, measured = self.total() - base, now - since
        if self.origin is not None and measured < MEASURE_SECONDS:
            trained = 0.0  # too short to measure a speed: ETA '?'
        open_ = [w for w in self.work.values() if not w.ended]  # running, or created and pending
        busy = done + sum(w.seeds for w in open_)
        sizes = [w.size for w in self.work.values()]
        mean_size = self.seed_steps if self.seed_steps else (fmean(sizes) if sizes else 1.0)
        early = [w.share for w in self.work.values() if w.stopped_early]
        low_share = fmean(early) if early else 1.0

        def left(seeds: int, share: float) -> float:
            """Steps left if ``seeds`` in all are trained and each stops at ``share`` of its schedule."""
            own = sum(w.seeds * max(share * w.size - w.trained, 0.0) for w in open_)
            return own + max(seeds - busy, 0) * share * mean_size

        eta = eta_seconds(left(planned, 1.0), trained, measured)
        least = self.least() if self.least is not None else planned
        eta_least = eta_seconds(left(least, low_share), trained, measured) \
            if (early or self.least is not None) else None
        return progress_line(done, planned, self.running, decisions, now - self.start, eta, eta_least)

    def count_restored(self, trials: list) -> None:
        """At the first hook call, count the seeds of trials already ended and the steps every restored
        trial had trained (a resumed fit: Tune calls no completion hook for the ended ones), so the line
        reads the job's seeds and the ETA this fit's speed."""
        if self.before is not None:
            return
        for trial in trials:
            work = self.track(trial)
            result = getattr(trial, "last_result", None) or {}
            self.record(work, result)
            if trial.status in ENDED:
                self.finish(trial, work, errored=trial.status == "ERROR")
        self.before = self.total()

    def total(self) -> float:
        """Steps trained by every seed the fit has held (a trial without a schedule: 1 when it ends)."""
        return sum(w.seeds * w.trained for w in self.work.values())

    def track(self, trial: Any) -> Work:
        """The work of ``trial``, added when first seen."""
        key = _trial_key(trial)
        if key not in self.work:
            steps = schedule_steps(trial.config)
            self.work[key] = Work(seeds=_seed_count(trial), size=steps or 1.0, scheduled=steps is not None)
        return self.work[key]

    @staticmethod
    def record(work: Work, result: Mapping[str, Any]) -> None:
        """What a report says ``work`` has trained (a trial without a schedule: nothing until it ends)."""
        steps = steps_trained(result) if work.scheduled else None
        if steps is not None:
            work.trained = max(work.trained, min(steps, work.size))

    def finish(self, trial: Any, work: Work, errored: bool) -> None:
        """``trial`` ended: its seeds are done; one that stopped before its schedule's end, not by an
        error, stopped early, solved."""
        if not work.scheduled:
            work.trained = work.size
        work.stopped_early = not errored and work.trained < work.size
        work.ended = True
        key = config_id(trial.config)
        self.done[key] = self.done.get(key, 0) + work.seeds

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
        self.track(trial)
        self.running = _running(trials)
        self.show()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trials, trial, errored=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trials, trial, errored=True)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.count_restored(trials)
        work = self.track(trial)
        self.record(work, result)
        if self.origin is None and work.scheduled and steps_trained(result) is not None:
            self.origin = (self.clock(), self.total())

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

    def _ended(self, trials: list, trial: Any, errored: bool) -> None:
        """Tune calls its completion and error hooks before it sets the trial's status (Ray 2.60: still
        RUNNING in ``on_trial_complete``): the hook, not the status, says how it ended."""
        others = [t for t in trials if t is not trial]
        self.count_restored(others)
        work = self.track(trial)
        if not work.ended:
            self.finish(trial, work, errored)
        self.running = _running(others)
        self.show(changed=True)


def _trial_key(trial: Any) -> Any:
    """A trial's key in ``Progress.work``: its Tune trial id (the object's identity for a stand-in without one)."""
    return getattr(trial, "trial_id", None) or id(trial)


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
