"""How a trial body (``run_addition``, ``run_lm``) meets Tune's or Ray Train's checkpoints: its
checkpoint cadence, resuming from the latest checkpoint, and handing checkpoints over from rank 0."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Optional

import torch


def checkpoint_interval(config: dict[str, Any], eval_interval: int) -> int:
    """The trial config's ``checkpoint_interval``: None (absent) = every evaluation, 0 = only at the
    end, else rounded up to a multiple of ``eval_interval`` (checkpoints are taken at evaluations)."""
    interval = config.get("checkpoint_interval")
    if interval is None:
        return eval_interval
    return -(-int(interval) // eval_interval) * eval_interval


def restore_latest(get_checkpoint: Optional[Callable[[], Any]], out_dir: str | Path, file_name: str) -> float | None:
    """Copy the latest checkpoint (``get_checkpoint()``: Tune's or Ray Train's) into ``out_dir``;
    returns the 0-based step its ``file_name`` was written at, or None when there is none."""
    checkpoint = get_checkpoint() if get_checkpoint is not None else None
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        shutil.copytree(folder, out_dir, dirs_exist_ok=True)
    return float(torch.load(Path(out_dir) / file_name, weights_only=True)["step"])


def hand_over(report_to: Callable[..., None], checkpoint_type: Any, rank: int,
              result: dict[str, Any], folder: Path | None) -> None:
    """Report ``result``, with ``folder`` as a checkpoint when there is one and this is rank 0 (every
    data-parallel rank holds the same state: one copy is enough)."""
    handed = folder is not None and rank == 0
    report_to(result, checkpoint=checkpoint_type.from_directory(str(folder)) if handed else None)
