"""What every training loop here shares: the reporter type, its run-control arguments checked before
any work, and the data-parallel shard of a global batch (no Ray, no MLflow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import torch

Reporter = Callable[[dict[str, Any], Optional[Path]], None]
"""How every trainable reports: called at each evaluation with flat metrics (``step`` and namespaced
keys such as ``train/loss``, ``val/exact_match``) and, when a checkpoint was just written, its folder
(else None)."""


def check_run_control(checkpoint_interval: int, eval_interval: int, out_dir: str | Path | None, batch_size: int,
                      world: int) -> None:
    """Refuse impossible run-control arguments of a ``train`` function before any work.

    Raises:
        ValueError: ``checkpoint_interval`` is not a non-negative multiple of ``eval_interval``, or is
            set without ``out_dir``; ``batch_size`` does not split evenly over ``world`` workers.
    """
    if not isinstance(checkpoint_interval, int) or checkpoint_interval < 0 or checkpoint_interval % eval_interval:
        raise ValueError(f"checkpoint_interval must be a non-negative multiple of eval_interval "
                         f"({eval_interval}), got {checkpoint_interval!r}")
    if checkpoint_interval and out_dir is None:
        raise ValueError("checkpoint_interval is set but out_dir is None: checkpoints need a folder")
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} does not split evenly over {world} data-parallel workers")


def shard_rows(x: torch.Tensor, y: torch.Tensor, shard: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank ``shard[0]``'s equal slice of the global batch's rows (shape [batch, ...] each; world
    size ``shard[1]`` divides the batch)."""
    rank, world = shard
    if world == 1:
        return x, y
    rows = x.shape[0] // world
    return x[rank * rows:(rank + 1) * rows], y[rank * rows:(rank + 1) * rows]


def global_loss(loss: torch.Tensor, world: int) -> float:
    """The global batch's loss from this rank's shard loss: the mean over ranks (all-reduced), which is
    the global mean when every shard scores the same number of tokens."""
    if world == 1:
        return loss.item()
    loss = loss.detach().clone()
    torch.distributed.all_reduce(loss)
    return loss.item() / world
