"""Tune's results read back: one row per trial, the same common columns for every trainable."""

from __future__ import annotations

import json
import math
from typing import Any, Collection

import pandas as pd
from ray.tune import ResultGrid

from tune_jobs.runtime.replicates import replicate_results, trial_id_of
from tune_jobs.runtime.searcher import OBJECTIVE
from tune_jobs.runtime.trial import Trial
from tune_jobs.runtime.trial_config import COLUMN_SEP, config_id, flat_fields, replicate_of, seed_of


def error_line(result: Any, limit: int = 300) -> str | None:
    """The last line of a failed trial's error (what it died of), cut to ``limit`` characters."""
    if result.error is None:
        return None
    lines = str(result.error).strip().splitlines() or ["(no error text)"]
    return lines[-1][:limit]


def run_times(metrics: Any) -> dict[str, float]:
    """``started`` and ``ended`` (Unix seconds) of a trial from its last report: Tune's ``timestamp``
    (when it was made) less ``time_total_s`` (the trial's own time); NaN when the trial never reported."""
    metrics = metrics or {}
    ended, total = metrics.get("timestamp"), metrics.get("time_total_s")
    if ended is None or total is None:
        return {"started": math.nan, "ended": math.nan}
    return {"started": float(ended) - float(total), "ended": float(ended)}


def cell(value: Any) -> Any:
    """A table cell: a list or tuple as its JSON text (so JSON and CSV tables show the same value)."""
    return json.dumps(value) if isinstance(value, (list, tuple)) else value


def trial_table(grid: ResultGrid, trial: Trial, interrupted: Collection[str] = ()) -> pd.DataFrame:
    """One row per replicate (a seed; a stacked trial has several): ``name`` (``trial.readable_name``),
    ``trial_id`` (the replicate's key), ``config_id``, ``seed``, ``replicate``, ``error``, ``status``
    (finished, errored, or interrupted: cut short by a Ctrl-C, neither finished nor errored), ``objective``
    (the replicate's last reported one, ``trial.failure_score`` when it failed), ``started`` and ``ended``
    (``run_times``), every ``section/field``
    of its configuration (lists as JSON text; no dots, which MLflow's table viewer cannot show), and
    ``trial.measure``'s columns (``finished`` among them; False for an interrupted trial)."""
    rows = []
    for result in grid:
        cut_short = trial_id_of(result) in interrupted and result.error is None
        for replicate in replicate_results(result):
            config = replicate.config
            row = {"name": trial.readable_name(config), "trial_id": replicate.key, "config_id": config_id(config),
                   "seed": seed_of(config), "replicate": replicate_of(config), "error": error_line(replicate),
                   **trial.measure(replicate)}
            row["finished"] = bool(row["finished"]) and not cut_short and replicate.error is None
            row["status"] = "interrupted" if cut_short else "finished" if row["finished"] else "errored"
            row["objective"] = trial.failure_score if replicate.error is not None else \
                float(replicate.metrics.get(OBJECTIVE, trial.failure_score))
            row.update(run_times(replicate.metrics))
            rows.append({**row, **{k: cell(v) for k, v in flat_fields(config, COLUMN_SEP).items()}})
    return pd.DataFrame(rows)


CARRIED = "val/carried_forward"
"""Metric marking a report that carries a solved seed's last values to its schedule's end (``trials.addition``)."""
STOPPED_AT = "val/stopped_at_step"
"""Metric of a carried-forward report: the 0-based step its seed stopped at, solved (``trials.addition``)."""


def curve_table(grid: ResultGrid, trial: Trial) -> pd.DataFrame:
    """Every reported value of ``trial.curve`` (e.g. ``val/exact_match``), one row per replicate and step:
    ``name``, ``config_id``, ``seed``, ``trial_id``, ``step``, ``value``, ``carried`` (True for a value
    carried forward to the schedule's end after the seed stopped, solved) (empty when nothing was reported)."""
    frames = []
    for replicate in (replicate for result in grid for replicate in replicate_results(result)):
        history = replicate.metrics_dataframe
        if history is None or trial.curve not in history or "step" not in history:
            continue
        points = history[["step", trial.curve]].dropna().rename(columns={trial.curve: "value"})
        carried = history.loc[points.index, CARRIED] if CARRIED in history else None
        points = points.assign(carried=carried.notna() & (carried > 0) if carried is not None else False)
        config = replicate.config
        frames.append(points.assign(name=trial.readable_name(config), config_id=config_id(config),
                                    seed=seed_of(config), trial_id=replicate.key))
    columns = ["name", "config_id", "seed", "trial_id", "step", "value", "carried"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
