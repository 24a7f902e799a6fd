"""K models of one configuration as one stacked tensor, and their forward pass batched over seeds.

The parameters of K models live in one float32 tensor ``flat`` of shape (K, N): row i is seed i's
model flattened in ``model.parameters()`` order (the tied token embedding / LM head once), so a
seed's weights are exactly one row, gradients never mix across rows, and per-seed norms, clipping,
masking and AdamW are single operations over rows. The forward (``stacked_logits``) reads each
parameter as a (K, ...) view of ``flat`` and batches every matrix product over seeds with
``torch.bmm``; it is ``AdditionTransformer.forward`` for each seed up to float32 rounding, for every
``ModelConfig`` (ranks, the ten tie modes of ``ties.TIES``, RMSNorm, several layers and heads), with
the model's norm and softmax (``model.rms_norm``, ``model.masked_softmax``). Only what the loss
needs is computed: the last block evaluates queries, attention output, MLP and norms at the asked
positions only (keys and values at all positions; earlier blocks everywhere).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from trainables.addition.config import ModelConfig
from trainables.addition.data import MAX_CONTEXT, PROMPT_LEN, SUM_DIGITS, encode
from trainables.addition.evaluate import Score
from trainables.addition.model import LAYER_NORM_EPS, AdditionTransformer, build_model, masked_softmax, rms_norm
from trainables.addition.ties import TIES

Step = tuple[str, bool, "int | None"]
"""One matrix of a linear path: (parameter name, use its transpose, output chunk of width d_model or None)."""


@dataclass(frozen=True)
class Layout:
    """Where each named parameter of one model sits in a row of ``flat``."""

    config: ModelConfig
    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    offsets: tuple[int, ...]
    size: int
    """N: parameters per seed."""

    @classmethod
    def of(cls, config: ModelConfig) -> "Layout":
        with torch.device("meta"):
            named = list(AdditionTransformer(config).named_parameters())
        sizes = [p.numel() for _, p in named]
        offsets = tuple(sum(sizes[:i]) for i in range(len(sizes)))
        return cls(config, tuple(n for n, _ in named), tuple(p.shape for _, p in named), offsets, sum(sizes))

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each parameter as a (K, *shape) view of ``flat`` (K, N); differentiable."""
        k = flat.shape[0]
        return {name: flat[:, o:o + shape.numel()].view(k, *shape)
                for name, shape, o in zip(self.names, self.shapes, self.offsets)}


def stack_models(config: ModelConfig, seeds: Sequence[int]) -> torch.Tensor:
    """(K, N) float32: row i holds exactly the initial weights of ``build_model(config, seeds[i])``."""
    return torch.stack([parameters_to_vector(build_model(config, seed).parameters()).detach() for seed in seeds])


def template_model(config: ModelConfig) -> AdditionTransformer:
    """A CPU model to load one row into, built without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        return AdditionTransformer(config)


def load_row(model: AdditionTransformer, row: torch.Tensor) -> AdditionTransformer:
    """Copy one seed's row (N,) into ``model``'s parameters (the tie kept); returns the model."""
    with torch.no_grad():
        vector_to_parameters(row.detach().to(next(model.parameters()).device), model.parameters())
    return model


def _bmm_path(p: dict[str, torch.Tensor], path: Sequence[Step], x: torch.Tensor, width: int) -> torch.Tensor:
    for name, transpose, chunk in path:
        w = p[name].transpose(1, 2) if transpose else p[name]
        if chunk is not None:
            w = w[:, :, chunk * width:(chunk + 1) * width]
        x = torch.bmm(x, w)
    return x


def _dense(p: dict[str, torch.Tensor], prefix: str, chunk: int | None = None) -> tuple[Step, ...]:
    """The path of a full-rank (``weight``, out x in) or low-rank (``A``, ``B``) map."""
    if f"{prefix}.weight" in p:
        return ((f"{prefix}.weight", True, chunk),)
    return ((f"{prefix}.A", False, None), (f"{prefix}.B", False, chunk))


def qkv_paths(config: ModelConfig, p: dict[str, torch.Tensor], prefix: str) -> dict[str, tuple[Step, ...]]:
    """Linear path to each of 'q', 'k', 'v' from a block's normed input, read off the tie table
    (``ties.TIES``): tied projections get the same path."""
    tie = TIES[config.tie_qkv]
    paths: dict[str, tuple[Step, ...]] = {}
    for role, path in tie.paths().items():
        steps: list[Step] = []
        for name, chunk in path:
            if name in tie.factors:
                steps.append((f"{prefix}.{name}", False, None))
            else:
                steps.extend(_dense(p, f"{prefix}.{name}", chunk))
        paths[role] = tuple(steps)
    return paths


def _rows_from(x: torch.Tensor, batch: int, length: int, first: int) -> torch.Tensor:
    """Positions ``first:`` of (K, batch*length, w) activations, as (K, batch*(length-first), w)."""
    if first == 0:
        return x
    k, _, w = x.shape
    return x.view(k, batch, length, w)[:, :, first:].reshape(k, -1, w)


def _qkv(config: ModelConfig, p: dict[str, torch.Tensor], prefix: str, h: torch.Tensor, batch: int, length: int,
         first: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q at positions ``first:``, k and v at all; shared factors and tied maps computed once."""
    d = config.d_model
    paths = qkv_paths(config, p, prefix)
    done: dict[tuple[Step, ...], torch.Tensor] = {}

    def full(path: tuple[Step, ...]) -> torch.Tensor:
        out = h
        for n in range(1, len(path) + 1):
            if path[:n] not in done:
                done[path[:n]] = _bmm_path(p, path[n - 1:n], out, d)
            out = done[path[:n]]
        return out

    k, v = full(paths["k"]), full(paths["v"])
    path = paths["q"]
    known = max((n for n in range(len(path) + 1) if n == 0 or path[:n] in done), default=0)
    start = _rows_from(done[path[:known]] if known else h, batch, length, first)
    return _bmm_path(p, path[known:], start, d), k, v


def _norm(config: ModelConfig, p: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    weight = p[f"{name}.weight"][:, None, :]
    if config.use_rmsnorm:
        return rms_norm(x, weight)
    return F.layer_norm(x, x.shape[-1:], eps=LAYER_NORM_EPS) * weight + p[f"{name}.bias"][:, None, :]


@functools.lru_cache(maxsize=None)
def _future_on(device: torch.device) -> torch.Tensor:
    """(33, 33) bool, True above the diagonal (the positions a query may not see), copied to ``device``
    once (outside any CUDA graph capture)."""
    return torch.ones(MAX_CONTEXT, MAX_CONTEXT, dtype=torch.bool).tril().logical_not().to(device)


def _attention(config: ModelConfig, p: dict[str, torch.Tensor], prefix: str, h: torch.Tensor, batch: int,
               length: int, first: int) -> torch.Tensor:
    k_seeds, d, heads = h.shape[0], config.d_model, config.n_head
    head_dim = d // heads
    q, k, v = _qkv(config, p, prefix, h, batch, length, first)
    q = q.view(k_seeds, batch, length - first, heads, head_dim).transpose(2, 3)
    k, v = (t.view(k_seeds, batch, length, heads, head_dim).transpose(2, 3) for t in (k, v))
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(head_dim)
    weights = masked_softmax(scores, _future_on(h.device)[first:length, :length])
    y = (weights @ v).transpose(2, 3).reshape(k_seeds, -1, d)
    return _bmm_path(p, _dense(p, f"{prefix}.proj"), y, d)


def _block(config: ModelConfig, p: dict[str, torch.Tensor], j: int, x: torch.Tensor, batch: int, length: int,
           first: int) -> torch.Tensor:
    prefix = f"blocks.{j}"
    attended = _attention(config, p, f"{prefix}.attn", _norm(config, p, f"{prefix}.ln1", x), batch, length, first)
    x = _rows_from(x, batch, length, first) + attended
    hidden = F.gelu(_bmm_path(p, _dense(p, f"{prefix}.mlp.fc1"), _norm(config, p, f"{prefix}.ln2", x), config.d_ff))
    return x + _bmm_path(p, _dense(p, f"{prefix}.mlp.fc2"), hidden, config.d_model)


def stacked_logits(layout: Layout, flat: torch.Tensor, idx: torch.Tensor, first: int = 0) -> torch.Tensor:
    """Logits of K models on their own token ids.

    Args:
        layout: the models' layout; flat: (K, N) weights.
        idx: int64 (K, B, T), T <= 33: seed i's batch in row i.
        first: the first position whose logits are wanted.

    Returns:
        (K, B, T - first, 14): seed i's ``model(idx[i], first)`` up to float32 rounding.
    """
    config, p = layout.config, layout.views(flat)
    k, batch, length = idx.shape
    token = p["token_emb.weight"]  # (K, 14, d), also the LM head
    vocab = torch.arange(token.shape[1], device=idx.device)
    one_hot = (idx.reshape(k, -1, 1) == vocab).to(token.dtype)  # a product, not a gather: exact, deterministic
    x = torch.bmm(one_hot, token).view(k, batch, length, -1)  # and sync-free backward on CUDA
    if "pos_emb.weight" in p:
        position = p["pos_emb.weight"][:, :length]
    else:
        position = torch.bmm(p["pos_emb.A"][:, :length], p["pos_emb.B"])
    x = (x + position[:, None]).reshape(k, batch * length, -1)
    for j in range(config.n_layer):
        x = _block(config, p, j, x, batch, length, first if j == config.n_layer - 1 else 0)
    logits = torch.bmm(_norm(config, p, "ln_f", x), token.transpose(1, 2))
    return logits.view(k, batch, length - first, -1)


def seed_losses(layout: Layout, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each seed on its batch at the 12 scored positions: (K,).

    ``x``: (K, B, 33) inputs; ``y``: (K, B, 12) targets of positions 21..32 (11 sum digits, <EOS>).
    """
    logits = stacked_logits(layout, flat, x, PROMPT_LEN - 1)
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
    return losses.view(x.shape[0], -1).mean(dim=1)


@torch.no_grad()
def stacked_scores(layout: Layout, flat: torch.Tensor, pairs: torch.Tensor, batch_size: int = 512) -> list[Score]:
    """Greedy exact match and token accuracy of each seed on its own pairs, as ``evaluate.score_pairs``.

    Args:
        pairs: int64 (K, P, 2): seed i's (A, B) pairs in row i (any device; moved to ``flat``'s).
        batch_size: pairs per seed per forward pass.

    Returns:
        K Scores; seed i's equals ``score_pairs(its model, pairs[i])`` unless float32 rounding
        flips an arg-max.
    """
    k, n, _ = pairs.shape
    pairs = pairs.to(flat.device)
    full = encode(pairs[..., 0].reshape(-1), pairs[..., 1].reshape(-1)).view(k, n, -1)
    generated = []
    for start in range(0, n, batch_size):
        idx = full[:, start:start + batch_size, :PROMPT_LEN]
        for _ in range(SUM_DIGITS):
            context = idx[:, :, -MAX_CONTEXT:]
            logits = stacked_logits(layout, flat, context, context.shape[2] - 1)
            idx = torch.cat([idx, logits[:, :, -1].argmax(dim=-1, keepdim=True)], dim=2)
        generated.append(idx[:, :, PROMPT_LEN:])
    correct = (torch.cat(generated, dim=1) == full[:, :, PROMPT_LEN:PROMPT_LEN + SUM_DIGITS]).cpu()
    errors = (~correct.all(dim=2)).sum(dim=1)
    return [Score(n=n, errors=int(errors[i]), token_accuracy=float(correct[i].float().mean())) for i in range(k)]
