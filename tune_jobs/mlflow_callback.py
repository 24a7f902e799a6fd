"""A Tune callback that mirrors every trial into its own nested MLflow run, from the driver only.

Unlike ``MLflowLoggerCallback`` it writes under one parent run, looks a trial's run up by trial id
before creating one (restores continue the same run), logs each result as one batch with its
training step, and ends every run FINISHED or FAILED. A logging failure is reported and skipped:
it never stops the sweep.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from ray import tune

from mlflow_utils import SweepTracker
from tune_jobs.search import OBJECTIVE, config_id, seed_of

logger = logging.getLogger(__name__)

METRIC_PREFIXES = ("train/", "val/", "test/", "perf/", "protocol/", "train_eval/", "diag/", "gen/", "tok/", "data/",
                   "audit/", "model/")
TAG_PREFIXES = ("env/", "data/")
"""String values under these prefixes become tags (``env/`` stripped; ``data/`` checksums kept whole)."""
METRIC_KEYS = ("lr", "success", OBJECTIVE)


def flat_params(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's params: every field of its sections (``model.*``, ``train.*``, ``params.*``), its seed,
    config id, and top-level settings (success threshold, protocol, role, job file)."""
    params = {f"{section}.{k}": v for section, fields in config.items() if isinstance(fields, dict)
              for k, v in fields.items()}
    params.update({"seed": seed_of(config), "config_id": config_id(config)})
    params.update({k: v for k, v in config.items() if not isinstance(v, (dict, list)) and k != "__trial_index__"})
    return params


class MlflowTrialRuns(tune.Callback):
    """Child run per trial under ``tracker``'s parent run (see module doc)."""

    def __init__(self, tracker: SweepTracker, config_of: Callable[[dict], dict] = lambda config: config) -> None:
        self.tracker = tracker
        self.config_of = config_of
        """Maps a Tune trial config to the run config (model/train sections) it stands for."""
        self.runs: dict[str, str] = {}
        """trial id -> MLflow run id."""
        self.failures = 0
        """Logging calls that raised (and were skipped)."""
        self._tagged: set[str] = set()

    def _safely(self, what: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as error:  # noqa: BLE001 - logging must never stop the sweep
            self.failures += 1
            logger.warning("MLflow %s failed: %s", what, error)

    def _run_id(self, trial: Any) -> str:
        if trial.trial_id not in self.runs:
            config = self.config_of(trial.config)
            name = config.get("run_name") or f"{config_id(config)}-seed{seed_of(config)}"
            tags = {"seed": seed_of(config), "config_id": config_id(config)}
            self.runs[trial.trial_id] = self.tracker.start_trial_run(trial.trial_id, name, flat_params(config), tags)
        return self.runs[trial.trial_id]

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._safely("run start", lambda: self._run_id(trial))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        def log() -> None:
            run_id = self._run_id(trial)
            metrics = {k: v for k, v in result.items() if k.startswith(METRIC_PREFIXES) or k in METRIC_KEYS}
            self.tracker.log_metrics(run_id, metrics, step=int(result["step"]))
            if run_id not in self._tagged:
                self.tracker.set_tags(run_id, {k.removeprefix("env/"): v for k, v in result.items()
                                               if k.startswith(TAG_PREFIXES) and isinstance(v, str)})
                self._tagged.add(run_id)
        self._safely("metric logging", log)

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        def log() -> None:
            with checkpoint.as_directory() as folder:
                self.tracker.log_artifacts(self._run_id(trial), folder, "checkpoints")
        self._safely("checkpoint upload", log)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._safely("run end", lambda: self.tracker.end_run(self._run_id(trial), "FINISHED"))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._safely("run end", lambda: self.tracker.end_run(self._run_id(trial), "FAILED", error=error_text(trial)))


def error_text(trial: Any) -> str:
    """A failed trial's error text: the local error file Tune has just written, else the synced copy."""
    local = trial.error_file
    if local and Path(local).is_file():
        return Path(local).read_text()
    return str(trial.get_error() or "trial failed (Tune stored no error text)")
