"""A small causal transformer language model: a pure ``nn.Module`` (no Ray, no MLflow).

GPT-2-shaped (Radford et al. 2019; the layout of karpathy/nanoGPT ``model.py``): learned token and
position embeddings, pre-norm blocks of causal multi-head attention and a feed-forward unit, a
final LayerNorm and an output head tied to the token embedding. Weights start normal(0, 0.02),
residual output projections normal(0, 0.02 / sqrt(2 * n_layer)), biases zero.

Optional gates, watched by ``trainables.diagnostics``: a sigmoid-gated feed-forward unit (GLU,
Dauphin et al. 2017: ``W_o((x W_u) * sigmoid(x W_g))``) or a gated memory per block (a causal
running mean of ``tanh(x W_c)``, scaled by ``sigmoid(x W_g)``). Gate nonlinearities are
``nn.Sigmoid`` / ``nn.Tanh`` modules so that the diagnostics can hook their inputs.

The causal mask is the boolean buffer ``attn.mask`` of each block (lower triangle), applied before
the softmax, so that the causal-leak audit has something to break in a test.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trainables.lm.config import ModelConfig

INIT_STD = 0.02


class CausalSelfAttention(nn.Module):
    """Multi-head softmax attention over earlier positions only, scaled by 1/sqrt(head_dim)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.attn_dropout = nn.Dropout(config.dropout)
        n = config.context_length
        self.register_buffer("mask", torch.tril(torch.ones(n, n, dtype=torch.bool)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        head = width // self.n_head
        q, k, v = (t.view(batch, length, self.n_head, head).transpose(1, 2) for t in self.qkv(x).split(width, dim=-1))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(head)
        scores = scores.masked_fill(~self.mask[:length, :length], float("-inf"))
        y = self.attn_dropout(F.softmax(scores, dim=-1)) @ v
        return self.proj(y.transpose(1, 2).reshape(batch, length, width))


class FeedForward(nn.Module):
    """``W_o gelu(x W_u)``, or with ``glu`` the sigmoid-gated ``W_o((x W_u) * sigmoid(x W_g))``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        hidden = config.ffn_mult * config.d_model
        self.up = nn.Linear(config.d_model, hidden)
        self.glu = config.gate == "glu"
        if self.glu:
            self.gate = nn.Linear(config.d_model, hidden)
            self.sigmoid = nn.Sigmoid()
        self.proj = nn.Linear(hidden, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.up(x) * self.sigmoid(self.gate(x)) if self.glu else F.gelu(self.up(x))
        return self.proj(hidden)


class GatedMemory(nn.Module):
    """``W_o(sigmoid(x W_g) * m)``, m_t the mean of ``tanh(x_s W_c)`` over positions s <= t (causal)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.d_model
        self.candidate, self.gate, self.proj = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.tanh, self.sigmoid = nn.Tanh(), nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        counts = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype).view(1, -1, 1)
        memory = self.tanh(self.candidate(x)).cumsum(dim=1) / counts
        return self.proj(self.sigmoid(self.gate(x)) * memory)


class Block(nn.Module):
    """Pre-norm block: ``x + attn(ln1 x)``, then ``x + memory(ln_m x)`` if gated, then ``x + ffn(ln2 x)``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(config.d_model), nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.ffn = FeedForward(config)
        self.memory = GatedMemory(config) if config.gate == "memory" else None
        self.ln_m = nn.LayerNorm(config.d_model) if self.memory is not None else None
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.ln1(x)))
        if self.memory is not None:
            x = x + self.dropout(self.memory(self.ln_m(x)))
        return x + self.dropout(self.ffn(self.ln2(x)))


class CausalLM(nn.Module):
    """Token ids (batch, time) -> next-token logits (batch, time, vocab_size)."""

    def __init__(self, config: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2, got {vocab_size}")
        self.config, self.vocab_size = config, vocab_size
        self.token_emb = nn.Embedding(vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.context_length, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, vocab_size, bias=False)
        self.apply(_init)
        for name, parameter in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(parameter, mean=0.0, std=INIT_STD / math.sqrt(2 * config.n_layer))
        if config.tie_embeddings:
            self.head.weight = self.token_emb.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (N, T, vocab_size) of token ids ``idx`` (N, T).

        Raises:
            ValueError: T exceeds the context length.
        """
        length = idx.shape[1]
        if length > self.config.context_length:
            raise ValueError(f"sequence of {length} tokens exceeds context_length={self.config.context_length}")
        positions = torch.arange(length, device=idx.device)
        x = self.dropout(self.token_emb(idx) + self.pos_emb(positions))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))

    def num_parameters(self) -> int:
        """Unique parameters (a tied embedding counted once)."""
        return sum(p.numel() for p in self.parameters())

    def embedding_parameters(self) -> int:
        """Parameters of the token and position tables and of an untied output head."""
        tables = self.token_emb.weight.numel() + self.pos_emb.weight.numel()
        return tables + (0 if self.config.tie_embeddings else self.head.weight.numel())


def _init(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def build_model(config: ModelConfig, vocab_size: int, seed: int, device: str | torch.device = "cpu") -> CausalLM:
    """Seed the global torch RNG with ``seed``, build on the CPU, move to ``device``."""
    torch.manual_seed(seed)
    return CausalLM(config, vocab_size).to(device)
