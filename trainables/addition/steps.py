"""The training step of each mode, behind one callable (no Ray, no MLflow).

``faithful`` runs the reference's step (``shared/reference/addition.md`` section 4: sample batch;
set lr; zero grads; forward; backward; clip; optimizer step) on the full sequence with PyTorch's
default per-tensor AdamW and clipping, exactly as the record. ``fast`` runs the same recipe on
``scored_loss`` (the last block at the 12 scored positions only) with the multi-tensor (foreach)
AdamW and clipping; with ``compile`` in one process the whole step is one compiled function
(``CompiledStep``).
"""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch.profiler import record_function

from trainables.addition.config import TrainConfig
from trainables.addition.data import TrainingStream, encode, inputs_and_targets
from trainables.addition.compiled_step import CompiledStep
from trainables.addition.losses import full_loss, scored_loss
from trainables.loop import global_loss, shard_rows
from trainables.optim import adamw, clip_gradients, set_lr


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW on one group (reference section 4); the multi-tensor (foreach) kernels in fast mode, the
    default per-tensor loop in faithful mode."""
    return adamw(model.parameters(), cfg, foreach=True if cfg.mode == "fast" else None)


class StepRunner:
    """The training step a run uses: ``runner(step)`` samples the batch of 0-based ``step`` and
    trains on it, returning the batch's loss as a 0-dim tensor (float32 on the device; the
    all-reduced float64 global loss under data parallelism), with no host sync in one process.

    Fast mode with ``compile`` in one process (no ``prepare`` wrapper): ``CompiledStep``, the whole
    step compiled (``eager_update`` if compiling fails). Otherwise ``eager_update`` on the model
    that ``prepare`` returns, whose forward pass ``compile`` wraps in ``torch.compile``.
    ``compile_seconds`` is the compile time once the first step ran (the first step's duration for
    a compiled forward pass), None without compile.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, stream: TrainingStream,
                 cfg: TrainConfig, shard: tuple[int, int] = (0, 1),
                 prepare: Callable[[torch.nn.Module], torch.nn.Module] | None = None) -> None:
        self.forward = prepare(model) if prepare is not None else model
        self.optimizer, self.stream, self.cfg, self.shard = optimizer, stream, cfg, shard
        self.compiled: CompiledStep | None = None
        self.compile_seconds: float | None = None
        if cfg.mode == "fast" and cfg.compile and self.forward is model and shard[1] == 1:
            self.compiled = CompiledStep(model, optimizer, cfg.grad_clip, eager=self._eager)
        elif cfg.compile:
            self.forward = torch.compile(self.forward)

    @property
    def kind(self) -> str:
        """'compiled step', 'compiled forward' or 'eager': what trains (recorded in checkpoints)."""
        if self.compiled is not None:
            return "compiled step" if self.compiled.compiled else "eager"
        return "compiled forward" if self.cfg.compile else "eager"

    def __call__(self, step: int) -> torch.Tensor:
        a, b = self.stream.sample(self.cfg.batch_size, *self.cfg.digits_at(step))
        return self.update(a, b, step)

    def update(self, a: torch.Tensor, b: torch.Tensor, step: int) -> torch.Tensor:
        """Train on the global batch of operands ``a``, ``b`` (N,) at 0-based ``step``; returns its loss."""
        if self.compiled is not None:
            loss = self.compiled(a.to(self.cfg.device), b.to(self.cfg.device), self.cfg.lr_at(step))
            self.compile_seconds = self.compiled.compile_seconds
            return loss
        began = time.perf_counter()
        loss = self._eager(a, b, self.cfg.lr_at(step))
        if self.cfg.compile and self.compile_seconds is None:
            self.compile_seconds = time.perf_counter() - began
        return loss

    def _eager(self, a: torch.Tensor, b: torch.Tensor, lr: float) -> torch.Tensor:
        return eager_update(self.forward, self.optimizer, self.cfg, a, b, lr, self.shard)


def eager_update(forward: Callable[..., torch.Tensor], optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                 a: torch.Tensor, b: torch.Tensor, lr: float, shard: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """One eager optimizer step on operands ``a``, ``b`` (N,) in the reference's order (set lr; zero
    grads; forward; backward; clip; optimizer step); returns the (global) batch's loss as a 0-dim
    tensor. With ``shard`` = (rank, world), this rank trains on its slice of the global batch. Fast
    mode scores the answer positions only (``scored_loss``) and clips with the foreach kernels. The
    phases are labelled for ``torch.profiler`` (forward, backward, optimizer)."""
    x, y = shard_rows(*inputs_and_targets(encode(a, b)), shard)
    x, y = x.to(cfg.device), y.to(cfg.device)
    set_lr(optimizer, lr)
    optimizer.zero_grad(set_to_none=True)
    with record_function("forward"):
        loss = (scored_loss if cfg.mode == "fast" else full_loss)(forward, x, y)
    with record_function("backward"):
        loss.backward()
    with record_function("optimizer"):
        params = [p for g in optimizer.param_groups for p in g["params"]]
        clip_gradients(params, cfg.grad_clip, foreach=True if cfg.mode == "fast" else None)
        optimizer.step()
    if shard[1] == 1:
        return loss.detach()
    return torch.tensor(global_loss(loss, shard[1]), dtype=torch.float64)  # same answer positions in every row
