"""Audits that make a language-model result SUSPECT, each with the reason in words.

Every audit returns its measurement; ``audit_flags`` turns the measurements into flags with the
thresholds of an ``AuditConfig``:

- ``causal_leak``: changing the tokens from a position t onwards changes the logits of some
  earlier position by more than ``causal_tolerance`` (the model sees the future);
- ``split_overlap``: more than ``max_overlap`` of the validation lines of at least
  ``overlap_min_chars`` characters (stripped) also occur in the training text (a leaked split);
- ``val_better_than_train``: at every evaluation (two or more) the validation bits per byte were
  more than ``val_better_margin`` below those of the same amount of training text scored the same
  way (an easier or leaked validation split, or a scoring bug);
- ``perplexity_near_one``: final validation perplexity per token below ``min_perplexity``;
- ``collapsed_generation``: more than ``max_collapse_rate`` of the sampled completions are
  collapsed (``trainables.lm.generation``) although the validation bits per byte beat a unigram
  model of the same tokens (a loss that looks learned);
- ``gates_linear``: some tanh/sigmoid gate (one module per block, ``blocks.*.memory.tanh``) has a
  mean |input| below ``linear_input_abs_mean`` in every layer at the last evaluation: its
  nonlinearity is unused (the reported failure: 0.017 in every layer of a memory LM);
- ``gates_dead`` / ``gates_saturated``: more than ``max_dead_share`` of some gate module's outputs
  pass nothing, or more than ``max_saturated_share`` carry no gradient (``trainables.diagnostics``);
- ``component_unused``: no ablation of a component meant to carry information (its output zeroed
  or replaced by its mean, and for the memory its state restarted, ``trainables.lm.ablation``)
  changes the validation bits per byte by ``min_ablation_change`` of their value or more (the
  reported memory: never, every shard or every batch, 1 part in 752 of the perplexity). Every
  variant must agree: one variant alone can miss a use (zeroing a used memory moved bits per byte
  by 0.40% where restarting it every token moved them by 2.29%; docs/lm.md, memory ablation).

The gate audits read the ``diag/gate/<module>/<stat>`` entries of the last evaluation (absent with
``train.diagnostics`` off: nothing is flagged), the ablation audit the
``diag/ablation/<component>/<variant>/relative_change`` entries.
"""

from __future__ import annotations

import hashlib
import math
from typing import Mapping, Sequence

import torch
from torch import nn

from trainables.lm.audit_config import AuditConfig

FLAGS = ("causal_leak", "split_overlap", "val_better_than_train", "perplexity_near_one", "collapsed_generation",
         "gates_linear", "gates_dead", "gates_saturated", "component_unused")
"""Audit names, each reported as ``audit/<name>`` = 1.0 (flagged) or 0.0."""


@torch.no_grad()
def causal_leak(model: nn.Module, vocab_size: int, length: int, seed: int = 0, batch: int = 4) -> float:
    """Largest |change| of the logits at positions < t when the tokens at positions >= t are redrawn.

    Random ids (batch, length) are scored, then for t in {1, length // 2, length - 1} the tokens
    from t on are replaced by fresh random ids; the model runs in eval mode (mode restored after).

    Returns:
        The largest absolute logit difference at any earlier position; 0.0 for a causal model.
    """
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    ids = torch.randint(vocab_size, (batch, length), generator=generator).to(device)
    was_training = model.training
    model.eval()
    try:
        reference = model(ids)
        worst = 0.0
        for t in sorted({1, length // 2, length - 1} - {0}):
            changed = ids.clone()
            changed[:, t:] = torch.randint(vocab_size, (batch, length - t), generator=generator).to(device)
            worst = max(worst, float((model(changed)[:, :t] - reference[:, :t]).abs().max()))
    finally:
        model.train(was_training)
    return worst


def _line_hashes(text: str, min_chars: int) -> list[bytes]:
    return [hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest()
            for s in (line.strip() for line in text.splitlines()) if len(s) >= min_chars]


def split_overlap(train: str, val: str, min_chars: int = 40) -> float:
    """Share of validation lines (stripped, at least ``min_chars`` characters) also in the training text.

    Returns 0.0 when the validation text has no such line.
    """
    val_lines = _line_hashes(val, min_chars)
    if not val_lines:
        return 0.0
    train_lines = set(_line_hashes(train, min_chars))
    return sum(h in train_lines for h in val_lines) / len(val_lines)


def val_always_better(train_bpb: Sequence[float], val_bpb: Sequence[float], margin: float = 0.0) -> bool:
    """Whether validation beat training by more than ``margin`` at every one of two or more evaluations."""
    pairs = [(t, v) for t, v in zip(train_bpb, val_bpb) if not (math.isnan(t) or math.isnan(v))]
    return len(pairs) >= 2 and all(v < t - margin for t, v in pairs)


def audit_flags(measured: Mapping[str, float], config: AuditConfig) -> dict[str, str]:
    """Flag name -> reason for every audit whose measurement crosses its threshold.

    Args:
        measured: ``causal_leak`` (max logit change), ``split_overlap`` (share), ``val_better``
            (1.0/0.0), ``val_perplexity``, ``val_bits_per_byte``, ``unigram_bits_per_byte``,
            ``collapse_rate_sampled``, and any ``diag/gate/<module>/<stat>`` and
            ``diag/ablation/<component>/<variant>/relative_change`` entries; a missing or NaN
            measurement raises no flag.
    """
    def value(key: str) -> float:
        v = measured.get(key, math.nan)
        return math.nan if v is None else float(v)

    flags = {}
    if value("causal_leak") > config.causal_tolerance:
        flags["causal_leak"] = (f"changing later tokens moved earlier logits by {value('causal_leak'):.3g} "
                                f"(> {config.causal_tolerance:g}): the model sees the future")
    if value("split_overlap") > config.max_overlap:
        flags["split_overlap"] = (f"{value('split_overlap'):.0%} of long validation lines also occur in training "
                                  f"text (> {config.max_overlap:.0%})")
    if value("val_better") == 1.0:
        flags["val_better_than_train"] = (f"validation bits per byte more than {config.val_better_margin:g} below "
                                          f"training at every evaluation")
    if value("val_perplexity") < config.min_perplexity:
        flags["perplexity_near_one"] = (f"validation perplexity {value('val_perplexity'):.4f} per token "
                                        f"(< {config.min_perplexity:g}) is implausible for natural text")
    good_loss = value("val_bits_per_byte") < value("unigram_bits_per_byte")
    if good_loss and value("collapse_rate_sampled") > config.max_collapse_rate:
        flags["collapsed_generation"] = (f"{value('collapse_rate_sampled'):.0%} of sampled completions collapsed "
                                         f"into a 1-2 token loop although bits per byte "
                                         f"{value('val_bits_per_byte'):.3f} beat the unigram "
                                         f"{value('unigram_bits_per_byte'):.3f}")
    return {**flags, **gate_flags(measured, config), **unused_flags(measured, config)}


def gate_layers(measured: Mapping[str, float]) -> dict[str, dict[str, dict[str, float]]]:
    """``diag/gate/<module>/<stat>`` entries grouped as role -> layer -> stat -> value.

    A module's role is its name with every numeric part replaced by ``*`` (``blocks.1.memory.tanh``
    -> ``blocks.*.memory.tanh``), its layer those parts (``1``; ``-`` for a module outside any list).
    """
    roles: dict[str, dict[str, dict[str, float]]] = {}
    for key, v in measured.items():
        if not key.startswith("diag/gate/"):
            continue
        module, stat = key[len("diag/gate/"):].rsplit("/", 1)
        parts = module.split(".")
        role = ".".join("*" if p.isdigit() else p for p in parts)
        layer = ".".join(p for p in parts if p.isdigit()) or "-"
        roles.setdefault(role, {}).setdefault(layer, {})[stat] = float(v)
    return roles


def _module(role: str, layer: str) -> str:
    """The module name of ``role`` at ``layer`` (the inverse of ``gate_layers``'s grouping)."""
    numbers = iter(layer.split("."))
    return ".".join(next(numbers) if part == "*" else part for part in role.split("."))


def gate_flags(measured: Mapping[str, float], config: AuditConfig) -> dict[str, str]:
    """``gates_linear``, ``gates_dead``, ``gates_saturated`` (rules in the module doc) with reasons."""
    linear, shares = [], {"dead": [], "saturated": []}
    for role, layers in sorted(gate_layers(measured).items()):
        inputs = [stats.get("input_abs_mean", math.nan) for stats in layers.values()]
        if all(x < config.linear_input_abs_mean for x in inputs):
            linear.append(f"{role} {', '.join(f'{x:.3g}' for x in inputs)} (layers {', '.join(layers)})")
        for stat in shares:
            limit = config.max_dead_share if stat == "dead" else config.max_saturated_share
            shares[stat] += [f"{_module(role, layer)} {stats[stat]:.0%}" for layer, stats in layers.items()
                             if stats.get(stat, math.nan) > limit]
    flags = {}
    if linear:
        flags["gates_linear"] = (f"mean |input| of {'; '.join(linear)} below {config.linear_input_abs_mean:g} "
                                 f"in every layer: the gate computes a linear function")
    if shares["dead"]:
        flags["gates_dead"] = (f"outputs passing nothing: {', '.join(shares['dead'])} "
                               f"(> {config.max_dead_share:.0%})")
    if shares["saturated"]:
        flags["gates_saturated"] = (f"outputs saturated, carrying no gradient: {', '.join(shares['saturated'])} "
                                    f"(> {config.max_saturated_share:.0%})")
    return flags


def unused_flags(measured: Mapping[str, float], config: AuditConfig) -> dict[str, str]:
    """``component_unused`` (rule in the module doc): every component none of whose ablation variants
    moved the validation bits per byte by ``min_ablation_change`` or more, with each variant's change."""
    changes: dict[str, dict[str, float]] = {}
    for key, v in measured.items():
        if key.startswith("diag/ablation/") and key.endswith("/relative_change"):
            component, variant = key[len("diag/ablation/"):-len("/relative_change")].rsplit("/", 1)
            changes.setdefault(component, {})[variant] = float(v)
    unused = [f"{component} ({', '.join(f'{variant} {v:+.2%}' for variant, v in variants.items())})"
              for component, variants in sorted(changes.items())
              if all(abs(v) < config.min_ablation_change for v in variants.values())]
    if not unused:
        return {}
    return {"component_unused": (f"no ablation of {'; '.join(unused)} changed validation bits per byte by "
                                 f"{config.min_ablation_change:.0%} or more: the model does not use it")}
