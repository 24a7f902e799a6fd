"""The tiny decoder-only transformer family of the 10-digit addition record.

A pure ``nn.Module`` (no Ray, no MLflow). Architecture, low-rank factorizations, Q/K/V tie modes,
parameter names and the initialization order follow ``shared/reference/addition.md`` sections 2,
3 and 7 (yinglunz/A-456-Parameter-Transformer-Solves-10-Digit-Addition @ 1fb37db), so that the
published checkpoints load as they are and a model built with the same seed starts from the same
weights as the reference's.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F
from torch import nn

from trainables.addition.config import ModelConfig
from trainables.addition.ties import TIES, Step, factor_shape, query_start

INIT_STD = 0.02
"""Std of the re-initialization pass and of the low-rank position factors (reference section 3)."""
LAYER_NORM_EPS = 1e-5
"""eps of LayerNorm (``nn.LayerNorm``'s default, as the reference's)."""
RMS_NORM_EPS = 1e-8
"""eps of RMSNorm (reference section 2)."""


def _normal_parameter(rows: int, cols: int, std: float) -> nn.Parameter:
    weight = nn.Parameter(torch.empty(rows, cols))
    nn.init.normal_(weight, mean=0.0, std=std)
    return weight


def _factor_std(fan_in: int, fan_out: int) -> float:
    return math.sqrt(2.0 / (fan_in + fan_out))


class LowRankLinear(nn.Module):
    """A bias-free linear map in -> out factored as ``x @ A @ B``, A (in, r), B (r, out).

    A ~ normal(0, sqrt(2/(in+r))) is drawn before B ~ normal(0, sqrt(2/(r+out))).
    """

    def __init__(self, in_features: int, out_features: int, rank: int) -> None:
        super().__init__()
        self.A = _normal_parameter(in_features, rank, _factor_std(in_features, rank))
        self.B = _normal_parameter(rank, out_features, _factor_std(rank, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.A @ self.B


class LowRankEmbedding(nn.Module):
    """An embedding table factored as ``A[idx] @ B``, A (num, r), B (r, dim), both normal(0, 0.02)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, rank: int) -> None:
        super().__init__()
        self.A = _normal_parameter(num_embeddings, rank, INIT_STD)
        self.B = _normal_parameter(rank, embedding_dim, INIT_STD)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(idx, self.A) @ self.B


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = RMS_NORM_EPS) -> torch.Tensor:
    """``x / sqrt(mean(x^2, last dim) + eps) * weight`` (reference section 2); ``weight`` broadcasts
    against ``x`` (d,) or, stacked, (K, 1, d)."""
    return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def masked_softmax(scores: torch.Tensor, future: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim of ``scores`` with the positions where ``future`` is True set to
    -inf first (causal attention: a query sees no later key)."""
    return F.softmax(scores.masked_fill(future, float("-inf")), dim=-1)


class RMSNorm(nn.Module):
    """``rms_norm`` with a learned weight only (reference section 2)."""

    def __init__(self, dim: int, eps: float = RMS_NORM_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


def _linear(in_features: int, out_features: int, rank: int) -> nn.Module:
    if rank > 0:
        return LowRankLinear(in_features, out_features, rank)
    return nn.Linear(in_features, out_features, bias=False)


def _from(t: torch.Tensor, first: int) -> torch.Tensor:
    """Positions ``first:`` of ``t`` (N, T, ...); ``t`` itself when first is 0, so that the full
    forward's autograd graph (and so its rounding) is the one it always was."""
    return t[:, first:] if first else t


def _shifted_softmax(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim as ``exp(s - max) / sum(exp(s - max))``, the max a constant for
    autograd (softmax does not depend on it). The same function as ``F.softmax``; under
    torch.compile on CPU it becomes a faster kernel for rows of 33 masked keys, and it stays out of
    Inductor's attention pattern (whose CPU flash-attention kernel is slower at these sizes)."""
    weights = (scores - scores.amax(dim=-1, keepdim=True).detach()).exp()
    return weights / weights.sum(dim=-1, keepdim=True)


def _norm(config: ModelConfig) -> nn.Module:
    return RMSNorm(config.d_model) if config.use_rmsnorm else nn.LayerNorm(config.d_model, eps=LAYER_NORM_EPS)


class CausalSelfAttention(nn.Module):
    """Causal softmax attention scaled by 1/sqrt(head_dim), with the record's Q/K/V tie modes
    (``ties.TIES``: the maps and each projection's path through them)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d, r = config.d_model, config.qkv_rank
        self.n_head = config.n_head
        self.mode = config.tie_qkv
        self.tie = TIES[self.mode]
        for name, width in self.tie.dense:
            self.add_module(name, _linear(d, width * d, r))
        for name in self.tie.factors:
            shape = factor_shape(name, d, r)
            self.register_parameter(name, _normal_parameter(*shape, _factor_std(*shape)))
        self.proj = _linear(d, d, config.attn_out_rank)
        mask = torch.tril(torch.ones(config.max_seq_len, config.max_seq_len, dtype=torch.bool))
        self.register_buffer("causal_mask", mask, persistent=False)
        self.register_buffer("causal_bias", torch.zeros(mask.shape).masked_fill(~mask, float("-inf")),
                             persistent=False)

    def _qkv(self, x: torch.Tensor, first: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Q at positions ``first:`` and K, V at every position, each (N, ·, d).

        A map shared by several projections (a tied one, the joint map of mode 'none', a shared
        factor) is computed once. Q is cut to positions ``first:`` as early as it can be: after the
        maps it shares with K, or at its input when it shares none (``ties.query_start``).
        """
        tie, done, joint = self.tie, {(): x}, {}
        start = query_start(tie)
        if start == len(tie.q):
            k = self._full(tie.k, done, joint)
            q = _from(self._full(tie.q, done, joint), first)
        else:
            q = _from(self._full(tie.q[:start], done, joint), first)
            for step in tie.q[start:]:
                q = self._map(step, q, joint)
            k = self._full(tie.k, done, joint)
        return q, k, self._full(tie.v, done, joint)

    def _full(self, path: tuple[Step, ...], done: dict, joint: dict) -> torch.Tensor:
        """``path`` applied at every position, reusing (and recording in ``done``) its computed prefixes."""
        for n in range(1, len(path) + 1):
            if path[:n] not in done:
                done[path[:n]] = self._map(path[n - 1], done[path[:n - 1]], joint)
        return done[path]

    def _map(self, step: Step, h: torch.Tensor, joint: dict) -> torch.Tensor:
        """One map of a path applied to ``h``: a module, a bare factor, or a chunk of a joint map
        (whose output is computed and split once, kept in ``joint``)."""
        name, chunk = step
        if chunk is not None:
            if name not in joint:
                joint[name] = getattr(self, name)(h).split(h.shape[-1], dim=-1)
            return joint[name][chunk]
        target = getattr(self, name)
        return target(h) if isinstance(target, nn.Module) else h @ target

    def forward(self, x: torch.Tensor, first: int = 0) -> torch.Tensor:
        """Attention output (N, T - first, d) at positions ``first:`` of ``x`` (N, T, d); keys and
        values span every position, so each output is the one the full sequence gives."""
        batch, length, width = x.shape
        head_dim = width // self.n_head
        q, k, v = (t.reshape(batch, t.shape[1], self.n_head, head_dim).transpose(1, 2) for t in self._qkv(x, first))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(head_dim)
        if first:  # the same masked softmax: adding 0 or -inf masks exactly
            y = _shifted_softmax(scores + self.causal_bias[first:length, :length]) @ v
        else:
            y = masked_softmax(scores, ~self.causal_mask[:length, :length]) @ v
        return self.proj(y.transpose(1, 2).reshape(batch, length - first, width))


class MLP(nn.Module):
    """``fc2(gelu(fc1(x)))`` with exact (erf) GELU; each of fc1, fc2 optionally low-rank."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.fc1 = _linear(config.d_model, config.d_ff, config.ffn_rank)
        self.fc2 = _linear(config.d_ff, config.d_model, config.ffn_rank)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm decoder block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln1 = _norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln2 = _norm(config)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, first: int = 0) -> torch.Tensor:
        """Block output (N, T - first, d) at positions ``first:`` of ``x`` (N, T, d)."""
        x = _from(x, first) + self.attn(self.ln1(x), first)
        return x + self.mlp(self.ln2(x))


class AdditionTransformer(nn.Module):
    """Tiny transformer with a tied token embedding / LM head.

    Construction draws from the global torch RNG in the reference's order (token embedding,
    position embedding, each block's Q/K/V, output projection, fc1, fc2, the LM head's default
    init), then a children-first pass re-initializes every ``nn.Embedding`` and full-rank
    ``nn.Linear`` with normal(0, 0.02) and every norm to weight 1 / bias 0. Seed the global RNG
    right before constructing it (see ``build_model``).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.token_emb = nn.Embedding(config.vocab_size, d)
        if config.pos_rank > 0:
            self.pos_emb: nn.Module = LowRankEmbedding(config.max_seq_len, d, config.pos_rank)
        else:
            self.pos_emb = nn.Embedding(config.max_seq_len, d)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = _norm(config)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        self.lm_head.weight = self.token_emb.weight
        self.apply(_reinit)
        positions = torch.arange(config.max_seq_len)
        self.register_buffer("positions", positions, persistent=False)

    def forward(self, idx: torch.Tensor, first_position: int = 0) -> torch.Tensor:
        """Logits (N, T - first_position, 14) for token ids ``idx`` of shape (N, T), T <= 33.

        ``first_position`` > 0 computes only what the logits at positions ``first_position:`` need:
        earlier blocks run at every position, the last block's queries, output projection, MLP and
        norms run at the kept positions only (its keys and values at all), then the final norm and
        LM head. This is exact: the kept logits equal the full forward's up to float32 rounding.
        """
        x = self.token_emb(idx) + self.pos_emb(self.positions[: idx.shape[1]].unsqueeze(0))
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, first_position if i == last else 0)
        return self.lm_head(self.ln_f(x))

    def num_parameters(self) -> int:
        """Unique parameters (the tied embedding counted once)."""
        return sum(p.numel() for p in self.parameters())


def _reinit(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, RMSNorm):
        nn.init.ones_(module.weight)


def build_model(config: ModelConfig, seed: int, device: str | torch.device = "cpu") -> AdditionTransformer:
    """Seed ``random`` and the global torch RNG with ``seed``, build on the CPU, then move to ``device``.

    Initial weights are therefore identical on every device (reference section 3).
    """
    random.seed(seed)
    torch.manual_seed(seed)
    return AdditionTransformer(config).to(device)


def count_parameters(config: ModelConfig) -> int:
    """Unique parameter count of a model with this config (builds one on the meta device)."""
    with torch.device("meta"):
        return AdditionTransformer(config).num_parameters()
