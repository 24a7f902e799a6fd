"""Optuna's view of a sweep: its configurations as the trials of an Optuna study, for optuna-dashboard.

The study of job ``<name>`` is kept in one Optuna journal file beside the MLflow store
(``<store folder>/optuna/studies.log``; ``make optuna-dashboard`` serves it: history, parameter
importance), one Optuna trial per configuration with the searched fields as its params
(``section.field``, as MLflow's params name them) and as its value the configuration's
success rate where the trial has one (successes over finished seeds), else the mean objective over its
seeds (a crashed seed scoring the trial's ``failure_score``); the mean objective, with any tie-break,
is kept as the user attribute ``mean_objective``.

Ray's ``OptunaSearch`` takes a ``storage``, but a restored searcher (``Tuner.restore``) would then
share a journal that ran ahead of its own checkpoint, so a resumed sweep would no longer suggest what
an uninterrupted one does. The searcher keeps its in-memory study; the finished configurations are
written into the journal at the end of the sweep (a resumed sweep rewrites its study).
"""

from __future__ import annotations

import json
from datetime import datetime
import logging
import warnings
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from mlflow_utils import SweepTracker, resolve_tracking_uri
from search_spaces import Choice, IntRange, LogUniform, SearchSpace
from tune_jobs.runtime.settings import RunSettings, is_uri
from tune_jobs.runtime.trial_config import COLUMN_SEP

logger = logging.getLogger(__name__)

JOURNAL = Path("optuna") / "studies.log"
"""The journal file, relative to the folder of the MLflow store (or of Tune's storage)."""
USER_ATTRS = ("name", "config_id", "verdict", "seeds_run", "errored", "success_rate", "mean_best_exact_match",
              "bpb_mean", "bpb_spread")
"""Verdict-table columns kept as each Optuna trial's user attributes (those the table has)."""


def journal_path(settings: RunSettings) -> Path | None:
    """Where the studies are kept: beside an SQLite MLflow store, else in Tune's storage folder; None
    when neither is a local folder (a tracking server and a storage URI)."""
    uri = resolve_tracking_uri(settings.tracking_uri)
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).parent / JOURNAL
    if uri.startswith("file://"):
        return Path(uri[len("file://"):]).parent / JOURNAL
    return None if is_uri(settings.storage()) else Path(settings.storage()) / JOURNAL


def distribution(dimension: Any) -> BaseDistribution:
    """Optuna's distribution of a search-space dimension (a list choice as its JSON text, as the trial
    table holds it).

    Raises:
        TypeError: not a dimension.
    """
    if isinstance(dimension, Choice):
        return CategoricalDistribution([_plain(v) for v in dimension.values])
    if isinstance(dimension, IntRange):
        return IntDistribution(dimension.low, dimension.high, log=dimension.log)
    if isinstance(dimension, LogUniform):
        return FloatDistribution(dimension.low, dimension.high, log=True)
    raise TypeError(f"{dimension!r} is not a search-space dimension")


def _plain(value: Any) -> Any:
    """A JSON-safe Python value (numpy scalars unwrapped, lists as JSON text)."""
    if isinstance(value, (list, tuple)):
        return json.dumps(value)
    return value.item() if hasattr(value, "item") else value


def study_trials(space: SearchSpace, table: pd.DataFrame, trials: pd.DataFrame) -> list[optuna.trial.FrozenTrial]:
    """One finished Optuna trial per configuration of the verdict ``table``: the searched fields of its
    trials named as MLflow's params name them (``section.field``, from the trial table's ``section/field``
    columns), its success rate (else the mean ``objective`` of its seeds) as the value, ``USER_ATTRS``,
    and as its start and end the first seed's start and the last seed's end (the trial table's
    ``started``/``ended``, when it has them); in the order the configurations first ran."""
    distributions = {name: distribution(dim) for name, dim in space.dimensions().items()}
    verdicts = table.set_index("config_id")
    frozen = []
    for config_id, group in trials.groupby("config_id", sort=False):
        if config_id not in verdicts.index:
            continue
        first, verdict = group.iloc[0], verdicts.loc[config_id]
        attrs = {c: _plain(verdict[c]) for c in USER_ATTRS if c in verdict.index and pd.notna(verdict[c])}
        objective = float(group["objective"].mean())
        rate = verdict.get("success_rate")
        trial = optuna.trial.create_trial(
            params={name: _plain(first[name.replace(".", COLUMN_SEP)]) for name in distributions},
            distributions=distributions, value=objective if rate is None or pd.isna(rate) else float(rate),
            user_attrs={"config_id": str(config_id), "mean_objective": objective, **attrs})
        if {"started", "ended"} <= set(group) and group["started"].notna().any():
            trial.datetime_start = datetime.fromtimestamp(float(group["started"].min()))
            trial.datetime_complete = datetime.fromtimestamp(float(group["ended"].max()))
        frozen.append(trial)
    return frozen


def write_study(settings: RunSettings, space: SearchSpace, name: str, table: pd.DataFrame, trials: pd.DataFrame,
                tracker: SweepTracker) -> str | None:
    """(Re)write the study ``name`` from the sweep's tables (see the module doc); returns the journal's
    path, or None when there is no local folder for it or nothing was searched. A failure is logged
    as a warning and returns None: the study is a view, the verdicts are already in MLflow."""
    path = journal_path(settings)
    if path is None or table.empty or not space.dimensions():
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        storage = JournalStorage(JournalFileBackend(str(path)))
        if name in optuna.get_all_study_names(storage):
            optuna.delete_study(study_name=name, storage=storage)
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
        with warnings.catch_warnings():  # experimental since optuna 3.2, stable in use
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(["success_rate" if "success_rate" in table else "objective"])
        for key, value in {"space": space.name, "mlflow_experiment_id": tracker.experiment_id,
                           "mlflow_parent_run_id": tracker.parent_run_id,
                           "mlflow_tracking_uri": tracker.client.tracking_uri}.items():
            study.set_user_attr(key, value)
        study.add_trials(study_trials(space, table, trials))
    except (OSError, ValueError, TypeError, KeyError) as error:
        logger.warning("the Optuna study %s was not written to %s: %s", name, path, error)
        return None
    return str(path)
