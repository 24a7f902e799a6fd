"""The one runner of every job: open the parent run, fit the trials, tabulate, judge, log, print.

A job (``tune_jobs/<job>.py``) reads as a recipe: its arguments, its space (or fixed configurations),
its trial record (``tune_jobs/trials/``), then ``run_sweep`` here, or ``open_job`` and the same steps
with a verdict of its own (``reproduce``, ``crosslingual``). Each configuration runs once per seed
(``runtime.searcher``); no early-stopping scheduler: grokking arrives late.
"""

from __future__ import annotations

import dataclasses
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import pandas as pd
from ray.tune.search import Searcher

from mlflow_utils import SweepTracker, resolve_tracking_uri, sweep_run
from search_spaces import Choice, IntRange, LogUniform, SearchSpace, upper_value
from tune_jobs.runtime.job_lock import job_lock
from tune_jobs.runtime.preflight import check_local_resources
from tune_jobs.runtime.report import CONFIG_TAG, child_metrics, log_report
from tune_jobs.runtime.results import curve_table, trial_id_of, trial_table
from tune_jobs.runtime.searcher import fixed_replicates, grid_points, optuna_replicates, param_space
from tune_jobs.runtime.settings import RunSettings, SweepSettings
from tune_jobs.runtime.study import write_study
from tune_jobs.runtime.trial import Trial
from tune_jobs.runtime.tuner import check_trial, fit, job_name


class Interrupted(KeyboardInterrupt):
    """The job was stopped (Ctrl-C, SIGTERM) before every trial ended; the message says how to resume."""


@dataclass
class Job:
    """One running job: its settings, name, parent run, and what its fit left."""

    settings: RunSettings
    name: str
    target: str
    """The make target (the parent run's ``job`` tag)."""
    tracker: SweepTracker
    started: float = field(default_factory=time.perf_counter)
    run_ids: dict[str, str] = field(default_factory=dict)
    """Trial id -> MLflow run id, after ``fit``."""
    failures: int = 0
    """MLflow calls that failed (each was queued and retried)."""
    interrupted: set[str] = field(default_factory=set)
    """Trial ids the fit left unfinished (a Ctrl-C or SIGTERM stopped it)."""
    slots: int = 0
    """Trials that could run at once (CPU cores / threads per trial, or GPUs / GPUs per trial)."""
    trial_seconds: float = 0.0
    """The trials' own time (Tune's ``time_total_s``), summed."""
    drain_seconds: float = 0.0
    """Slot-seconds idle after the last trial started, while the last trials finished (``drain_idle_seconds``)."""
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Every reported value of the trial's ``curve`` metric, after ``fit`` (``runtime.results.curve_table``)."""

    def fit(self, trial: Trial, space: dict[str, Any], searcher: Searcher, num_samples: int,
            run_name: Callable[[dict], str] | None = None) -> tuple[Any, pd.DataFrame]:
        """Run the trials, each child run named ``run_name(config)`` (default ``trial.run_name``:
        '<readable name> s<seed>'); returns Tune's ResultGrid and the trial table (``runtime.results``).
        The parent gets the param ``job.concurrent_trials`` (the trial slots)."""
        grid, callback, self.slots = fit(self.settings, trial, space, searcher, num_samples, name=self.name,
                                         tracker=self.tracker, run_name=run_name or trial.run_name)
        self.run_ids, self.failures = callback.runs, callback.failures
        self.trial_seconds += sum(float((result.metrics or {}).get("time_total_s", 0.0)) for result in grid)
        self.drain_seconds += drain_idle_seconds(trial_intervals(grid), self.slots)
        self.interrupted = callback.interrupted(trial_id_of(result) for result in grid)
        self.tracker.log_new_params(self.tracker.parent_run_id, {"job.concurrent_trials": self.slots})
        if trial.log_outputs is not None:
            trial.log_outputs(self.tracker, grid, self.run_ids)
        self.curves = curve_table(grid, trial)
        return grid, trial_table(grid, trial, self.interrupted)

    def raise_if_interrupted(self) -> None:
        """Stop here when the fit was interrupted: no verdict from cut-short trials.

        Raises:
            Interrupted: names how many trials were cut short and how to resume them.
        """
        if self.interrupted:
            raise Interrupted(f"{len(self.interrupted)} trial(s) of {self.name} were cut short and are kept in "
                              f"{self.settings.storage()}; continue them with: make {self.target} RESUME=1 "
                              f"NAME={self.name} (or --resume --name {self.name})")

    def log_verdicts(self, trial: Trial, table: pd.DataFrame, trials: pd.DataFrame, intro: Sequence[str] = ()
                     ) -> None:
        """The verdicts on the parent run (tags ``verdict.<config_id>``, ``verdict.best_config``, tables
        ``verdict`` and ``trials``, and ``runtime.report``'s description under ``intro``, figures and
        per-configuration metrics) and on each trial's run (``trial.child_tags``, among them ``outcome``,
        and its configuration's ``config/<column>`` metrics)."""
        if table.empty:
            return
        self.tracker.log_table(table, "verdict")
        self.tracker.log_table(trials, "trials")
        tags = {f"verdict.{row['config_id']}": trial.summary_line(row) for _, row in table.iterrows()}
        self.tracker.set_tags(self.tracker.parent_run_id, {**tags, "verdict.best_config": trial.best_config(table)})
        by_config = table.set_index("config_id")
        for row in trials.itertuples():
            run_id = self.run_ids.get(row.trial_id)
            if run_id is not None and row.config_id in by_config.index:
                verdict = by_config.loc[row.config_id]
                self.tracker.set_tags(run_id, {**trial.child_tags(verdict, row), CONFIG_TAG: verdict["name"]})
                self.tracker.log_summary(run_id, child_metrics(verdict, trial.summary_metrics))
        log_report(self.tracker, trial, table, trials, self.curves, self.settings, intro)

    def seconds(self) -> float:
        """Wall time since the job opened."""
        return time.perf_counter() - self.started

    def overhead_share(self) -> float:
        """What Ray, MLflow and idle slots cost: 1 - (the trials' own time) / (wall time x slots), the
        share of the job's capacity that went to no trial (NaN before a fit)."""
        capacity = self.seconds() * self.slots
        return 1.0 - self.trial_seconds / capacity if capacity > 0 else float("nan")

    def drain_share(self) -> float:
        """The part of ``overhead_share`` that is slots left idle at the end: no trial was left to start
        while the last ones finished (NaN before a fit)."""
        capacity = self.seconds() * self.slots
        return self.drain_seconds / capacity if capacity > 0 else float("nan")


def trial_intervals(grid: Any) -> list[tuple[float, float]]:
    """(start, end) in Unix seconds of each trial of a Tune ResultGrid that reported: its last report's
    ``timestamp`` as the end, that minus its ``time_total_s`` as the start."""
    out = []
    for result in grid:
        metrics = result.metrics or {}
        end, total = metrics.get("timestamp"), metrics.get("time_total_s")
        if isinstance(end, (int, float)) and isinstance(total, (int, float)):
            out.append((float(end) - float(total), float(end)))
    return out


def drain_idle_seconds(intervals: Sequence[tuple[float, float]], slots: int) -> float:
    """Slot-seconds no trial used between the last trial's start and the last trial's end: the cost of
    trials of unequal length on ``slots`` slots, which no scheduling of the remaining work can fill.

    Args:
        intervals: (start, end) seconds of each trial.
        slots: trials that could run at once.
    """
    if not intervals or slots < 1:
        return 0.0
    first, last = max(start for start, _ in intervals), max(end for _, end in intervals)
    used = sum(max(0.0, min(end, last) - max(start, first)) for start, end in intervals)
    return max(0.0, slots * (last - first) - used)


@contextmanager
def open_job(settings: RunSettings, trial: Trial, job: str, prefix: str, params: Mapping[str, Any],
             tags: Mapping[str, Any], label: str = "", resolved: Mapping[str, Any] | None = None) -> Iterator[Job]:
    """Check the settings against the trial, name the job ``prefix-<UTC time>`` (or as the settings
    say), and hold its parent run open (``mlflow_utils.sweep_run``: RUNNING children are closed KILLED
    at the end, the parent FINISHED, FAILED or KILLED). The parent run is named ``<job> <label>``
    (e.g. 'sweep-addition smoke') and tagged ``job=<job>`` (the make target); its params are the
    settings as they ran (``run_params`` with ``resolved``) and ``params``; its metric
    ``perf/job_seconds`` the job's wall time.

    Raises:
        ConfigError: settings the trial cannot run under, or nothing to resume (before Ray starts).
        TrackingError: MLflow is unreachable (nothing trained).
    """
    check_trial(settings, trial)
    check_local_resources(settings)  # issue 20 hook: runtime/preflight.py, before Ray and before the parent run
    name = job_name(settings, prefix)
    all_params = {**run_params(settings, name, resolved or {}), **params}
    with job_lock(settings, name), \
            sweep_run(name, settings.experiment, all_params, {"job": job, **tags}, settings.tracking_uri,
                      run_name=f"{job} {label}".strip()) as tracker:  # issue 20 hook: runtime/job_lock.py
        job = Job(settings, name, job, tracker)
        yield job
        tracker.log_summary(tracker.parent_run_id, {"perf/job_seconds": job.seconds(),
                                                    "perf/trial_seconds": job.trial_seconds,
                                                    "perf/overhead_share": job.overhead_share(),
                                                    "perf/drain_share": job.drain_share()})


def run_params(settings: RunSettings, name: str, resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The parent run's ``job.<setting>`` params as the job ran: a setting left to its default (None)
    shows the value used: ``resolved``'s (the space's or the claim's steps, seeds, mode...), the job's
    name, the absolute tracking URI, the Ray address ('local' when the job starts its own Ray), the
    checkpoint cadence; any other None shows as 'none'."""
    used = {"name": name, "tracking_uri": resolve_tracking_uri(settings.tracking_uri),
            "ray_address": settings.ray_address or os.environ.get("RAY_ADDRESS") or "local",
            "checkpoint_interval": "every evaluation", **resolved}
    return {f"job.{key}": used.get(key, "none") if value is None else value
            for key, value in dataclasses.asdict(settings).items()}


def space_values(space: SearchSpace) -> dict[str, Any]:
    """What a space fixes, by field name (for ``run_params``): its seeds and each section's constants
    (a searched field reads 'searched')."""
    values: dict[str, Any] = {"seeds": list(space.seeds)}
    for fields in space.sections.values():
        for key, value in fields.items():
            values.setdefault(key, "searched" if isinstance(value, (Choice, IntRange, LogUniform)) else value)
    return values


def with_run_settings(space: SearchSpace, settings: SweepSettings, train_steps: int | None,
                      eval_interval: int | None, default_warmup: int, warmup_share: float) -> SearchSpace:
    """``space`` with the job's shortcuts applied to its ``train`` section: steps, evaluation
    interval, threads, CUDA when GPUs are asked for (a warmup as long as the new schedule shrinks to
    ``warmup_share`` of it), and the seed count."""
    train = {k: v for k, v in (("train_steps", train_steps), ("eval_interval", eval_interval)) if v is not None}
    train["threads"] = settings.threads
    if settings.gpus_per_trial > 0:
        train["device"] = "cuda"
    warmup = upper_value(space.sections.get("train", {}).get("warmup_steps", default_warmup))  # issue 20 hook: a Choice
    if train_steps is not None and warmup >= train_steps:
        train["warmup_steps"] = max(1, int(train_steps * warmup_share))
    space = space.with_overrides(train=train)
    return space if settings.seeds is None else space.with_seed_count(settings.seeds)


def space_params(space: SearchSpace, configs: int) -> dict[str, Any]:
    """Parent-run params describing a space: name, source file, description, seeds, the searched
    fields, and the configurations and trials it runs."""
    return {"space.name": space.name, "space.source": space.source, "space.description": space.description,
            "space.seeds": list(space.seeds), "space.searched": ", ".join(space.dimensions()) or "none",
            "space.configurations": configs, "space.trials": configs * len(space.seeds)}


def sweep_intro(job: str, space: SearchSpace, configs: int, name: str) -> list[str]:
    """The first lines of a sweep's description: what ran, how long, and how to resume it."""
    steps = space.sections.get("train", {}).get("train_steps")
    seeds = ", ".join(str(s) for s in space.seeds)
    return [f"**{job}** on search space `{space.name}`: {space.description}", "",
            f"{configs} configurations x {len(space.seeds)} seeds ({seeds})"
            + (f", {steps} steps each" if steps is not None else "")
            + f"; job `{name}` (continue it: `make {job} RESUME=1 NAME={name}`)."]


def run_sweep(settings: SweepSettings, space: SearchSpace, trial: Trial, job: str, prefix: str) -> pd.DataFrame:
    """Optuna over ``space``'s dimensions, every configuration once per seed, judged by ``trial``'s
    verdict rule; returns the verdict table (also logged to MLflow with its figures, written to the
    Optuna study ``runtime.study``, and printed).

    Raises:
        ConfigError: settings the trial cannot run under (nothing started).
        TrackingError: MLflow is unreachable (nothing trained).
    """
    grid, per_trial = settings.grid or not space.dimensions(), settings.seeds_per_trial
    if grid:
        points = grid_points(space)
        searcher, configs = fixed_replicates(points, space.seeds, trial.failure_score, per_trial), len(points)
    else:
        searcher = optuna_replicates(space, settings.search_seed, trial.failure_score, per_trial)
        configs = settings.num_configs
    with open_job(settings, trial, job, prefix, space_params(space, configs), {"space": space.name},
                  label=space.name, resolved=space_values(space)) as run:
        run_space = param_space(space, settings.trial_run_settings(), searched=not grid)
        _, trials = run.fit(trial, run_space, searcher, configs * len(searcher.groups))
        table = trial.verdict_table(trials, settings)
        run.log_verdicts(trial, table, trials, sweep_intro(job, space, configs, run.name))
        if run.interrupted:
            print_verdicts(f"sweep {run.name}, interrupted", table, trials, trial.columns)
            run.raise_if_interrupted()
        study = write_study(settings, space, run.name, table, trials, run.tracker)
    print_verdicts(f"sweep {run.name}", table, trials, trial.columns)
    print_footer(run, study)
    return table


def print_verdicts(title: str, table: pd.DataFrame, trials: pd.DataFrame, columns: Sequence[str]) -> None:
    """The verdict table (those of ``columns`` it has a value in), each configuration's audit reasons, and
    each failed trial."""
    print(f"\nVerdicts of {title} ({len(trials)} trials):")
    if table.empty:
        print("  no trial reported a result")
    else:
        with pd.option_context("display.width", 250, "display.max_columns", 40, "display.max_colwidth", 60,
                               "display.float_format", "{:.4g}".format):
            shown = [c for c in columns if c in table.columns and not table[c].isna().all()]
            print(table[shown].to_string(index=False))
        if "audit_reasons" in table.columns:
            for row in table[table["audit_reasons"] != ""].itertuples():
                print(f"  {row.config_id} {row.verdict}: {row.audit_reasons}")
    for row in trials[trials["error"].notna()].itertuples():
        print(f"  trial {row.trial_id} (config {row.config_id}, seed {row.seed}) failed: {row.error}")


def print_footer(job: Job, study: str | None = None) -> None:
    """Where the job landed in MLflow (and Optuna's ``study`` file), and its wall time."""
    tracker = job.tracker
    print(f"MLflow: experiment {tracker.experiment_id}, parent run {tracker.parent_run_id} at "
          f"{tracker.client.tracking_uri}; MLflow calls that failed: {job.failures}")
    print(f"Wall time {job.seconds() / 60:.1f} min on {job.slots} trial slot(s); the trials' own time "
          f"{job.trial_seconds / 60:.1f} min; Ray, MLflow and idle slots: {100 * job.overhead_share():.1f}% "
          f"of the capacity, of which slots idle while the last trials finished {100 * job.drain_share():.1f}%")
    if study:
        print(f"Optuna: study {job.name} in {study} (make optuna-dashboard)")
