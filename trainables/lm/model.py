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
    """``W_o(sigmoid(a x W_g) * m)``, m_t the mean of ``tanh(a x_s W_c)`` over positions s <= t (causal).

    ``a`` is ``config.gate_input_gain`` (a constant; at 1 no product is computed, so the default
    model's numbers are those of the memory without the option). The memory's state is the running
    sum of one forward pass: it starts empty at every window (and so at every batch). The attribute
    ``reset_every`` (0: never inside the window) restarts it every N positions, m_t then being the
    mean over s in [N * floor(t / N), t]; only the ablation audit sets it (``trainables.lm.ablation``).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.d_model
        self.candidate, self.gate, self.proj = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.tanh, self.sigmoid = nn.Tanh(), nn.Sigmoid()
        self.input_gain = config.gate_input_gain
        self.reset_every = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        candidate, gate = self.candidate(x), self.gate(x)
        if self.input_gain != 1.0:
            candidate, gate = candidate * self.input_gain, gate * self.input_gain
        features = self.tanh(candidate)
        if 0 < self.reset_every < x.shape[1]:
            memory = _segment_running_mean(features, self.reset_every)
        else:
            counts = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype).view(1, -1, 1)
            memory = features.cumsum(dim=1) / counts
        return self.proj(self.sigmoid(gate) * memory)


def _segment_running_mean(features: torch.Tensor, every: int) -> torch.Tensor:
    """Running mean over time (dim 1) of (N, T, D) ``features``, restarted every ``every`` positions."""
    batch, length, width = features.shape
    pad = -length % every  # positions that fill the last segment, dropped after
    segments = F.pad(features, (0, 0, 0, pad)).view(batch, -1, every, width)
    counts = torch.arange(1, every + 1, device=features.device, dtype=features.dtype).view(1, 1, -1, 1)
    return (segments.cumsum(dim=2) / counts).view(batch, -1, width)[:, :length]


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

    def ablatable(self) -> dict[str, list[nn.Module]]:
        """Components meant to carry information, by name, each with its modules in every block
        (what ``trainables.lm.ablation`` removes): ``memory`` when ``gate='memory'``, else none."""
        memories = [block.memory for block in self.blocks if block.memory is not None]
        return {"memory": memories} if memories else {}

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
