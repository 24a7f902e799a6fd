"""Replicates of a trial: a Tune trial trains its seed group (``trial_config.SEEDS``), one seed or K seeds
of one configuration stacked in one process (group size ``--seeds-per-trial K``); each seed is one
replicate, with its own MLflow run, its own trial-table row and its own verdict vote.

A replicate's config is its trial's config with the one seed as its group. With group size 1 the
replicate is the trial (key: the trial id, the report and checkpoint as they are). With K > 1 each
replicate's key is ``<trial id>-s<seed>``; each report holds
every running seed's metrics under ``seed<seed>/`` (e.g. ``seed43/val/exact_match``) beside the keys
they share (``step``, ``env/*``), and its checkpoint folder holds each seed's single-format checkpoint
in ``seed_<seed>/``. A seed whose report carries ``train/diverged_step`` failed alone: its training
diverged, the others went on.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import pandas as pd

from tune_jobs.runtime.trial_config import OBJECTIVE, SEEDS, TRIAL_ERROR, group_size, seed_of, seeds_of

DIVERGED = "train/diverged_step"
"""Metric of a replicate whose training diverged (value: the step); it ends FAILED, alone."""
_PREFIX = re.compile(r"seed(\d+)/")


def is_stacked(config: Mapping[str, Any]) -> bool:
    """Whether the configuration's trials train their seeds stacked (group size > 1)."""
    return group_size(config) > 1


def replicate_key(trial_id: str, config: Mapping[str, Any]) -> str:
    """A replicate's id from its config: the trial id, with ``-s<seed>`` for a seed of a stacked trial."""
    return f"{trial_id}-s{seed_of(config)}" if is_stacked(config) else trial_id


def replicate_config(config: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The trial config of one replicate: its one seed as the group."""
    return {**config, SEEDS: [int(seed)]}


def replicates(trial_id: str, config: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(replicate key, replicate config) of each seed a trial trains."""
    configs = [replicate_config(config, seed) for seed in seeds_of(config)]
    return [(replicate_key(trial_id, replicate), replicate) for replicate in configs]


def replicate_reports(trial_id: str, config: Mapping[str, Any], result: Mapping[str, Any]
                      ) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(replicate key, replicate config, that seed's metrics) of each seed in one report of a trial."""
    out = []
    for seed, metrics in split_result(result, config).items():
        replicate = replicate_config(config, seed)
        out.append((replicate_key(trial_id, replicate), replicate, metrics))
    return out


def split_result(result: Mapping[str, Any], config: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """seed -> that seed's metrics in one report (a stacked trial's ``seed<seed>/`` keys unprefixed, over
    the keys every seed shares); a seed missing from the report (it ended earlier) is left out."""
    if not is_stacked(config):
        return {seeds_of(config)[0]: dict(result)}
    shared = {k: v for k, v in result.items() if not _PREFIX.match(k) and k != OBJECTIVE}
    split: dict[int, dict[str, Any]] = {}
    for key, value in result.items():
        match = _PREFIX.match(key)
        if match:
            split.setdefault(int(match[1]), dict(shared))[key[match.end():]] = value
    return split


def final_metrics(config: Mapping[str, Any], last_result: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Each seed's metrics in a trial's last report, in the order of ``seeds_of(config)`` (empty for a
    seed the report lacks)."""
    split = split_result(last_result or {}, config)
    return [split.get(seed, {}) for seed in seeds_of(config)]


def replicate_folder(folder: str | Path, config: Mapping[str, Any]) -> Path:
    """Where a replicate's checkpoint files are inside its trial's checkpoint folder (from its config)."""
    return Path(folder) / f"seed_{seed_of(config)}" if is_stacked(config) else Path(folder)


def reported_error(metrics: Mapping[str, Any]) -> Optional[str]:
    """The error a replicate's last report carries (``TRIAL_ERROR``: a failure a retry would repeat), or
    that of a replicate whose training diverged; else None."""
    if metrics.get(TRIAL_ERROR):
        return str(metrics[TRIAL_ERROR])
    step = metrics.get(DIVERGED)
    return None if step is None else f"training diverged at step {int(step)} (non-finite loss or gradient); " \
                                     f"the other seeds of its trial went on"


class _SubCheckpoint:
    """A Tune checkpoint seen at one replicate's sub-folder."""

    def __init__(self, checkpoint: Any, seed: int) -> None:
        self.checkpoint, self.seed = checkpoint, seed

    @contextmanager
    def as_directory(self) -> Iterator[str]:
        with self.checkpoint.as_directory() as folder:
            yield str(Path(folder) / f"seed_{self.seed}")


@dataclass
class ReplicateResult:
    """One replicate of a Tune ``Result``, with the attributes trials read from a result."""

    key: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    metrics_dataframe: Optional[pd.DataFrame]
    error: Any
    path: str
    checkpoint: Any


def trial_id_of(result: Any) -> str:
    """A result's trial id: the one it reported, else its folder's name (``trial_dirname_creator``)."""
    return (result.metrics or {}).get("trial_id") or Path(result.path).name


def replicate_results(result: Any) -> list[ReplicateResult]:
    """A Tune Result as one ReplicateResult per seed it trained (the result itself for one seed); none
    for a trial Tune found nothing stored of (``config`` None: cut short before its first report)."""
    if result.config is None:
        return []
    trial_id = trial_id_of(result)
    if not is_stacked(result.config):
        metrics = dict(result.metrics or {})
        error = result.error if result.error is not None else reported_error(metrics)
        return [ReplicateResult(trial_id, dict(result.config), metrics, result.metrics_dataframe, error, result.path,
                                result.checkpoint)]
    latest: dict[int, dict[str, Any]] = {}
    history = result.metrics_dataframe
    rows = [] if history is None else [{k: v for k, v in row.items() if v == v} for row in history.to_dict("records")]
    for row in rows + [dict(result.metrics or {})]:
        for seed, metrics in split_result(row, result.config).items():
            latest[seed] = metrics
    out = []
    for seed in seeds_of(result.config):
        own = [split_result(row, result.config).get(seed) for row in rows]
        frame = pd.DataFrame([r for r in own if r is not None]) if rows else None
        metrics = latest.get(seed, {})
        error = result.error if result.error is not None else reported_error(metrics)
        checkpoint = None if result.checkpoint is None else _SubCheckpoint(result.checkpoint, seed)
        replicate = replicate_config(result.config, seed)
        out.append(ReplicateResult(replicate_key(trial_id, replicate), replicate, metrics, frame, error, result.path,
                                   checkpoint))
    return out
