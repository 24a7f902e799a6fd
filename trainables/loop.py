"""What every training loop here shares: the reporter type, its run-control arguments checked before
any work, the resume checks, and the data-parallel shard of a global batch (no Ray, no MLflow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Optional

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


def config_diff(saved: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Flat config keys whose saved and current values differ, sorted: key -> (saved, now); a key
    missing on one side reads None there."""
    return {k: (saved.get(k), now.get(k)) for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)}


def load_resumable(path: Path, now: Mapping[str, Any], saved_config: Callable[[dict[str, Any]], Mapping[str, Any]],
                   state_key: str = "resume", what: str = "configs") -> dict[str, Any]:
    """The checkpoint a run resumes from, refused unless it was written for the run's configs.

    Args:
        path: the checkpoint file.
        now: the run's configs as a flat dict.
        saved_config: the same flat dict read from the loaded checkpoint.
        state_key: the entry that holds the resume state.
        what: what the configs cover, for the message.

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        ValueError: it was written with other configs (the message names each difference as
            (saved, now)), or holds no ``state_key`` entry.
    """
    if not path.is_file():
        raise FileNotFoundError(f"resume_from: no checkpoint at {path}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    diff = config_diff(saved_config(payload), now)
    if diff:
        raise ValueError(f"resume_from: {path} was written with other {what} (saved, now): {diff}")
    if state_key not in payload:
        raise ValueError(f"resume_from: {path} holds no resume state (not written by train())")
    return payload


def resumed_at_end(resume_from: str | Path | None, resumed_at: int, end: int) -> bool:
    """True when a resumed run had nothing left to train (it resumed from its final checkpoint:
    ``resumed_at``, the first step it would train, is ``end``, one past its last): its final
    result is reported again, so that a restarted trial still reports once."""
    return resume_from is not None and resumed_at == end


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
