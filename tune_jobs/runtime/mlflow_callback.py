"""A Tune callback that mirrors every trial into its own nested MLflow run, from the driver only.

Unlike ``MLflowLoggerCallback`` it writes under one parent run, looks a trial's run up by trial id
before creating one (restores continue the same run), logs each result as one batch with its
training step (a step already logged is skipped), and ends every run FINISHED or FAILED.

A logging failure never stops the sweep: the write is queued and retried, in order, on the next
callback and at the end (``reconcile``), which also backfills from Tune's stored results whatever
a killed driver or an unreachable server missed.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Mapping

from ray.tune.result import AUTO_RESULT_KEYS

from mlflow_utils import SweepTracker, TrackingError, metric_step
from tune_jobs.runtime.driver_callbacks import DriverCallback
from tune_jobs.runtime.replicates import (final_metrics, replicate_folder, replicate_reports, replicate_results,
                                          replicates, reported_error, trial_id_of)
from tune_jobs.runtime.run_record import GROKKING_STEP, PARAM_PREFIX, new_params, source_tags
from tune_jobs.runtime.searcher import OBJECTIVE
from tune_jobs.runtime.trial_config import config_id, flat_fields, run_settings, seed_of

logger = logging.getLogger(__name__)

METRIC_PREFIXES = ("train/", "val/", "test/", "perf/", "protocol/", "train_eval/", "diag/", "gen/", "tok/", "data/",
                   "audit/", "model/")
"""Namespaces of the metrics a trial reports: every numeric value under them is logged."""
METRIC_KEYS = ("lr", "success", OBJECTIVE, "resumed_from_step", GROKKING_STEP)
"""Metrics a trial reports outside those namespaces."""
TAG_PREFIXES = ("env/", "data/")
"""String values under these prefixes become tags (``env/`` stripped; ``data/`` checksums kept whole)."""
NOT_METRICS = frozenset({*AUTO_RESULT_KEYS, "trial_id", "done", "should_checkpoint", "experiment_tag", "step", "seed",
                         "config_id", "checkpoint_path"})
"""Keys of a report that are bookkeeping (Tune's own, the step, the replicate's identity), never metrics."""


def split_metrics(result: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(the metrics of a report to log, the numeric keys it holds that are neither a known metric nor
    bookkeeping: a namespace missing from ``METRIC_PREFIXES``)."""
    metrics, unknown = {}, []
    for key, value in result.items():
        if key.startswith(METRIC_PREFIXES) or key in METRIC_KEYS:
            metrics[key] = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and key not in NOT_METRICS \
                and not key.startswith(("config/", PARAM_PREFIX, *TAG_PREFIXES)):
            unknown.append(key)
    return metrics, unknown


def flat_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's MLflow params: its fields, seed and config id, and its run settings as ``run.*``."""
    run = {}
    for key, value in run_settings(config).items():
        nested = value.items() if isinstance(value, Mapping) else ()
        run.update({f"run.{key}.{k}": v for k, v in nested} if nested else {f"run.{key}": value})
    return {**flat_fields(config), "seed": seed_of(config), "config_id": config_id(config), **run}


def default_run_name(config: dict[str, Any]) -> str:
    """``<config id>-seed<seed>``: a child run's name unless the job gives its own."""
    return f"{config_id(config)}-seed{seed_of(config)}"


class MlflowTrialRuns(DriverCallback):
    """Child run per trial under ``tracker``'s parent run (see module doc); a copy restored by
    ``Tuner.restore`` writes through this one's tracker (``driver_callbacks.bound``)."""

    def __init__(self, tracker: SweepTracker, run_name: Callable[[dict], str] = default_run_name) -> None:
        super().__init__(tracker.sweep_id)
        self.tracker = tracker
        self.run_name = run_name
        """Names a trial's run from its trial config."""
        self.runs: dict[str, str] = {}
        """trial id -> MLflow run id."""
        self.failures = 0
        """Logging calls that raised (each was queued and retried)."""
        self.pending: deque[tuple[str, Callable[[], None]]] = deque()
        """Writes that failed, oldest first, waiting to be retried."""
        self._tags: dict[str, dict[str, str]] = {}
        self._params: dict[str, set[str]] = {}
        """MLflow run id -> the resolved-config params this driver has logged on it (``runtime.run_record``)."""
        self._live: set[str] = set()
        """Trial ids Tune knows in this run of the job (an MLflow run of any other is an orphan)."""
        self.refused: set[str] = set()
        """Report keys not logged because no metric namespace names them (each warned about once)."""

    def _safely(self, what: str, action: Callable[[], None]) -> None:
        self.pending.append((what, action))
        self._flush_pending()

    def _flush_pending(self) -> bool:
        """Run queued writes in order; stop at the first failure (it stays queued). True when all ran."""
        while self.pending:
            what, action = self.pending[0]
            try:
                action()
            except Exception as error:  # noqa: BLE001 - logging must never stop the sweep
                self.failures += 1
                logger.warning("MLflow %s failed (%d writes queued for retry): %s", what, len(self.pending), error)
                return False
            self.pending.popleft()
        return True

    def flush(self, timeout_s: float = 300.0) -> None:
        """Retry queued writes with exponential backoff (1 s doubling to 30 s) for up to ``timeout_s``.

        Raises:
            TrackingError: writes are still failing at the deadline (the results stay in Tune's storage;
                rerunning the job with ``--resume`` logs them).
        """
        deadline, wait = time.monotonic() + timeout_s, 1.0
        while not self._flush_pending():
            if time.monotonic() + wait > deadline:
                raise TrackingError(f"MLflow at {self.tracker.client.tracking_uri} kept failing: "
                                    f"{len(self.pending)} writes not logged; the results are in Tune's storage, "
                                    f"rerun the job with --resume to log them")
            time.sleep(wait)
            wait = min(2 * wait, 30.0)

    def _runs_of(self, trial: Any) -> list[tuple[str, dict]]:
        """(MLflow run id, replicate config) of each seed the trial trains (``runtime.replicates``)."""
        return [(self._run_for(key, config), config) for key, config in replicates(trial.trial_id, trial.config)]

    def _run_for(self, trial_id: str, trial_config: dict) -> str:
        if trial_id not in self.runs:
            tags = {"seed": seed_of(trial_config), "config_id": config_id(trial_config)}
            self.runs[trial_id] = self.tracker.start_trial_run(trial_id, self.run_name(trial_config),
                                                               flat_params(trial_config), tags,
                                                               live_trial_ids=self._live | {trial_id})
        return self.runs[trial_id]

    def _log_result(self, trial_id: str, trial_config: dict, result: dict) -> None:
        run_id = self._run_for(trial_id, trial_config)
        try:
            step = metric_step(result.get("step"))
        except ValueError as error:  # a write that can never succeed must not hold the queue
            logger.warning("trial %s: result not logged to MLflow: %s", trial_id, error)
            return
        metrics, unknown = split_metrics(result)
        for key in set(unknown) - self.refused:
            self.refused.add(key)
            logger.warning("trial %s reports %r, outside every metric namespace (METRIC_PREFIXES in %s): not logged "
                           "to MLflow; add its namespace there to log it", trial_id, key, __name__)
        self.tracker.log_metrics(run_id, metrics, step=step)
        self._log_resolved(run_id, trial_config, result)
        tags = {k.removeprefix("env/"): v for k, v in result.items() if k.startswith(TAG_PREFIXES) and isinstance(v, str)}
        changed = {k: v for k, v in tags.items() if self._tags.get(run_id, {}).get(k) != v}
        if changed:  # first result, or a retried trial landed on another node
            self.tracker.set_tags(run_id, changed)
            self._tags.setdefault(run_id, {}).update(changed)

    def _log_resolved(self, run_id: str, trial_config: dict, result: dict) -> None:
        """On a run's first result in this driver: the resolved config the report carries as params (those
        the run lacks; a resumed run keeps its own) and the run's source, the command that re-runs it."""
        params = new_params(result, trial_config, self._params.setdefault(run_id, set()))
        if params:
            self.tracker.log_new_params(run_id, params)
            self.tracker.set_tags(run_id, source_tags(run_id, self.tracker.client.tracking_uri))
            self._params[run_id].update(params)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._live.update(key for t in trials for key, _ in replicates(t.trial_id, t.config))
        self._safely("run start", lambda: self._runs_of(trial))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        for key, seed_config, metrics in replicate_reports(trial.trial_id, trial.config, dict(result)):
            self._safely("metric logging", lambda k=key, c=seed_config, m=metrics: self._log_result(k, c, m))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        checkpoint, last_result = trial.checkpoint, trial.last_result
        final = final_metrics(trial.config, last_result)

        def end() -> None:
            with final_checkpoint_folder(checkpoint, last_result) as folder:
                for (run_id, config), metrics in zip(self._runs_of(trial), final):
                    seed_folder = None if folder is None else replicate_folder(folder, config)
                    if seed_folder is not None and seed_folder.is_dir():  # the final checkpoint only
                        self.tracker.log_artifacts(run_id, seed_folder, "checkpoints")
                    error = reported_error(metrics)
                    self.tracker.end_run(run_id, "FAILED" if error else "FINISHED", error=error)
        self._safely("run end", end)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        error = error_text(trial)

        def end() -> None:
            for run_id, _ in self._runs_of(trial):
                self.tracker.end_run(run_id, "FAILED", error=error)
        self._safely("run end", end)

    def reconcile(self, results: Any, interrupted: Collection[str] = (), timeout_s: float = 300.0) -> int:
        """Make MLflow match Tune's stored results after a fit: retry queued writes, then for every
        trial log the reported steps its run lacks and end it FINISHED or FAILED if it is not (KILLED
        for the trials in ``interrupted``: the fit was cut short before they ended; a trial that never
        started gets no run). Returns how many runs were changed.

        Raises:
            TrackingError: MLflow kept failing for ``timeout_s`` (see ``flush``).
        """
        self.flush(timeout_s)
        results = list(results)
        self._live.update(replicate.key for r in results for replicate in replicate_results(r))
        changed = 0
        try:
            for result in results:
                trial_cut_short = trial_id_of(result) in interrupted
                for replicate in replicate_results(result):
                    changed += self._reconcile_one(replicate, trial_cut_short)
        except Exception as error:  # noqa: BLE001 - name the way out, whatever the store raised
            raise TrackingError(f"MLflow at {self.tracker.client.tracking_uri} failed while logging stored results "
                                f"({error}); they are in Tune's storage, rerun the job with --resume") from error
        return changed

    def _reconcile_one(self, result: Any, cut_short: bool) -> int:
        trial_id = result.key
        history = result.metrics_dataframe
        rows = [] if history is None or "step" not in history else \
            [row for row in history.to_dict("records") if _storable(row["step"])]
        expected = "FAILED" if result.error is not None else "KILLED" if cut_short else "FINISHED"
        run_id = self.runs.get(trial_id) or self.tracker.find_trial_run(trial_id)
        if run_id is None and cut_short and not rows:
            return 0
        if run_id is not None:
            self.runs[trial_id] = run_id
            if not self.tracker.missing_steps(run_id, [int(row["step"]) for row in rows]) \
                    and self.tracker.client.get_run(run_id).info.status == expected:
                return 0
        run_id = self._run_for(trial_id, result.config)
        for row in rows:
            self._log_result(trial_id, result.config, {k: v for k, v in row.items() if v == v})
        self.tracker.end_run(run_id, expected, error=None if result.error is None else str(result.error))
        return 1


def _storable(step: Any) -> bool:
    """Whether a stored result's step can be logged (NaN, inf and huge steps are left out)."""
    try:
        metric_step(step)
    except ValueError:
        return False
    return True


@contextmanager
def final_checkpoint_folder(checkpoint: Any, metrics: dict | None) -> Iterator[str | None]:
    """A local folder with a trial's latest checkpoint: its Tune checkpoint, else the Ray Train
    checkpoint a data-parallel trial reports as ``checkpoint_path`` (``TuneReportCallback``); None
    when there is neither."""
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            yield folder
        return
    path = (metrics or {}).get("checkpoint_path")
    yield path if path and Path(path).is_dir() else None


def error_text(trial: Any) -> str:
    """A failed trial's error text: the local error file Tune has just written, else the synced copy."""
    local = trial.error_file
    if local and Path(local).is_file():
        return Path(local).read_text()
    return str(trial.get_error() or "trial failed (Tune stored no error text)")
