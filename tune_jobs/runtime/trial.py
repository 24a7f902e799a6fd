"""What the runtime needs of a trainable (a ``Trial`` record), and what a trial body gets (a ``TrialContext``).

A trial body ``body(config, context)`` trains one replicate of the trial config (``trial_config``) and
reports through ``context``: the same body runs as a Tune trial (``tune_context``) or as one Ray Train
worker of a data-parallel trial (``runtime.ray_train``). Each trainable is one ``Trial`` record in
``tune_jobs/trials/``: its body, how a finished trial is measured for the trial table, and its
verdict rule; the runtime imports no trial.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import pandas as pd
import torch
from ray import tune

from tune_jobs.runtime.trial_config import config_id, run_settings, seed_of


@dataclass(frozen=True)
class TrialContext:
    """The reporting API a trial body runs under: a Tune trial's, or one Ray Train worker's."""

    report_to: Callable[..., None]
    """``tune.report`` or ``ray.train.report``: ``report_to(metrics, checkpoint=...)``."""
    get_checkpoint: Callable[[], Any]
    """The latest checkpoint of this trial (after a retry or a restore), or None."""
    checkpoint_type: Any
    """``tune.Checkpoint`` or ``ray.train.Checkpoint``."""
    rank: int = 0
    """Data-parallel rank of this process (0 for a plain trial)."""
    world: int = 1
    """Data-parallel world size."""
    prepare: Optional[Callable[[torch.nn.Module], torch.nn.Module]] = None
    """Wraps the model for data-parallel training (``ray.train.torch.prepare_model``)."""

    @property
    def shard(self) -> tuple[int, int]:
        """(rank, world size), as the trainables' ``shard`` argument takes it."""
        return self.rank, self.world

    def report(self, result: dict[str, Any], folder: Optional[Path]) -> None:
        """Report ``result``, with ``folder`` as a checkpoint when there is one and this is rank 0
        (every data-parallel rank holds the same state: one copy is enough)."""
        handed = folder is not None and self.rank == 0
        self.report_to(result, checkpoint=self.checkpoint_type.from_directory(str(folder)) if handed else None)

    def restore_latest(self, out_dir: str | Path, file_name: str) -> Optional[float]:
        """Copy the latest checkpoint into ``out_dir``; returns the 0-based step its ``file_name``
        was written at, or None when there is none (a first attempt)."""
        checkpoint = self.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            shutil.copytree(folder, out_dir, dirs_exist_ok=True)
        return float(torch.load(Path(out_dir) / file_name, weights_only=True)["step"])


def short_number(value: Any) -> str:
    """A value as it reads in a configuration's name: 3 significant digits for a float (0.015,
    0.00619, 1e-05), an int or a string as it is."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def tune_context() -> TrialContext:
    """The context of a plain Tune trial (one process)."""
    return TrialContext(tune.report, tune.get_checkpoint, tune.Checkpoint)


def checkpoint_interval(config: dict[str, Any], eval_interval: int) -> int:
    """The trial's checkpoint cadence in steps: the run setting ``checkpoint_interval`` rounded up to
    a multiple of ``eval_interval`` (checkpoints are taken at evaluations); absent = every
    evaluation, 0 = only at the end."""
    interval = run_settings(config).get("checkpoint_interval")
    if interval is None:
        return eval_interval
    return -(-int(interval) // eval_interval) * eval_interval


@dataclass(frozen=True)
class Trial:
    """One trainable as the runtime runs and judges it (one record per file of ``tune_jobs/trials/``)."""

    name: str
    """Short name: Tune's trainable name, the job tags."""
    body: Callable[[dict[str, Any], TrialContext], None]
    """Trains one replicate of a trial config, reporting through the context."""
    measure: Callable[[Any], dict[str, Any]]
    """Trial-table columns of one Tune ``Result`` beyond the common ones; must include ``finished``."""
    verdict_table: Callable[[pd.DataFrame, Any], pd.DataFrame]
    """(trial table, the job's settings) -> one verdict row per configuration, best first."""
    summary_line: Callable[[pd.Series], str]
    """A verdict row in one line (the parent run's ``verdict.<name>`` and ``best_verdict`` tags)."""
    child_tags: Callable[[pd.Series, Any], dict[str, str]]
    """(verdict row, trial-table row) -> tags of that trial's run."""
    best_config: Callable[[pd.DataFrame], str]
    """The verdict table's best configuration's id (the parent run's ``best_config`` shows its name)."""
    data_parallel: bool = False
    """Whether the body trains on its shard of a global batch (``context.shard``/``prepare``)."""
    stacked: bool = False
    """Whether the body trains a trial config's several ``seeds`` at once (``runtime.replicates``)."""
    failure_score: float = 0.0
    """Objective a crashed replicate scores (below any real one)."""
    success_rate: bool = True
    """Whether each report carries ``success`` (the seed's 0/1 outcome) and the trial table
    ``best_exact_match``: what sequential seeds (a ``min..max`` range) decide on."""
    columns: tuple[str, ...] = ()
    """Verdict-table columns printed beside the verdict."""
    log_outputs: Optional[Callable[[Any, Any, dict[str, str]], None]] = None
    """(tracker, Tune ResultGrid, trial id -> run id): extra outputs logged after the fit."""
    readable_name: Callable[[dict[str, Any]], str] = config_id
    """A configuration's name from a trial config, e.g. 'd8-ff28-lr0.015': the first column of the
    tables, the figures' labels, and with ' s<seed>' its child runs' names (default: the config id)."""
    curve: str = "val/exact_match"
    """Reported metric drawn against step, every seed, in the learning-curve figure."""
    summary_metrics: tuple[str, ...] = ()
    """Verdict-table columns logged as metrics per configuration on each of its trials' runs, as
    ``config/<column>`` (sortable in the runs table; the parent run has them in ``verdict.json``)."""
    summary_columns: tuple[str, ...] = ()
    """Verdict-table columns of the Markdown table in the parent run's description."""
    figures: Optional[Callable[[pd.DataFrame, pd.DataFrame, pd.DataFrame, Any], dict[str, Any]]] = None
    """(verdict table, trial table, curves (``runtime.results.curve_table``), the job's settings) ->
    {file name: matplotlib Figure}, logged on the parent run."""

    def run_name(self, config: dict[str, Any]) -> str:
        """A trial's MLflow run name: ``<readable name> s<seed>``, e.g. 'd8-ff28-lr0.015 s0'."""
        return f"{self.readable_name(config)} s{seed_of(config)}"

    def with_columns(self, extra: tuple[str, ...]) -> "Trial":
        """The same trial printing ``extra`` verdict columns too (a job's searched fields)."""
        return dataclasses.replace(self, columns=(*self.columns, *extra))

    def tune_function(self) -> Callable[[dict[str, Any]], None]:
        """The body as a Tune function trainable."""
        body = self.body

        def trial(config: dict[str, Any]) -> None:
            body(config, tune_context())

        trial.__name__ = trial.__qualname__ = f"{self.name}_trial"
        return trial
