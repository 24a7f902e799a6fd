"""Building, restoring and fitting the Tuner of a job, each trial mirrored into MLflow.

Crashed trials are retried ``settings.max_failures`` times from their latest checkpoint. With
``settings.resume`` the experiment ``storage_path/name`` is restored instead (finished trials kept,
unfinished and errored ones continued from their checkpoints, the searcher's state reloaded). After
the fit, every trial's results in Tune's storage are reconciled into MLflow, so what a killed driver
or an unreachable server missed is logged once. Restoring unpickles the experiment's state from the
storage path: it must be storage the user trusts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ray import tune
from ray.tune import ResultGrid
from ray.tune.search import Searcher

from mlflow_utils import SweepTracker
from trainables.checks import ConfigError
from tune_jobs.runtime.driver_callbacks import bound
from tune_jobs.runtime.interruptions import TrialStatuses
from tune_jobs.runtime.mlflow_callback import MlflowTrialRuns, default_run_name
from tune_jobs.runtime.progress import Progress, slow_ray_table
from tune_jobs.runtime.ray_session import start_ray, trial_resources
from tune_jobs.runtime.ray_train import RAY_TRAIN, data_parallel
from tune_jobs.runtime.replicates import trial_id_of
from tune_jobs.runtime.searcher import OBJECTIVE
from tune_jobs.runtime.settings import RunSettings, is_uri
from tune_jobs.runtime.storage import KEEP_CHECKPOINTS, check_shared_storage, check_writable
from tune_jobs.runtime.trial import Trial
from tune_jobs.runtime.trial_config import RUN


def job_name(settings: RunSettings, prefix: str) -> str:
    """The Tune experiment (and parent run) name: ``settings.name``; with ``resume`` and no name, the
    newest experiment in the storage path starting with ``prefix-``; else ``prefix-<UTC time>``.

    Raises:
        ConfigError: ``resume`` is set and there is nothing to resume.
    """
    storage = settings.storage()
    if not settings.resume:
        return settings.name or f"{prefix}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    if settings.name:
        candidates = [f"{storage.rstrip('/')}/{settings.name}"]
    elif is_uri(storage):
        raise ConfigError(f"resume: name the job to restore (--name) when storage_path is a URI ({storage})")
    else:
        candidates = [str(path) for path in sorted(Path(storage).glob(f"{prefix}-*"),
                                                   key=lambda path: path.stat().st_mtime, reverse=True)]
    for path in candidates:
        if tune.Tuner.can_restore(path):
            return path.rstrip("/").rsplit("/", 1)[-1]
    raise ConfigError(f"resume: no interrupted job {settings.name or prefix + '-*'!r} to restore in {storage}; "
                      f"run the job without --resume to start it")


def check_trial(settings: RunSettings, trial: Trial) -> None:
    """Refuse, before Ray starts (and before MLflow gets a run), settings the trial cannot run under.

    Raises:
        ConfigError: ``workers`` > 1 for a trial without a data-parallel body (names both).
        StorageError: the storage path is not writable.
    """
    check_writable(settings.storage())
    if settings.workers > 1 and not trial.data_parallel:
        raise ConfigError(f"workers={settings.workers}: the {trial.name} trial has no data-parallel version "
                          f"(its training is not sharded); run it with workers=1")
    if settings.seeds_per_trial > 1 and not trial.stacked:
        raise ConfigError(f"seeds_per_trial={settings.seeds_per_trial}: the {trial.name} trial trains one seed "
                          f"per trial; run it with seeds_per_trial=1")
    if settings.seeds_per_trial > 1 and settings.workers > 1:
        raise ConfigError(f"seeds_per_trial={settings.seeds_per_trial} with workers={settings.workers}: a stacked "
                          f"trial trains in one process; choose one of the two")


def check_devices(settings: RunSettings, param_space: dict[str, Any]) -> None:
    """Refuse a section asking for CUDA when the trials hold no GPU (Ray hides every GPU from a trial
    that reserved none, so it could never start).

    Raises:
        ConfigError: names the field, its value and the setting to change.
    """
    if settings.gpus_per_trial > 0:
        return
    for section, fields in param_space.items():
        device = fields.get("device") if isinstance(fields, dict) else None
        if isinstance(device, str) and device.startswith("cuda"):
            raise ConfigError(f"{section}.device={device!r} but gpus_per_trial=0: a trial holding no GPU sees none; "
                              f"give --gpus-per-trial (GPUS=) a share of a GPU, or set {section}.device=cpu")


@dataclass
class Fitted:
    """What a fit leaves: Tune's results and what the driver's callbacks recorded."""

    grid: ResultGrid
    """Tune's results, one per trial."""
    run_ids: dict[str, str]
    """Replicate key -> MLflow run id."""
    failures: int
    """MLflow calls that failed (each was queued and retried)."""
    interrupted: set[str]
    """Trial ids the fit left unfinished (a Ctrl-C or SIGTERM stopped it)."""
    slots: int
    """Trials that could run at once."""


def fit(settings: RunSettings, trial: Trial, param_space: dict[str, Any], searcher: Searcher, num_samples: int, *,
        name: str, tracker: SweepTracker, run_name: Callable[[dict], str] = default_run_name,
        planned: Callable[[], int] | None = None, decided: Callable[[Mapping[str, int]], int] | None = None,
        least: Callable[[], int] | None = None, seed_steps: float | None = None) -> Fitted:
    """Run ``trial`` on the configs ``searcher`` suggests, each mirrored into MLflow under ``tracker``'s
    parent run (see the module doc), with a progress line (``runtime.progress``): ``planned()`` seeds in
    all (default ``num_samples`` x ``seeds_per_trial``; ``least()`` at the least, under sequential seeds:
    the ETA is then a range; ``seed_steps``: the mean schedule of a seed, steps, where the configurations'
    schedules differ), ``decided(seeds done per configuration)``
    configurations decided so far (without it, no decision count is shown); both are read at every refresh
    and may change as seeds are added. The settings were checked against the trial (``check_trial``)
    before the parent run opened.

    Raises:
        ConfigError: settings the cluster cannot serve (before any trial runs).
        StorageError: the storage path is not shared by every node.
    """
    check_devices(settings, param_space)
    storage = settings.storage()
    run = dict(param_space.get(RUN, {}))
    if settings.checkpoint_interval is not None:
        run["checkpoint_interval"] = settings.checkpoint_interval
    trainable = trial.tune_function()
    if settings.workers > 1:
        run[RAY_TRAIN] = {"workers": settings.workers, "cpus_per_worker": settings.threads,
                          "gpus_per_worker": settings.gpus_per_trial, "storage": f"{storage.rstrip('/')}/{name}/ray_train"}
        trainable = data_parallel(trial)
    param_space = {**param_space, RUN: run}
    concurrent = start_ray(settings)
    check_shared_storage(storage)
    trainable = tune.with_resources(trainable, trial_resources(settings))
    mlflow_runs, statuses = MlflowTrialRuns(tracker, run_name), TrialStatuses(name)
    planned = planned or (lambda: num_samples * settings.seeds_per_trial)
    progress = Progress(name, planned, decided, least=least, seed_steps=seed_steps)
    slow_ray_table()
    with bound([mlflow_runs, statuses, progress]):
        tuner = _restored(storage, name, trainable, param_space) if settings.resume else tune.Tuner(
            trainable, param_space=param_space,
            tune_config=tune.TuneConfig(search_alg=searcher, metric=OBJECTIVE, mode="max", num_samples=num_samples,
                                        max_concurrent_trials=concurrent, reuse_actors=True,
                                        trial_dirname_creator=lambda t: t.trial_id),
            run_config=tune.RunConfig(name=name, storage_path=storage, callbacks=[mlflow_runs, statuses, progress],
                                      verbose=1,
                                      failure_config=tune.FailureConfig(max_failures=settings.max_failures),
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=KEEP_CHECKPOINTS)))
        grid = tuner.fit()  # Tune adds its own loggers to the callbacks list it is given: name ours apart
        interrupted = statuses.interrupted(trial_id_of(result) for result in grid)
        mlflow_runs.reconcile(grid, interrupted)
    return Fitted(grid, mlflow_runs.runs, mlflow_runs.failures, interrupted, concurrent)


def _restored(storage: str, name: str, trainable: Any, param_space: dict[str, Any]) -> tune.Tuner:
    """The interrupted experiment ``storage/name`` restored (its callbacks are this fit's, bound)."""
    return tune.Tuner.restore(f"{storage.rstrip('/')}/{name}", trainable, resume_unfinished=True,
                              resume_errored=True, param_space=param_space)
