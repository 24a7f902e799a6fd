"""Training-health diagnostics shared by the trainables: effective rank, gate health, jumps.

Pure torch, no Ray or MLflow: each function takes a model or tensors and returns a flat dict of
floats under ``diag/`` (or a value), so a training loop can merge it into what it reports at an
evaluation. What each number means:

- **effective rank** (Roy & Vetterli 2007, "The effective rank: a measure of effective
  dimensionality", EUSIPCO): ``exp(H(p))`` with ``p_i = s_i / sum_j s_j`` over the singular values
  ``s`` of a matrix. It is 1 for a rank-1 matrix and ``r`` for a matrix with ``r`` equal nonzero
  singular values; a collapsing weight or hidden state shows as a falling effective rank.
- **gate health**: for every ``nn.Sigmoid`` and ``nn.Tanh`` module (the gates of gated units are
  built from these modules so that they can be found), the mean and std of its output, the share of
  *dead* outputs (sigmoid < ``dead``; |tanh| < ``dead``: the gate passes nothing), the share of
  *saturated* outputs (sigmoid > 1 - ``dead``; |tanh| > 1 - ``dead``: no gradient flows), and the
  mean |input|. A gated memory whose tanh inputs sit around 0.017 reads as mostly dead here while
  the loss looks healthy.
- **jump step** (grokking onset): the first evaluation at which a validation metric improved by at
  least half its range in one interval, after a plateau of improvements a third that size or less
  (the fall from initialization does not count); ``jump_step`` states the rule exactly.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Sequence

import torch
from torch import nn

DEAD = 0.05
"""Default dead/saturation margin of a gate output (see module doc)."""


def effective_rank(matrix: torch.Tensor) -> float:
    """Effective rank exp(H(s / sum s)) of a 2-D tensor (Roy & Vetterli 2007).

    Args:
        matrix: (m, n) real tensor; computed in float64 on the CPU.

    Returns:
        A value in [1, min(m, n)]; 0.0 for an all-zero matrix.

    Raises:
        ValueError: ``matrix`` is not 2-D, or holds a NaN or an infinity.
    """
    if matrix.dim() != 2:
        raise ValueError(f"effective_rank needs a 2-D matrix, got shape {tuple(matrix.shape)}")
    values = matrix.detach().to("cpu", torch.float64)
    if not torch.isfinite(values).all():
        raise ValueError("effective_rank: matrix holds NaN or infinite entries")
    singular = torch.linalg.svdvals(values)
    total = singular.sum()
    if total <= 0:
        return 0.0
    p = singular / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def weight_ranks(model: nn.Module) -> dict[str, float]:
    """``diag/erank/<parameter name>`` for every 2-D parameter of ``model`` (tied ones once)."""
    seen: set[int] = set()
    ranks = {}
    for name, parameter in model.named_parameters():
        if parameter.dim() == 2 and id(parameter) not in seen:
            seen.add(id(parameter))
            ranks[f"diag/erank/{name}"] = effective_rank(parameter)
    return ranks


@contextmanager
def _captured(modules: dict[str, nn.Module], want: str) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hooks storing each module's first input (``want='input'``) or output, detached."""
    store: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Callable:
        def save(_module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            tensor = inputs[0] if want == "input" else output
            store[name] = tensor.detach()
        return save

    handles = [module.register_forward_hook(hook(name)) for name, module in modules.items()]
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


def hidden_state_ranks(model: nn.Module, layers: dict[str, nn.Module], run: Callable[[], object],
                       max_rows: int = 2048) -> dict[str, float]:
    """``diag/erank/hidden/<layer>``: effective rank of each layer's output over a forward pass.

    Args:
        model: put in eval mode for the pass, then restored.
        layers: name -> module whose output (batch, time, width) is a hidden state.
        run: performs one forward pass of ``model`` (e.g. on a validation batch).
        max_rows: the first this many (batch x time) rows are used, bounding the SVD's cost.
    """
    with _eval_mode(model), torch.no_grad(), _captured(layers, "output") as store:
        run()
    return {f"diag/erank/hidden/{name}": effective_rank(h.reshape(-1, h.shape[-1])[:max_rows])
            for name, h in store.items()}


def gate_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The ``nn.Sigmoid`` and ``nn.Tanh`` modules of ``model`` by name (its gates)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (nn.Sigmoid, nn.Tanh))}


def gate_stats(pre_activation: torch.Tensor, kind: str, dead: float = DEAD) -> dict[str, float]:
    """Health of one gate from its inputs: mean, std, dead, saturated, input_abs_mean.

    Args:
        pre_activation: inputs of the gate, any shape.
        kind: 'sigmoid' or 'tanh'.
        dead: margin of a dead or saturated output (see module doc).

    Raises:
        ValueError: an unknown ``kind``.
    """
    x = pre_activation.detach().float()
    if kind == "sigmoid":
        out = torch.sigmoid(x)
        dead_share, saturated = (out < dead).float().mean(), (out > 1 - dead).float().mean()
    elif kind == "tanh":
        out = torch.tanh(x)
        dead_share, saturated = (out.abs() < dead).float().mean(), (out.abs() > 1 - dead).float().mean()
    else:
        raise ValueError(f"kind must be 'sigmoid' or 'tanh', got {kind!r}")
    return {"mean": float(out.mean()), "std": float(out.std()) if out.numel() > 1 else 0.0,
            "dead": float(dead_share), "saturated": float(saturated), "input_abs_mean": float(x.abs().mean())}


def gate_health(model: nn.Module, run: Callable[[], object], dead: float = DEAD) -> dict[str, float]:
    """``diag/gate/<module>/<stat>`` of every sigmoid/tanh gate of ``model`` over one forward pass."""
    gates = gate_modules(model)
    if not gates:
        return {}
    with _eval_mode(model), torch.no_grad(), _captured(gates, "input") as store:
        run()
    metrics = {}
    for name, x in store.items():
        kind = "sigmoid" if isinstance(gates[name], nn.Sigmoid) else "tanh"
        metrics.update({f"diag/gate/{name}/{k}": v for k, v in gate_stats(x, kind, dead).items()})
    return metrics


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def jump_step(steps: Sequence[int], values: Sequence[float], higher_is_better: bool = True,
              min_share: float = 0.5, ratio: float = 3.0) -> Optional[int]:
    """Evaluation step at which a validation metric jumped after a plateau (grokking onset), or None.

    Evaluation 0 is the initial one; the fall from initialization is never a jump (every learning
    curve has it). Evaluation i >= 3 is the jump when its improvement over evaluation i - 1 is at
    least ``min_share`` of the metric's range over evaluations 1..n and more than ``ratio`` times
    every improvement between evaluations 1..i-1 (the plateau before it). The first such i counts.

    Args:
        steps: evaluation steps, increasing, the first being the initial evaluation.
        values: the metric at those steps (NaNs are skipped).
        higher_is_better: False for losses and bits per byte.
        min_share: in (0, 1].
        ratio: how much larger than the plateau's improvements the jump must be.
    """
    pairs = [(s, v if higher_is_better else -v) for s, v in zip(steps, values) if v is not None and not math.isnan(v)]
    if len(pairs) < 4:
        return None
    later = [v for _, v in pairs[1:]]
    span = max(later) - min(later)
    if span <= 0:
        return None
    gains = [pairs[i][1] - pairs[i - 1][1] for i in range(len(pairs))]  # gains[0] is unused
    for i in range(3, len(pairs)):
        plateau = max(gains[2:i])
        if gains[i] >= min_share * span and gains[i] > ratio * max(plateau, 0.0):
            return int(pairs[i][0])
    return None
