"""Run lifecycle of a sweep: a parent run, a nested child run per seed with its params, none left RUNNING.

All writes go through one ``SweepTracker`` in the driver process, so an embedded SQLite store has a
single writer. A trial's run is looked up by its trial id before one is created, so a restored
sweep continues the same run instead of duplicating it. Metrics go in batches with explicit steps.
"""

from __future__ import annotations

import json
import math
import numbers
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Collection, Iterator, Mapping, Sequence
from urllib.parse import urlencode

import mlflow
import pandas as pd
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME, MLFLOW_RUN_NOTE

from mlflow_utils.tracking import connect, ensure_experiment
from mlflow_utils.views import RUNS_VIEW, by_config_key, share_view, view_state

SWEEP_ID_TAG = "sweep_id"
TRIAL_ID_TAG = "trial_id"
ROLE_TAG = "role"
MAX_PARAM_LENGTH = 6000
"""MLflow's limit on a param value's length."""
MAX_TAG_LENGTH = 8000
BATCH_LIMIT = 1000
"""Most metrics (or params, or tags) MLflow accepts in one log_batch call."""


MAX_STEP = 2**63 - 1
"""Largest step MLflow stores (a signed 64-bit integer)."""


def metric_step(value: Any) -> int:
    """``value`` as an MLflow step: an integer (or integral float) in [0, 2**63).

    Raises:
        ValueError: anything else (NaN, inf, 1e400, a huge int, a fraction, text); names the value.
    """
    number = int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else None
    if isinstance(value, numbers.Real) and number is None and not isinstance(value, bool):
        real = float(value)
        number = int(real) if math.isfinite(real) and real == int(real) else None
    if number is None or not 0 <= number <= MAX_STEP:
        raise ValueError(f"step {value!r} cannot be logged: MLflow takes an integer in [0, 2**63)")
    return number


def _metric_value(value: Any) -> float | None:
    """A metric as a finite float; None for what MLflow cannot store (non-numbers, NaN, inf, ints past a float)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _text(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SweepTracker:
    """Parent run of one sweep and the child runs of its trials (see ``sweep_run``)."""

    def __init__(self, client: MlflowClient, experiment_id: str, parent_run_id: str, sweep_id: str) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.sweep_id = sweep_id
        self._logged_steps: dict[str, set[int]] = {}

    # -- child runs -------------------------------------------------------------------------------
    def find_trial_run(self, trial_id: str) -> str | None:
        """Id of this sweep's run for ``trial_id``, or None."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.{SWEEP_ID_TAG} = '{self.sweep_id}' AND tags.{TRIAL_ID_TAG} = '{trial_id}'",
            max_results=2,
        )
        return runs[0].info.run_id if runs else None

    def start_trial_run(self, trial_id: str, run_name: str, params: Mapping[str, Any], tags: Mapping[str, Any],
                        live_trial_ids: Collection[str] = ()) -> str:
        """The child run of ``trial_id`` (a replicate's key), its ``params`` and ``tags`` written when it
        is new: the existing one (set RUNNING again), else an orphan it adopts, else a new nested one.

        An orphan is a run of the same replicate (equal ``config_id`` and ``seed`` tags) left RUNNING
        or KILLED by a trial that is not in ``live_trial_ids``: a driver killed before Tune saved
        its experiment state forgets the trials it had just started, and the restored searcher
        suggests the replicate again under a new trial id. The run takes the new id (the old one is
        kept in the tag ``previous_trial_ids``), so a replicate still has one run.
        """
        run_id = self.find_trial_run(trial_id)
        if run_id is None and "config_id" in tags and "seed" in tags:
            run_id = self._adopt_orphan(trial_id, str(tags["config_id"]), str(tags["seed"]), live_trial_ids)
        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        all_tags = {MLFLOW_PARENT_RUN_ID: self.parent_run_id, MLFLOW_RUN_NAME: run_name, SWEEP_ID_TAG: self.sweep_id,
                    TRIAL_ID_TAG: trial_id, ROLE_TAG: "trial", **tags}
        run = self.client.create_run(self.experiment_id, run_name=run_name,
                                     tags={k: _text(v, MAX_TAG_LENGTH) for k, v in all_tags.items()})
        run_id = run.info.run_id
        self._logged_steps[run_id] = set()
        self.log_params(run_id, params)
        return run_id

    def _trial_runs(self, condition: str) -> list[Any]:
        """This sweep's child runs that meet an MLflow filter ``condition``."""
        return self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.{SWEEP_ID_TAG} = '{self.sweep_id}' AND tags.{ROLE_TAG} = 'trial' "
                                                f"AND {condition}", max_results=10_000)

    def _adopt_orphan(self, trial_id: str, config_id: str, seed: str, live_trial_ids: Collection[str]) -> str | None:
        for run in self._trial_runs(f"tags.config_id = '{config_id}' AND tags.seed = '{seed}'"):
            old = run.data.tags.get(TRIAL_ID_TAG)
            if run.info.status in ("RUNNING", "KILLED") and old not in live_trial_ids and old != trial_id:
                previous = ",".join(filter(None, [run.data.tags.get("previous_trial_ids"), old]))
                self.set_tags(run.info.run_id, {TRIAL_ID_TAG: trial_id, "previous_trial_ids": previous})
                return run.info.run_id
        return None

    def _logged(self, run_id: str) -> set[int]:
        """Steps at which the run has any metric (each result is one batch, so any key marks its step),
        read from the store once, then kept up to date by ``log_metrics``."""
        if run_id not in self._logged_steps:
            keys = self.client.get_run(run_id).data.metrics
            self._logged_steps[run_id] = {m.step for key in keys for m in self.client.get_metric_history(run_id, key)}
        return self._logged_steps[run_id]

    def missing_steps(self, run_id: str, steps: list[int]) -> list[int]:
        """Those of ``steps`` at which the run has no metric yet."""
        logged = self._logged(run_id)
        return [step for step in steps if step not in logged]

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log params in batches (values JSON-encoded unless strings, cut to MLflow's limit)."""
        items = [Param(k, _text(v, MAX_PARAM_LENGTH)) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start:start + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        """Log finite numeric ``metrics`` at ``step`` in one batch; a step already logged is skipped,
        and values MLflow cannot store (NaN, inf, ints past a float) are left out.

        Raises:
            ValueError: ``step`` is not an integer in [0, 2**63) (``metric_step``), before any write.
        """
        step = metric_step(step)
        logged = self._logged(run_id)
        if step in logged:
            return
        stamp = int(time.time() * 1000)
        items = [Metric(k, number, stamp, step) for k, v in metrics.items() if (number := _metric_value(v)) is not None]
        for start in range(0, len(items), BATCH_LIMIT):
            self.client.log_batch(run_id, metrics=items[start:start + BATCH_LIMIT])
        logged.add(step)

    def log_summary(self, run_id: str, metrics: Mapping[str, float]) -> None:
        """Log finite numeric summary ``metrics`` at step 0 in batches, whatever the run already holds
        (a rerun logs the values again: the newest is the one shown)."""
        stamp = int(time.time() * 1000)
        items = [Metric(k, float(v), stamp, 0) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
        for start in range(0, len(items), BATCH_LIMIT):
            self.client.log_batch(run_id, metrics=items[start:start + BATCH_LIMIT])

    def log_new_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log those of ``params`` the run lacks (MLflow never changes a param once logged)."""
        known = self.client.get_run(run_id).data.params
        self.log_params(run_id, {k: v for k, v in params.items() if k not in known})

    def set_description(self, run_id: str, markdown: str) -> None:
        """The run's description (``mlflow.note.content``), Markdown shown on the run's page; cut to
        MLflow's 8000-character limit on a tag."""
        self.client.set_tag(run_id, MLFLOW_RUN_NOTE, _text(markdown, MAX_TAG_LENGTH))

    def log_figure(self, figure: Any, artifact_file: str, run_id: str | None = None) -> str:
        """Save a matplotlib figure as the artifact ``artifact_file`` (e.g. 'figures/success_rate.png') of
        the run (the parent by default); returns the path for ``figure_link``."""
        self.client.log_figure(run_id or self.parent_run_id, figure, artifact_file)
        return artifact_file

    def share_views(self, columns: Sequence[str], group_by_tag: str, widths: Mapping[str, int] | None = None
                    ) -> tuple[str, str]:
        """Write the experiment's runs view and this job's view of its trials grouped by the tag
        ``group_by_tag`` (``mlflow_utils.views``), both with ``columns`` (``widths`` in pixels for some);
        returns their share keys."""
        by_config = by_config_key(self.sweep_id)
        share_view(self.client, self.experiment_id, RUNS_VIEW, view_state(columns, widths=widths))
        trials = f"tags.{SWEEP_ID_TAG} = '{self.sweep_id}' AND tags.{ROLE_TAG} = 'trial'"
        share_view(self.client, self.experiment_id, by_config, view_state(columns, trials, group_by_tag, widths))
        return RUNS_VIEW, by_config

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set several tags in one call."""
        items = [RunTag(k, _text(v, MAX_TAG_LENGTH)) for k, v in tags.items()]
        if items:
            self.client.log_batch(run_id, tags=items)

    def log_artifacts(self, run_id: str, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Copy a folder's files into the run's artifacts."""
        self.client.log_artifacts(run_id, str(local_dir), artifact_path)

    def end_run(self, run_id: str, status: str = "FINISHED", error: str | None = None) -> None:
        """Terminate a run as FINISHED, FAILED or KILLED; a FAILED one keeps its error as a tag and a file."""
        if error:
            self.set_tags(run_id, {"error": error[-MAX_TAG_LENGTH:]})
            self.client.log_text(run_id, error, "error.txt")
        self.client.set_terminated(run_id, status=status)

    def close_running_children(self, status: str = "KILLED") -> int:
        """Mark this sweep's child runs still RUNNING (killed processes) as ``status``; returns how many."""
        runs = self._trial_runs("attributes.status = 'RUNNING'")
        for run in runs:
            self.client.set_terminated(run.info.run_id, status=status)
        return len(runs)

    def trial_runs(self) -> pd.DataFrame:
        """This sweep's child runs as MLflow's search DataFrame."""
        return mlflow.search_runs([self.experiment_id], filter_string=f"tags.{SWEEP_ID_TAG} = '{self.sweep_id}' "
                                  f"AND tags.{ROLE_TAG} = 'trial'", max_results=100_000)

    # -- parent run -------------------------------------------------------------------------------
    def log_table(self, table: pd.DataFrame, name: str, run_id: str | None = None,
                  shown: pd.DataFrame | None = None) -> None:
        """Log a table as MLflow's table artifact ``<name>.json`` (the UI's table viewer; ``shown``
        instead when given, e.g. rounded for reading) and as ``<name>.csv`` (``table``, full precision)."""
        run_id = run_id or self.parent_run_id
        self.client.log_table(run_id, data=table if shown is None else shown, artifact_file=f"{name}.json")
        self.client.log_text(run_id, table.to_csv(index=False), f"{name}.csv")


def figure_link(run_id: str, artifact_file: str, caption: str) -> str:
    """Markdown showing an image artifact of a run in its description: a link relative to the
    tracking server's root (its ``get-artifact`` route), so it loads from whatever host serves the UI."""
    query = urlencode({"path": artifact_file, "run_uuid": run_id})
    return f"![{caption}](get-artifact?{query})"


@contextmanager
def sweep_run(sweep_id: str, experiment: str, params: Mapping[str, Any], tags: Mapping[str, Any],
              tracking_uri: str | None = None, run_name: str | None = None) -> Iterator[SweepTracker]:
    """Open (or, for a resumed sweep, reopen) the parent run of ``sweep_id`` (named ``run_name``,
    default the sweep id) and close it in ``finally``.

    On exit, child runs still RUNNING are marked KILLED, and the parent ends FINISHED, or FAILED
    when the body raised (KILLED on Ctrl-C or an exit).

    Raises:
        TrackingError: the store is unreachable (before any training starts).
    """
    client = connect(tracking_uri)
    experiment_id = ensure_experiment(client, experiment)
    existing = client.search_runs([experiment_id], filter_string=f"tags.{SWEEP_ID_TAG} = '{sweep_id}' "
                                  f"AND tags.{ROLE_TAG} != 'trial'", max_results=1)
    if existing:
        parent_id = existing[0].info.run_id
        client.update_run(parent_id, status="RUNNING")
    else:
        parent = client.create_run(experiment_id, run_name=run_name or sweep_id,
                                   tags={SWEEP_ID_TAG: sweep_id, ROLE_TAG: "sweep",
                                         **{k: _text(v, MAX_TAG_LENGTH) for k, v in tags.items()}})
        parent_id = parent.info.run_id
    tracker = SweepTracker(client, experiment_id, parent_id, sweep_id)
    if not existing:
        tracker.log_params(parent_id, params)
    status = RunStatus.to_string(RunStatus.FAILED)
    try:
        yield tracker
        status = "FINISHED"
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM turned into an exit
        status = "KILLED"
        raise
    finally:
        try:
            tracker.close_running_children()
        finally:
            client.set_terminated(parent_id, status=status)
