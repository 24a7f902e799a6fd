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

INIT_STD = 0.02
"""Std of the re-initialization pass and of the low-rank position factors (reference section 3)."""


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


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x^2, last dim) + eps) * weight``, weight only (reference section 2)."""

    def __init__(self, dim: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


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
    return RMSNorm(config.d_model) if config.use_rmsnorm else nn.LayerNorm(config.d_model)


# Low-rank factors of the share* tie modes, in the reference's creation (and RNG draw) order:
# A factors before B factors. "A" factors are (d, r), "B" factors (r, d). Names are the
# reference's state-dict names.
_SHARED_FACTORS: dict[str, tuple[str, ...]] = {
    "shareA": ("qkv_A", "qkv_Bq", "qkv_Bk", "qkv_Bv"),
    "shareA_tieKV": ("qkv_A", "qkv_Bq", "qkv_Bkv"),
    "shareA_tieQK": ("qkv_A", "qkv_Bqk", "qkv_Bv"),
    "shareB": ("qkv_Aq", "qkv_Ak", "qkv_Av", "qkv_B"),
    "shareB_tieKV": ("qkv_Aq", "qkv_Akv", "qkv_B"),
    "shareB_tieQK": ("qkv_Aqk", "qkv_Av", "qkv_B"),
}
# Dense (full or low-rank) maps of the other modes, each d -> width * d, in creation order, with
# the reference's module names.
_DENSE_MAPS: dict[str, tuple[tuple[str, int], ...]] = {
    "none": (("qkv", 3),),
    "all": (("qkv_shared", 1),),
    "qk": (("qk_shared", 1), ("v_proj", 1)),
    "kv": (("q_proj", 1), ("kv_shared", 1)),
}


class CausalSelfAttention(nn.Module):
    """Causal softmax attention scaled by 1/sqrt(head_dim), with the record's Q/K/V tie modes."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d, r = config.d_model, config.qkv_rank
        self.n_head = config.n_head
        self.mode = config.tie_qkv
        if self.mode in _DENSE_MAPS:
            for name, width in _DENSE_MAPS[self.mode]:
                self.add_module(name, _linear(d, width * d, r))
        else:
            for name in _SHARED_FACTORS[self.mode]:
                shape = (d, r) if name.startswith("qkv_A") else (r, d)
                self.register_parameter(name, _normal_parameter(*shape, _factor_std(*shape)))
        self.proj = _linear(d, d, config.attn_out_rank)
        mask = torch.tril(torch.ones(config.max_seq_len, config.max_seq_len, dtype=torch.bool))
        self.register_buffer("causal_mask", mask, persistent=False)
        self.register_buffer("causal_bias", torch.zeros(mask.shape).masked_fill(~mask, float("-inf")),
                             persistent=False)

    def _qkv(self, x: torch.Tensor, first: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Q at positions ``first:`` and K, V at every position, each (N, ·, d).

        A query that has its own map is computed at those positions only; one that shares its
        map with K (or the joint map of mode 'none') is sliced from it.
        """
        mode, xq = self.mode, _from(x, first)
        if mode == "none":
            q, k, v = self.qkv(x).split(x.shape[-1], dim=-1)
            return _from(q, first), k, v
        if mode == "all":
            k = self.qkv_shared(x)
            return _from(k, first), k, k
        if mode == "qk":
            k = self.qk_shared(x)
            return _from(k, first), k, self.v_proj(x)
        if mode == "kv":
            k = self.kv_shared(x)
            return self.q_proj(xq), k, k
        if mode.startswith("shareA"):
            h = x @ self.qkv_A
            hq = _from(h, first)
            if mode == "shareA":
                return hq @ self.qkv_Bq, h @ self.qkv_Bk, h @ self.qkv_Bv
            if mode == "shareA_tieKV":
                kv = h @ self.qkv_Bkv
                return hq @ self.qkv_Bq, kv, kv
            k = h @ self.qkv_Bqk
            return _from(k, first), k, h @ self.qkv_Bv
        B = self.qkv_B
        if mode == "shareB":
            return (xq @ self.qkv_Aq) @ B, (x @ self.qkv_Ak) @ B, (x @ self.qkv_Av) @ B
        if mode == "shareB_tieKV":
            kv = (x @ self.qkv_Akv) @ B
            return (xq @ self.qkv_Aq) @ B, kv, kv
        k = (x @ self.qkv_Aqk) @ B
        return _from(k, first), k, (x @ self.qkv_Av) @ B

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
            scores = scores.masked_fill(~self.causal_mask[:length, :length], float("-inf"))
            y = F.softmax(scores, dim=-1) @ v
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
