"""The ablation audit: score the validation text again with a component removed, and sample from it.

A component meant to carry information that the model does not use leaves the loss where it was
when it is removed (a reported 58M-parameter memory LM: resetting its memory never, every shard or
every batch moved the perplexity by 1 part in 752). The components are those the model lists
(``CausalLM.ablatable()``: name -> its module in every block); each is removed in every block at
once, in these variants:

- ``zeroed``: every module's output replaced by zeros, so each block's residual stream bypasses it;
- ``mean``: every module's output replaced by its own mean over the scored validation text (every
  position of every window): the information it carries is removed, the constant offset it adds is
  kept (mean ablation, as in Wang et al. 2022, "Interpretability in the Wild", arXiv:2211.00593;
  zeroing can put the residual stream off its distribution, and a memory whose tanh inputs are
  tiny can still add a learned constant, a bias, that zeroing removes);
- ``reset<N>``, for modules with a ``reset_every`` attribute (the gated memory,
  ``trainables.lm.model.GatedMemory``): the running memory restarted every N tokens inside each
  window, for each N of ``audit.ablation_reset_every`` below ``context_length``; ``reset1`` leaves
  only the current token's features, i.e. no memory across tokens. Resetting "at every window" or
  "at every batch" is not a variant: this memory's state is the running sum of one forward pass,
  empty at the start of every scored window and batch already, so those resets are the model itself.

For each (component, variant), ``diag/ablation/<component>/<variant>/`` holds ``bits_per_byte`` (the
same validation text as ``val/bits_per_byte``, scored the same way), ``delta_bits_per_byte``
(ablated - full) and ``relative_change`` (delta / full); the ``component_unused`` audit reads the
last (``trainables.lm.audits``). The variant also completes the generation check's prompts (same sampling seed), rows labelled
``ablation`` = ``<component>/<variant>`` (``none`` for the full model).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from trainables.lm.config import LMRun
from trainables.lm.data import Prepared
from trainables.lm.evaluate import score_ids
from trainables.lm.generation import generation_health

PREFIX = "diag/ablation/"
STATS = ("bits_per_byte", "delta_bits_per_byte", "relative_change")
"""What is reported of each (component, variant), under ``diag/ablation/<component>/<variant>/``."""


def variants(modules: Sequence[nn.Module], reset_every: Sequence[int], context_length: int) -> list[str]:
    """``zeroed``, ``mean``, then ``reset<N>`` for each N < ``context_length`` when every module has ``reset_every``."""
    resettable = all(hasattr(m, "reset_every") for m in modules)
    return ["zeroed", "mean"] + [f"reset{n}" for n in reset_every if resettable and n < context_length]


@contextmanager
def _hooked(modules: Sequence[nn.Module], hook: Callable[[nn.Module, tuple, torch.Tensor], Any]) -> Iterator[None]:
    """``hook`` as a forward hook of every module (an output it returns replaces the module's), removed after."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def output_means(modules: Sequence[nn.Module], forward: Callable[[], Any]) -> dict[nn.Module, torch.Tensor]:
    """Each module's output (..., width) averaged over every row it produced while ``forward()`` ran."""
    sums: dict[nn.Module, list] = {m: [0.0, 0] for m in modules}

    def add(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        rows = output.reshape(-1, output.shape[-1])
        sums[module][0] = sums[module][0] + rows.double().sum(0)
        sums[module][1] += rows.shape[0]

    with _hooked(modules, add):
        forward()
    return {m: (total / count).float() for m, (total, count) in sums.items()}


@contextmanager
def ablated(modules: Sequence[nn.Module], variant: str, means: dict[nn.Module, torch.Tensor] | None = None
            ) -> Iterator[None]:
    """Within the block, ``modules`` run ablated as ``variant`` (see the module doc); restored after.

    Args:
        means: for ``mean``, each module's mean output (``output_means``).

    Raises:
        ValueError: an unknown variant, ``mean`` without ``means``, or ``reset<N>`` on a module
            without ``reset_every``.
    """
    every = variant[len("reset"):]
    if variant == "zeroed":
        with _hooked(modules, lambda _m, _inputs, output: torch.zeros_like(output)):
            yield
    elif variant == "mean" and means is not None:
        with _hooked(modules, lambda m, _inputs, output: means[m].to(output.dtype).expand_as(output)):
            yield
    elif variant.startswith("reset") and every.isdigit() and int(every) > 0:
        if not all(hasattr(m, "reset_every") for m in modules):
            raise ValueError(f"ablation variant {variant!r} needs modules with a reset_every attribute")
        before = [m.reset_every for m in modules]
        for m in modules:
            m.reset_every = int(every)
        try:
            yield
        finally:
            for m, value in zip(modules, before):
                m.reset_every = value
    else:
        raise ValueError(f"ablation variant must be 'zeroed', 'mean' (with means) or 'reset<N>' with N > 0, "
                         f"got {variant!r}")


def labelled(rows: Sequence[dict[str, Any]], ablation: str) -> list[dict[str, Any]]:
    """Completion rows with an ``ablation`` column after ``mode``."""
    return [{"prompt": r["prompt"], "mode": r["mode"], "ablation": ablation,
             **{k: v for k, v in r.items() if k not in ("prompt", "mode")}} for r in rows]


def ablation_audit(model: nn.Module, data: Prepared, run: LMRun, full_bits_per_byte: float,
                   prompts: Sequence[str]) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Score and sample every (component, variant) of ``model.ablatable()``.

    Args:
        model: a ``CausalLM`` (or any module with ``ablatable()``); restored after each variant.
        data: the run's prepared data (``val_ids`` is scored, as at an evaluation).
        run: ``model.context_length``, ``audit.ablation_reset_every``, ``generation``, ``train.seed``
            and ``train.device`` matter.
        full_bits_per_byte: the unablated model's ``val/bits_per_byte`` on the same text.
        prompts: the generation check's prompts.

    Returns:
        (``diag/ablation/...`` metrics, completion rows labelled with their ablation); both empty
        for a model without ablatable components.
    """
    metrics: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    length, device = run.model.context_length, run.train.device

    def score() -> float:
        return score_ids(model, data.val_ids.tolist(), length, data.val_bytes, device=device).bits_per_byte

    for component, modules in model.ablatable().items():
        means = output_means(modules, score)
        for variant in variants(modules, run.audit.ablation_reset_every, length):
            with ablated(modules, variant, means):
                bpb = score()
                completions, _ = generation_health(model, data.tokenizer, prompts, run.generation, length,
                                                   run.train.seed, device)
            delta = bpb - full_bits_per_byte
            values = (bpb, delta, delta / full_bits_per_byte)
            metrics.update({f"{PREFIX}{component}/{variant}/{stat}": v for stat, v in zip(STATS, values)})
            rows += labelled(completions, f"{component}/{variant}")
    return metrics, rows


def summary(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``<component>/<variant>`` -> {stat: value} of the ``diag/ablation/`` entries of ``metrics``."""
    table: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if key.startswith(PREFIX):
            name, stat = key[len(PREFIX):].rsplit("/", 1)
            table.setdefault(name, {})[stat] = value
    return table
