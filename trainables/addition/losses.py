"""The training losses of the addition task: cross-entropy over the whole sequence (faithful mode,
as the reference computes it) and over the 12 scored answer positions only (fast mode)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from trainables.addition.data import IGNORE_INDEX, PROMPT_LEN

SCORED_FROM = PROMPT_LEN - 1
"""21: the first position whose target is scored (it predicts the first sum digit)."""


def full_loss(forward: Callable[..., torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``forward(x)`` (N, 33, 14) over every position of ``y`` (N, 33) whose
    target is not ``IGNORE_INDEX`` (reference section 4: the prompt's targets are ignored)."""
    logits = forward(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE_INDEX)


def scored_loss(forward: Callable[..., torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the scored positions of inputs ``x`` and targets ``y`` (N, 33) each.

    ``forward(x, 21)`` must give the logits (N, 12, 14) at positions 21-32 (``AdditionTransformer``
    or a wrapper of it); targets before 21 are all ignored, so this equals the full-sequence loss.
    """
    logits = forward(x, SCORED_FROM)
    targets = y[:, SCORED_FROM:]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX)
