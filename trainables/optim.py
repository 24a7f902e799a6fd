"""The optimizer pieces every training loop here shares: AdamW's construction, the learning-rate
schedules and gradient clipping.

One place for what the single-seed, stacked and language-model loops would otherwise each spell:
AdamW built from a recipe's fields (``lr``, ``weight_decay`` and the class constants ``adam_betas``,
``adam_eps`` of its ``TrainConfig``), the schedules behind each ``TrainConfig.lr_at``, and the clip
rule of ``torch.nn.utils.clip_grad_norm_`` (coefficient max_norm / (total norm + 1e-6), at most 1).
No Ray, no MLflow.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Protocol

import torch

CLIP_EPS = 1e-6
"""``torch.nn.utils.clip_grad_norm_``'s: the coefficient is max_norm / (norm + 1e-6), clamped at 1."""


class AdamRecipe(Protocol):
    """The fields of a ``TrainConfig`` that AdamW reads."""

    lr: float
    weight_decay: float
    adam_betas: tuple[float, float]
    adam_eps: float


def adamw(params: Iterable[Any], recipe: AdamRecipe, **kernel: Any) -> torch.optim.AdamW:
    """``torch.optim.AdamW`` over ``params`` (tensors or parameter groups) with the recipe's lr,
    weight decay, betas and eps (Loshchilov & Hutter 2019, as implemented by PyTorch).

    ``kernel`` passes PyTorch's implementation switches (``foreach``, ``capturable``) and an ``lr``
    that overrides the recipe's (a device tensor, for a CUDA-graph step).
    """
    options = {"lr": recipe.lr, **kernel}
    return torch.optim.AdamW(params, betas=recipe.adam_betas, eps=recipe.adam_eps,
                             weight_decay=recipe.weight_decay, **options)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate to ``lr`` (a step's value from ``lr_at``), before
    the step's forward pass as the reference orders it (``shared/reference/addition.md`` section 4)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def warmup_lr(step: int, lr: float, warmup_steps: int) -> float:
    """Linear warmup: ``lr * (step + 1) / warmup_steps`` at 0-based ``step`` < ``warmup_steps``."""
    return lr * (step + 1) / warmup_steps


def reference_cosine_lr(step: int, lr: float, warmup_steps: int, train_steps: int, min_lr_ratio: float) -> float:
    """The addition record's schedule (``shared/reference/addition.md`` section 4) at 0-based ``step``:
    linear warmup, then cosine from ``lr`` to ``min_lr_ratio * lr`` over steps ``warmup_steps ..
    train_steps`` (reached at ``train_steps``, held after), in the reference's arithmetic."""
    if step < warmup_steps:
        return warmup_lr(step, lr, warmup_steps)
    if step >= train_steps:
        return lr * min_lr_ratio
    progress = (step - warmup_steps) / max(1, train_steps - warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    min_lr = lr * min_lr_ratio
    return min_lr + (lr - min_lr) * cosine


def warmup_decay_lr(step: int, lr: float, warmup_steps: int, train_steps: int, min_lr_ratio: float,
                    shape: str) -> float:
    """The language-model schedule at 0-based ``step``: linear warmup, then ``shape`` ('cosine',
    'linear' or 'constant') from ``lr`` down to ``min_lr_ratio * lr`` at the last step
    (``train_steps - 1``; 'constant': ``lr`` throughout)."""
    if step < warmup_steps:
        return warmup_lr(step, lr, warmup_steps)
    if shape == "constant":
        return lr
    progress = min(1.0, (step - warmup_steps) / max(1, train_steps - 1 - warmup_steps))
    factor = 0.5 * (1 + math.cos(math.pi * progress)) if shape == "cosine" else 1 - progress
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * factor)


def clip_coefficient(norm: torch.Tensor, max_norm: float) -> torch.Tensor:
    """The factor ``clip_grad_norm_`` scales gradients by: ``max_norm / (norm + 1e-6)``, at most 1.

    ``norm``: a 0-dim total norm, or (K,) per-seed norms (one coefficient each).
    """
    return (max_norm / (norm + CLIP_EPS)).clamp(max=1.0)


def clip_gradients(params: Iterable[torch.Tensor], max_norm: float, foreach: bool | None = None) -> None:
    """Scale the gradients of ``params`` in place to a global norm of at most ``max_norm`` (0: no
    clipping) with ``torch.nn.utils.clip_grad_norm_`` (``foreach``: its multi-tensor kernels)."""
    if max_norm > 0:
        torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=foreach)
