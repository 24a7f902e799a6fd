"""Scoring a language model on raw text so that different vocabularies compare: bits per byte.

A loss per token depends on how many tokens the text became; the bits the model needs for the
*text* do not. So every score covers one text whole: its token ids are prefixed with
``<|endoftext|>`` (not scored), every token of the text is predicted once, and

    bits per byte = total nats over the text's tokens / (ln 2 * UTF-8 bytes of the text)

(the measure of Gao et al. 2020, "The Pile", section 4; the same as bits per character on ASCII).
Tokens are scored in consecutive non-overlapping windows of ``context_length``: a token's
context reaches back to the start of its window only (cheaper than a sliding window, and the
same for every vocabulary at equal context in tokens).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def bits_per_byte(total_nats: float, num_bytes: int) -> float:
    """``total_nats / (ln 2 * num_bytes)``.

    Raises:
        ValueError: ``num_bytes`` is not positive.
    """
    if num_bytes <= 0:
        raise ValueError(f"bits_per_byte needs a positive byte count, got {num_bytes}")
    return total_nats / (math.log(2) * num_bytes)


def text_prefix(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` within ``max_bytes`` UTF-8 bytes ending at a line end, else at a character."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    prefix = data[:max_bytes].decode("utf-8", errors="ignore")
    cut = prefix.rfind("\n")
    return prefix[: cut + 1] if cut >= 0 else prefix


def text_sample(text: str, max_bytes: int, pieces: int = 64) -> str:
    """At most ``max_bytes`` of ``text`` as ``pieces`` line-aligned chunks spread evenly over it (the
    whole text when it fits): a sample of a split that is not just its first few documents."""
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    chunks = []
    for k in range(pieces):
        start = k * len(text) // pieces
        if k:
            newline = text.find("\n", start)
            if newline < 0:
                break
            start = newline + 1
        chunks.append(text_prefix(text[start:], max_bytes // pieces))
    return "".join(chunks)


@dataclass(frozen=True)
class TextScore:
    """Total loss of a model over one text."""

    nats: float
    """Sum of -ln p(token) over the text's tokens."""
    tokens: int
    """Tokens scored (every token of the text)."""
    num_bytes: int
    """UTF-8 bytes of the text."""

    @property
    def loss(self) -> float:
        """Mean nats per token."""
        return self.nats / self.tokens

    @property
    def perplexity(self) -> float:
        """exp(loss): per token, so it is not comparable across vocabularies."""
        return math.exp(min(self.loss, 700.0))

    @property
    def bits_per_byte(self) -> float:
        return bits_per_byte(self.nats, self.num_bytes)

    def metrics(self, prefix: str) -> dict[str, float]:
        """``<prefix>/loss``, ``/perplexity``, ``/bits_per_byte``."""
        return {f"{prefix}/loss": self.loss, f"{prefix}/perplexity": self.perplexity,
                f"{prefix}/bits_per_byte": self.bits_per_byte}


def _windows(ids: torch.Tensor, length: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, targets) pairs covering targets ids[1:], full windows batched, the rest alone."""
    predicted = ids.numel() - 1
    full = predicted // length
    pairs = []
    if full:
        pairs.append((ids[: full * length].view(full, length), ids[1: full * length + 1].view(full, length)))
    if predicted % length:
        start = full * length
        pairs.append((ids[start:-1].unsqueeze(0), ids[start + 1:].unsqueeze(0)))
    return pairs


@torch.no_grad()
def score_ids(model: nn.Module, ids: Sequence[int], context_length: int, num_bytes: int,
              batch_size: int = 32, device: str = "cpu") -> TextScore:
    """Score every id after the first of ``ids`` (the first is the ``<|endoftext|>`` prefix).

    Args:
        model: maps (N, T) ids to (N, T, V) logits; evaluated in eval mode, mode restored after.
        ids: [eot] + token ids of the text, at least two.
        context_length: window length in tokens.
        num_bytes: UTF-8 bytes of the text those ids encode.
        batch_size: windows per forward pass.

    Raises:
        ValueError: fewer than two ids.
    """
    if len(ids) < 2:
        raise ValueError("score_ids needs the prefix token and at least one text token")
    tensor = torch.as_tensor(list(ids), dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    nats = 0.0
    try:
        for inputs, targets in _windows(tensor, context_length):
            for start in range(0, inputs.shape[0], batch_size):
                x, y = inputs[start:start + batch_size], targets[start:start + batch_size]
                logits = model(x)
                nats += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), y.reshape(-1),
                                              reduction="sum"))
    finally:
        model.train(was_training)
    return TextScore(nats, len(ids) - 1, num_bytes)


def unigram_score(train_ids: Sequence[int], ids: Sequence[int], vocab_size: int, num_bytes: int) -> TextScore:
    """Score of a unigram model (add-one counts of ``train_ids``) on ``ids[1:]``: the baseline a
    model that learned nothing about context reaches."""
    counts = Counter(train_ids)
    total = len(train_ids) + vocab_size
    nats = -sum(math.log((counts.get(i, 0) + 1) / total) for i in ids[1:])
    return TextScore(nats, len(ids) - 1, num_bytes)
