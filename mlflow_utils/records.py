"""Runs read back for a rerun or a comparison (by id, or by tags), and the standalone runs those write.

``runs.py`` writes a sweep while it runs; this module reads any store afterwards: one run with its
params, tags and metric histories (``read_run``, ``metric_history``), a set of trial runs selected by
tags (``find_trial_runs``), and writes a finished run in one go (``log_finished_run``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

from mlflow_utils.runs import BATCH_LIMIT, MAX_TAG_LENGTH, ROLE_TAG, SweepTracker, _metric_value, _text
from mlflow_utils.tracking import TrackingError, connect, default_artifact_location, ensure_experiment

RERUN_OF_TAG = "rerun_of"
"""Tag of a rerun's run: the id of the run it re-ran."""


@dataclass(frozen=True)
class RunRecord:
    """One MLflow run as logged: its ids, name, status, params, tags and latest metric values."""

    run_id: str
    experiment_id: str
    name: str
    status: str
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]


def _record(run: Any) -> RunRecord:
    return RunRecord(run.info.run_id, run.info.experiment_id, run.info.run_name or "", run.info.status,
                     dict(run.data.params), dict(run.data.tags), dict(run.data.metrics))


def read_run(client: MlflowClient, run_id: str) -> RunRecord:
    """The run ``run_id`` of the store ``client`` reads.

    Raises:
        TrackingError: the store has no such run; names the id and the store.
    """
    try:
        return _record(client.get_run(run_id))
    except MlflowException as error:
        raise TrackingError(f"run {run_id!r} not found in {client.tracking_uri}: {error.message}") from error


def metric_history(client: MlflowClient, run_id: str, keys: Iterable[str]) -> pd.DataFrame:
    """Every logged value of each of ``keys``: columns ``key``, ``step``, ``value`` (sorted by key, step)."""
    rows = [(key, m.step, m.value) for key in keys for m in client.get_metric_history(run_id, key)]
    return pd.DataFrame(rows, columns=["key", "step", "value"]).sort_values(["key", "step"], ignore_index=True)


def find_trial_runs(client: MlflowClient, tags: Mapping[str, str]) -> list[RunRecord]:
    """The trial runs (tag ``role`` = trial) of every experiment of the store whose tags equal ``tags``.

    Raises:
        ValueError: a tag name or value holds a quote (it cannot go into MLflow's filter).
    """
    conditions = [f"tags.{ROLE_TAG} = 'trial'"]
    for key, value in tags.items():
        if "'" in key or "'" in value or "`" in key:
            raise ValueError(f"tag selector {key}={value!r} must not hold quotes")
        conditions.append(f"tags.`{key}` = '{value}'")
    experiments = [e.experiment_id for e in client.search_experiments(max_results=1000)]
    runs = client.search_runs(experiments, filter_string=" AND ".join(conditions), max_results=50_000)
    return [_record(run) for run in runs]


def log_finished_run(client: MlflowClient, experiment: str, run_name: str, params: Mapping[str, Any],
                     tags: Mapping[str, Any], steps: Sequence[tuple[int, Mapping[str, Any]]] = (),
                     tables: Mapping[str, pd.DataFrame] | None = None, figures: Mapping[str, Any] | None = None,
                     description: str = "", status: str = "FINISHED") -> str:
    """Create a run in ``experiment`` (an id or a name, made when new), log ``params``, ``tags``, the
    numeric metrics of each (step, metrics) of ``steps``, each table as ``<name>.json`` and ``.csv``,
    each matplotlib figure under ``figures/`` and the Markdown ``description``, and end it ``status``;
    returns its id."""
    experiment_id = experiment if _is_experiment_id(client, experiment) else ensure_experiment(
        client, experiment, default_artifact_location(client.tracking_uri, experiment))
    run = client.create_run(experiment_id, run_name=run_name,
                            tags={k: _text(v, MAX_TAG_LENGTH) for k, v in tags.items()})
    run_id = run.info.run_id
    tracker = SweepTracker(client, experiment_id, run_id, run_id)
    tracker.log_params(run_id, params)
    stamp = int(time.time() * 1000)
    items = [Metric(k, number, stamp, int(step)) for step, metrics in steps for k, v in metrics.items()
             if (number := _metric_value(v)) is not None]
    for start in range(0, len(items), BATCH_LIMIT):
        client.log_batch(run_id, metrics=items[start:start + BATCH_LIMIT])
    for name, table in (tables or {}).items():
        tracker.log_table(table, name, run_id)
    for name, figure in (figures or {}).items():
        tracker.log_figure(figure, f"figures/{name}", run_id)
    if description:
        client.set_tag(run_id, MLFLOW_RUN_NOTE, _text(description, MAX_TAG_LENGTH))
    client.set_terminated(run_id, status=status)
    return run_id


def _is_experiment_id(client: MlflowClient, experiment: str) -> bool:
    if not experiment.isdigit():
        return False
    try:
        client.get_experiment(experiment)
    except MlflowException:
        return False
    return True


def open_store(tracking_uri: str | Path | None) -> MlflowClient:
    """A client on a store (``connect``: checked before any work).

    Raises:
        TrackingError: the store cannot be reached; names the URI.
    """
    return connect(None if tracking_uri is None else str(tracking_uri))
