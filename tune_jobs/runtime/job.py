"""The one runner of every job: open the parent run, fit the trials, tabulate, judge, log, print.

A job (``tune_jobs/<job>.py``) reads as a recipe: its arguments, its space (or fixed configurations),
its trial record (``tune_jobs/trials/``), then ``run_sweep`` here, or ``open_job`` and the same steps
with a verdict of its own (``reproduce``, ``crosslingual``). Each configuration runs once per seed
(``runtime.searcher``); no early-stopping scheduler: grokking arrives late.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import pandas as pd
from ray.tune.search import Searcher

from mlflow_utils import SweepTracker, sweep_run
from search_spaces import SearchSpace
from tune_jobs.runtime.mlflow_callback import default_run_name
from tune_jobs.runtime.results import trial_id_of, trial_table
from tune_jobs.runtime.searcher import fixed_replicates, grid_points, optuna_replicates, param_space
from tune_jobs.runtime.settings import RunSettings, SweepSettings
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

    def fit(self, trial: Trial, space: dict[str, Any], searcher: Searcher, num_samples: int,
            run_name: Callable[[dict], str] = default_run_name) -> tuple[Any, pd.DataFrame]:
        """Run the trials; returns Tune's ResultGrid and the trial table (``runtime.results``)."""
        grid, callback, self.slots = fit(self.settings, trial, space, searcher, num_samples, name=self.name,
                                         tracker=self.tracker, run_name=run_name)
        self.run_ids, self.failures = callback.runs, callback.failures
        self.trial_seconds += sum(float((result.metrics or {}).get("time_total_s", 0.0)) for result in grid)
        self.interrupted = callback.interrupted(trial_id_of(result) for result in grid)
        if trial.log_outputs is not None:
            trial.log_outputs(self.tracker, grid, self.run_ids)
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

    def log_verdicts(self, trial: Trial, table: pd.DataFrame, trials: pd.DataFrame) -> None:
        """The verdict table on the parent run (tags ``verdict.<config_id>``, ``verdict.best_config``,
        tables ``verdict`` and ``trials``) and each trial's verdict tags on its run."""
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
                self.tracker.set_tags(run_id, trial.child_tags(by_config.loc[row.config_id], row))

    def seconds(self) -> float:
        """Wall time since the job opened."""
        return time.perf_counter() - self.started

    def overhead_share(self) -> float:
        """What Ray, MLflow and idle slots cost: 1 - (the trials' own time) / (wall time x slots), the
        share of the job's capacity that went to no trial (NaN before a fit)."""
        capacity = self.seconds() * self.slots
        return 1.0 - self.trial_seconds / capacity if capacity > 0 else float("nan")


@contextmanager
def open_job(settings: RunSettings, trial: Trial, job: str, prefix: str, params: Mapping[str, Any],
             tags: Mapping[str, Any]) -> Iterator[Job]:
    """Check the settings against the trial, name the job ``prefix-<UTC time>`` (or as the settings
    say), tag its parent run ``job=<job>`` (the make target) and hold it open (``mlflow_utils.sweep_run``:
    RUNNING children are closed KILLED at the end, the parent FINISHED, FAILED or KILLED). The parent
    gets the settings as ``job.*`` params and the job's wall time as ``perf/job_seconds``.

    Raises:
        ConfigError: settings the trial cannot run under, or nothing to resume (before Ray starts).
        TrackingError: MLflow is unreachable (nothing trained).
    """
    check_trial(settings, trial)
    name = job_name(settings, prefix)
    all_params = {**{f"job.{k}": v for k, v in dataclasses.asdict(settings).items()}, **params}
    with sweep_run(name, settings.experiment, all_params, {"job": job, **tags},
                   settings.tracking_uri) as tracker:
        job = Job(settings, name, job, tracker)
        yield job
        tracker.log_metrics(tracker.parent_run_id, {"perf/job_seconds": job.seconds(),
                                                    "perf/trial_seconds": job.trial_seconds,
                                                    "perf/overhead_share": job.overhead_share()}, step=0)


def with_run_settings(space: SearchSpace, settings: SweepSettings, train_steps: int | None,
                      eval_interval: int | None, default_warmup: int, warmup_share: float) -> SearchSpace:
    """``space`` with the job's shortcuts applied to its ``train`` section: steps, evaluation
    interval, threads, CUDA when GPUs are asked for (a warmup as long as the new schedule shrinks to
    ``warmup_share`` of it), and the seed count."""
    train = {k: v for k, v in (("train_steps", train_steps), ("eval_interval", eval_interval)) if v is not None}
    train["threads"] = settings.threads
    if settings.gpus_per_trial > 0:
        train["device"] = "cuda"
    if train_steps is not None and space.sections.get("train", {}).get("warmup_steps", default_warmup) >= train_steps:
        train["warmup_steps"] = max(1, int(train_steps * warmup_share))
    space = space.with_overrides(train=train)
    return space if settings.seeds is None else space.with_seed_count(settings.seeds)


def space_params(space: SearchSpace) -> dict[str, Any]:
    """Parent-run params describing a space: name, source file, description, seeds."""
    return {"space.name": space.name, "space.source": space.source, "space.description": space.description,
            "space.seeds": list(space.seeds)}


def run_sweep(settings: SweepSettings, space: SearchSpace, trial: Trial, job: str, prefix: str) -> pd.DataFrame:
    """Optuna over ``space``'s dimensions, every configuration once per seed, judged by ``trial``'s
    verdict rule; returns the verdict table (also logged to MLflow and printed).

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
    with open_job(settings, trial, job, prefix, space_params(space), {"space": space.name}) as run:
        run_space = param_space(space, {"success_threshold": settings.success_threshold}, searched=not grid)
        _, trials = run.fit(trial, run_space, searcher, configs * len(searcher.groups))
        table = trial.verdict_table(trials, settings)
        run.log_verdicts(trial, table, trials)
        if run.interrupted:
            print_verdicts(f"sweep {run.name}, interrupted", table, trials, trial.columns)
            run.raise_if_interrupted()
    print_verdicts(f"sweep {run.name}", table, trials, trial.columns)
    print_footer(run)
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


def print_footer(job: Job) -> None:
    """Where the job landed in MLflow, and its wall time."""
    tracker = job.tracker
    print(f"MLflow: experiment {tracker.experiment_id}, parent run {tracker.parent_run_id} at "
          f"{tracker.client.tracking_uri}; MLflow calls that failed: {job.failures}")
    print(f"Wall time {job.seconds() / 60:.1f} min on {job.slots} trial slot(s); the trials' own time "
          f"{job.trial_seconds / 60:.1f} min; Ray, MLflow and idle slots: {100 * job.overhead_share():.1f}% "
          f"of the capacity")
