"""Fast mode's whole training step as one ``torch.compile``d function, with an eager fallback.

``CompiledStep`` makes one compiled function of a whole step (encoding the batch, the scored-
positions forward (``losses.scored_loss``), backward, gradient clipping and AdamW), reading the
learning rate from a tensor and leaving the loss on the device; the AdamW state lives in the
``torch.optim.AdamW`` object in its own format, so checkpoints and resumes do not depend on how the
step ran. If compiling fails (no C++ compiler, say) it warns and the eager step trains instead.
Inductor's cache folder: ``trainables.compile_cache``.
"""

from __future__ import annotations

import time
import types
import warnings
from typing import Any, Callable, Optional

import torch
from torch import nn
from torch.optim.adamw import adamw

from trainables.addition.data import encode, inputs_and_targets
from trainables.addition.losses import scored_loss
from trainables.compile_cache import use_project_compile_cache
from trainables.optim import clip_coefficient

COMPILE_BACKEND: str | Callable[..., Any] = "inductor"
"""The ``torch.compile`` backend of ``CompiledStep`` (a seam for tests that make compiling fail)."""
EagerStep = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
"""(a, b, lr) -> the batch's loss: the step a ``CompiledStep`` falls back to."""


def adamw_state(optimizer: torch.optim.AdamW) -> tuple[list[torch.Tensor], ...]:
    """The optimizer's (params, exp_avgs, exp_avg_sqs, steps) lists, creating missing state the way
    ``AdamW`` does on its first step (zero moments, a float32 step count of 0).

    Raises:
        ValueError: the optimizer has more than one parameter group, or uses amsgrad.
    """
    if len(optimizer.param_groups) != 1 or optimizer.param_groups[0]["amsgrad"]:
        raise ValueError("the compiled step supports one AdamW parameter group without amsgrad")
    params = list(optimizer.param_groups[0]["params"])
    for p in params:
        if not optimizer.state[p]:
            optimizer.state[p] = {"step": torch.tensor(0.0), "exp_avg": torch.zeros_like(p),
                                  "exp_avg_sq": torch.zeros_like(p)}
    states = [optimizer.state[p] for p in params]
    return params, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [s["step"] for s in states]


def _whole_step(model: nn.Module, state: tuple[list[torch.Tensor], ...], a: torch.Tensor, b: torch.Tensor,
                lr: torch.Tensor, hyper: tuple[float, float, float, float, float]) -> torch.Tensor:
    """Encode operands ``a``, ``b`` (N,), take one clipped AdamW step; returns the loss (detached).

    ``hyper`` is (grad_clip, weight_decay, beta1, beta2, eps); a grad_clip of 0 disables clipping,
    which otherwise follows ``clip_grad_norm_`` (``optim.clip_coefficient``).
    """
    params, exp_avgs, exp_avg_sqs, steps = state
    grad_clip, weight_decay, beta1, beta2, eps = hyper
    x, y = inputs_and_targets(encode(a, b))
    loss = scored_loss(model, x, y)
    grads = list(torch.autograd.grad(loss, params))
    with torch.no_grad():
        if grad_clip > 0:
            coef = clip_coefficient(torch.nn.utils.get_total_norm(grads), grad_clip)
            grads = [g * coef for g in grads]
        adamw(params, grads, exp_avgs, exp_avg_sqs, [], steps, foreach=False, amsgrad=False, beta1=beta1,
              beta2=beta2, lr=lr, weight_decay=weight_decay, eps=eps, maximize=False)
    return loss.detach()


def _fresh_function(function: types.FunctionType) -> types.FunctionType:
    """A copy of ``function`` with its own code object, so that Dynamo's per-code cache (and its
    recompile limit) belongs to one ``CompiledStep`` rather than to every model of the process."""
    return types.FunctionType(function.__code__.replace(), function.__globals__, function.__name__,
                              function.__defaults__, function.__closure__)


class CompiledStep:
    """Fast mode's whole training step as one compiled function, with an eager fallback.

    Args:
        model: the ``AdditionTransformer`` being trained (not wrapped).
        optimizer: its ``torch.optim.AdamW`` (one group); its state is updated in place.
        grad_clip: global-norm clip (0: none).
        eager: the step to run instead when compiling fails.

    Call it with operands ``a``, ``b`` (int64, (N,), on the model's device) and the step's learning
    rate; it returns the batch's loss as a 0-dim tensor on the device (no host sync). The first
    call compiles (``compile_seconds`` then holds its duration); if that raises, a warning names
    the error, ``fallback_error`` keeps it, and every call runs ``eager``.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.AdamW, grad_clip: float, eager: EagerStep) -> None:
        use_project_compile_cache()
        group = optimizer.param_groups[0]
        self._args = (model, adamw_state(optimizer))
        self._hyper = (float(grad_clip), float(group["weight_decay"]), *map(float, group["betas"]), float(group["eps"]))
        device = next(model.parameters()).device
        self._lr = torch.zeros((), dtype=torch.float64, device=device)
        self._compiled = torch.compile(_fresh_function(_whole_step), backend=COMPILE_BACKEND, fullgraph=True,
                                       dynamic=False)
        self._tracing = torch._dynamo.config.patch(trace_autograd_ops=True)  # autograd.grad inside the graph
        self._eager = eager
        self.compile_seconds: Optional[float] = None
        self.fallback_error: Optional[BaseException] = None

    @property
    def compiled(self) -> bool:
        """True while the compiled function trains (False after a fallback)."""
        return self.fallback_error is None

    def __call__(self, a: torch.Tensor, b: torch.Tensor, lr: float) -> torch.Tensor:
        if self.fallback_error is not None:
            return self._eager(a, b, lr)
        self._lr.fill_(lr)
        if self.compile_seconds is not None:
            with self._tracing:
                return self._compiled(*self._args, a, b, self._lr, self._hyper)
        began = time.perf_counter()
        try:
            with self._tracing:
                loss = self._compiled(*self._args, a, b, self._lr, self._hyper)
        except Exception as error:  # compile failures surface at the first call, before any update
            self.fallback_error = error
            cause = getattr(error, "inner_exception", None) or error  # Dynamo wraps the backend's error
            first_line = next((line for line in str(cause).splitlines() if line.strip()), "")
            warnings.warn(f"torch.compile of the training step failed ({type(cause).__name__}: {first_line}); "
                          "training with the eager step instead", RuntimeWarning, stacklevel=2)
            return self._eager(a, b, lr)
        self.compile_seconds = time.perf_counter() - began
        return loss
