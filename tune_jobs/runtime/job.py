"""The lifecycle of every job: open the parent run, fit the trials, tabulate, judge, log, close.

A job (``tune_jobs/<job>.py``) reads as a recipe: its arguments, its space (or fixed configurations),
its trial record (``tune_jobs/trials/``), then ``run_sweep`` here, or ``open_job`` and the same steps
with a verdict of its own (``reproduce``, ``crosslingual``). Each configuration runs on its seed groups
(``runtime.searcher``); no early-stopping scheduler: grokking arrives late. The parent run's params
are ``runtime.params``', the job's time ``runtime.accounting``'s, the terminal's lines ``runtime.console``'s.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import pandas as pd
from ray.tune.search import Searcher

from mlflow_utils import SweepTracker, sweep_run
from search_spaces import SearchSpace
from trainables.checks import ConfigError
from tune_jobs.runtime.accounting import Accounting
from tune_jobs.runtime.console import print_footer, print_verdicts
from tune_jobs.runtime.job_lock import job_lock
from tune_jobs.runtime.job_settings import check_or_save, job_record, space_fields
from tune_jobs.runtime.params import run_params, space_params, space_values, sweep_intro
from tune_jobs.runtime.preflight import check_local_resources
from tune_jobs.runtime.report import CONFIG_TAG, child_metrics, log_report, log_tables, parent_tags
from tune_jobs.runtime.results import curve_table, trial_table
from tune_jobs.runtime.progress import all_seeds_done
from tune_jobs.runtime.run_record import grokking_metric  # issue 19: grokking_step on child runs
from tune_jobs.runtime.searcher import (FixedConfigs, SeedReplicates, SequentialReplicates, grid_points,
                                       optuna_replicates, param_space, replicated, sequential_design)
from tune_jobs.runtime.settings import RunSettings, SweepSettings
from tune_jobs.runtime.study import write_study
from tune_jobs.runtime.trial import Trial
from tune_jobs.runtime.tuner import check_trial, fit, job_name
from tune_jobs.verdicts import figures as plots
from tune_jobs.verdicts.allocation import decision_table
from tune_jobs.verdicts.seeds import SUCCESS_THRESHOLD
from tune_jobs.verdicts.sequential import SequentialDesign


class Interrupted(KeyboardInterrupt):
    """The job was stopped (Ctrl-C, SIGTERM) before every trial ended; the message says how to resume.
    ``job_name``: the job's name (``runtime.cli`` prints the exact command that resumes it)."""

    def __init__(self, message: str, job_name: str) -> None:
        super().__init__(message)
        self.job_name = job_name


@dataclass
class Job:
    """One running job: its settings, name, parent run, and what its fit left."""

    settings: RunSettings
    name: str
    target: str
    """The make target (the parent run's ``job`` tag)."""
    tracker: SweepTracker
    accounting: Accounting = field(default_factory=Accounting)
    """The job's wall time, the trials' own time and the trial slots."""
    run_ids: dict[str, str] = field(default_factory=dict)
    """Trial id -> MLflow run id, after ``fit``."""
    failures: int = 0
    """MLflow calls that failed (each was queued and retried)."""
    interrupted: set[str] = field(default_factory=set)
    """Trial ids the fit left unfinished (a Ctrl-C or SIGTERM stopped it)."""
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Every reported value of the trial's ``curve`` metric, after ``fit`` (``runtime.results.curve_table``)."""

    def fit(self, trial: Trial, space: dict[str, Any], searcher: Searcher, num_samples: int,
            run_name: Callable[[dict], str] | None = None, planned: Callable[[], int] | None = None,
            decided: Callable[[Mapping[str, int]], int] | None = None, least: Callable[[], int] | None = None,
            seed_steps: float | None = None) -> tuple[Any, pd.DataFrame]:
        """Run the trials, each child run named ``run_name(config)`` (default ``trial.run_name``:
        '<readable name> s<seed>'), the progress line counting ``planned()`` seeds (``least()`` at the
        least; ``seed_steps``: a seed's mean schedule where they differ) and ``decided(seeds done per
        configuration)`` decisions (``runtime.tuner.fit``,
        ``progress_counts``); returns Tune's ResultGrid
        and the trial table (``runtime.results``). The parent gets the param ``job.concurrent_trials``."""
        fitted = fit(self.settings, trial, space, searcher, num_samples, name=self.name, tracker=self.tracker,
                     run_name=run_name or trial.run_name, planned=planned, decided=decided, least=least,
                     seed_steps=seed_steps)
        grid = fitted.grid
        self.run_ids, self.failures, self.interrupted = fitted.run_ids, fitted.failures, fitted.interrupted
        self.accounting.add_fit(grid, fitted.slots)
        self.tracker.log_new_params(self.tracker.parent_run_id, {"job.concurrent_trials": fitted.slots})
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
                              f"{self.settings.storage()}; continue them with the make variables the job started "
                              f"with and: make {self.target} RESUME=1 NAME={self.name}", self.name)

    def log_verdicts(self, trial: Trial, table: pd.DataFrame, trials: pd.DataFrame, intro: Sequence[str] = ()
                     ) -> None:
        """The verdicts on the parent run (``runtime.report.parent_tags``: ``verdict.<name>``,
        ``best_config``, ``best_verdict``; tables ``verdict`` and ``trials``, and ``runtime.report``'s
        description under ``intro`` and figures) and on each trial's run (``trial.child_tags``, among them
        ``outcome``, and its configuration's ``config/<column>`` metrics)."""
        if table.empty:
            return
        log_tables(self.tracker, {"verdict": table, "trials": trials})
        self.tracker.set_tags(self.tracker.parent_run_id, parent_tags(trial, table))
        by_config = table.set_index("config_id")
        for row in trials.itertuples():
            run_id = self.run_ids.get(row.trial_id)
            if run_id is not None and row.config_id in by_config.index:
                verdict = by_config.loc[row.config_id]
                self.tracker.set_tags(run_id, {**trial.child_tags(verdict, row), CONFIG_TAG: verdict["name"]})
                self.tracker.log_summary(run_id, {**child_metrics(verdict, trial.summary_metrics),
                                                  **grokking_metric(getattr(row, "grokking_step", None))})  # issue 19
        log_report(self.tracker, trial, table, trials, self.curves, self.settings, intro)

    def print_footer(self, study: str | None = None) -> None:
        """Where the job landed in MLflow (and Optuna's ``study`` file), and where its time went."""
        print_footer(self.tracker, self.accounting, self.failures, self.name, study)


@contextmanager
def open_job(settings: RunSettings, trial: Trial, target: str, prefix: str, params: Mapping[str, Any],
             tags: Mapping[str, Any], label: str = "", resolved: Mapping[str, Any] | None = None,
             identity: Mapping[str, Any] = ()) -> Iterator[Job]:
    """Check the settings against the trial, name the job ``prefix-<UTC time>`` (or as the settings
    say), and hold its parent run open (``mlflow_utils.sweep_run``: RUNNING children are closed KILLED
    at the end, the parent FINISHED, FAILED or KILLED). The parent run is named ``<target> <label>``
    (e.g. 'sweep-addition smoke') and tagged ``job=<target>`` (the make target); its params are the
    settings as they ran (``runtime.params.run_params`` with ``resolved``) and ``params``; its
    ``perf/*`` metrics the job's time (``runtime.accounting``). Those params and ``identity`` (what else
    decides the trials, e.g. the space's fields) are the job's record (``runtime.job_settings``): saved
    when it starts, compared when it is resumed.

    Raises:
        ConfigError: settings the trial cannot run under, nothing to resume, or a resume whose settings
            differ from the job's record (before Ray starts).
        StorageError: the storage path is not writable (before Ray starts).
        TrackingError: MLflow is unreachable (nothing trained).
    """
    check_trial(settings, trial)
    check_local_resources(settings)  # issue 20 hook: runtime/preflight.py, before Ray and before the parent run
    name = job_name(settings, prefix)
    all_params = {**run_params(settings, name, resolved or {}), **params}
    with job_lock(settings, name):
        check_or_save(settings, name, job_record(all_params, identity))  # under the lock: one job writes it
        with sweep_run(name, settings.experiment, all_params, {"job": target, **tags}, settings.tracking_uri,
                       run_name=f"{target} {label}".strip()) as tracker:
            job = Job(settings, name, target, tracker)
            yield job
            tracker.log_summary(tracker.parent_run_id, job.accounting.metrics())


def seed_design(space: SearchSpace, trial: Trial, per_trial: int) -> SequentialDesign | None:
    """The space's sequential seed design (``runtime.searcher.sequential_design``), None for a fixed list.

    Raises:
        ConfigError: a range of seeds for a trial without a success rate (names both).
        SearchSpaceError: an impossible design.
    """
    if space.seed_range is not None and not trial.success_rate:
        raise ConfigError(f"seeds {space.seed_range}: sequential seeds decide on a success rate, and the "
                          f"{trial.name} trial has none (it is judged by its own rule); give a count of seeds")
    return sequential_design(space, per_trial)


def progress_counts(searcher: SeedReplicates | SequentialReplicates, configs: int
                    ) -> tuple[Callable[[], int], Optional[Callable[[], int]], Callable[[Mapping[str, int]], int]]:
    """The progress line's (seeds planned, seeds needed at the least (None: as planned), decisions so far
    from seeds done per configuration) of a sweep of ``configs`` configurations: fixed seeds plan them all
    and decide a configuration when all its seeds are done; sequential seeds plan ``max`` for each
    configuration still open, need the fewest seeds their design can decide at (``fewest_to_decide``)
    at the least, and decide when the searcher does
    (``SequentialReplicates.planned_seeds``, ``least_seeds`` and ``told``)."""
    if isinstance(searcher, SequentialReplicates):
        return (lambda: searcher.planned_seeds(configs)), (lambda: searcher.least_seeds(configs)), \
            (lambda done: len(searcher.told))
    seeds = len(searcher.groups.seeds)
    return (lambda: configs * seeds), None, all_seeds_done(lambda: seeds)


def sequential_trial(trial: Trial, design: SequentialDesign) -> Trial:
    """``trial`` judged under a sequential design: the interval columns printed, and the figure of each
    configuration's confidence sequence (``verdicts.figures.confidence_sequences``) beside its own."""
    own = trial.figures

    def figures(verdicts: pd.DataFrame, trials: pd.DataFrame, curves: pd.DataFrame, settings: Any) -> dict[str, Any]:
        threshold = getattr(settings, "success_threshold", SUCCESS_THRESHOLD)
        return {**(own(verdicts, trials, curves, settings) if own else {}),
                "confidence_sequences.png": plots.confidence_sequences(trials, verdicts, design, threshold)}

    interval = ("cs_low", "cs_high", "dominated_by")
    return dataclasses.replace(trial.with_columns(interval), figures=figures,
                               summary_columns=(*trial.summary_columns, *interval))


def run_sweep(settings: SweepSettings, space: SearchSpace, trial: Trial, target: str, prefix: str) -> pd.DataFrame:
    """Optuna over ``space``'s dimensions (or the grid of its choices), every configuration on its seed
    groups, judged by ``trial``'s verdict rule; returns the verdict table (also logged to MLflow with
    its figures, written to the Optuna study ``runtime.study``, and printed).

    Raises:
        ConfigError: settings the trial cannot run under (nothing started).
        TrackingError: MLflow is unreachable (nothing trained).
    """
    grid, per_trial = settings.grid or not space.dimensions(), settings.seeds_per_trial
    design = seed_design(space, trial, per_trial)
    if grid:
        points = grid_points(space)
        configs = len(points)
        searcher = replicated(FixedConfigs(points), space, configs, trial.failure_score, per_trial)
    else:
        configs = settings.num_configs
        searcher = optuna_replicates(space, settings.search_seed, trial.failure_score, per_trial, configs)
    with open_job(settings, trial, target, prefix, space_params(space, configs, design), {"space": space.name},
                  label=space.name, resolved=space_values(space), identity=space_fields(space)) as run:
        run_space = param_space(space, settings.trial_run_settings(), searched=not grid)
        planned, least, decided = progress_counts(searcher, configs)
        _, trials = run.fit(trial, run_space, searcher, searcher.max_trials(configs), planned=planned, least=least,
                            decided=decided)
        table = trial.verdict_table(trials, settings)
        if design is not None:
            table = decision_table(table, trials, design, settings.success_threshold)
            trial = sequential_trial(trial, design)
        run.log_verdicts(trial, table, trials, sweep_intro(target, space, configs, run.name))
        if run.interrupted:
            print_verdicts(f"sweep {run.name}, interrupted", table, trials, trial.columns)
            run.raise_if_interrupted()
        study = write_study(settings, space, run.name, table, trials, run.tracker)
    print_verdicts(f"sweep {run.name}", table, trials, trial.columns)
    run.print_footer(study)
    return table
