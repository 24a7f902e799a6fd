"""Greedy evaluation of addition models: exact match, token accuracy and the two published protocols.

Protocols from ``shared/reference/addition.md`` section 5: the reference's 100k held-out test
(10 holdout seeds x 10,000 test pairs) and AdderBoard's verify.py (10 edge cases + 10,000 pairs
from ``random.Random(2025)``, qualified at >= 99%).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from trainables.addition.data import (
    MAX_CONTEXT, PROMPT_LEN, SUM_DIGITS, TEST_SEEDS_100K, adderboard_pairs, build_holdout, encode,
)

ADDERBOARD_QUALIFY = 0.99
"""AdderBoard's pass mark: at least 99% of its 10,010 sums correct."""


@dataclass(frozen=True)
class Score:
    """Exact match and token accuracy of greedy decoding on a set of pairs."""

    n: int
    """Pairs scored."""
    errors: int
    """Pairs whose 11 generated sum digits are not all correct."""
    token_accuracy: float
    """Mean per-digit accuracy over the 11 sum digits (EOS not scored)."""

    @property
    def exact_match(self) -> float:
        """Share of pairs with all 11 sum digits right (1 - errors / n)."""
        return 1.0 - self.errors / self.n


@torch.no_grad()
def greedy_sum_digits(model: nn.Module, pairs: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Greedily decode the 11 sum digits for each (A, B) pair.

    The prompt is the 22-token ``A+B=`` sequence; each step appends the arg-max token, with the
    context cropped to the last 33 tokens (reference section 1). The 12th token (<EOS>) is not
    generated because exact match does not check it.

    Args:
        model: maps (N, T) token ids to (N, T, 14) logits.
        pairs: int64 tensor (N, 2) of operands in [0, 10^10).
        batch_size: sequences per forward pass.

    Returns:
        int64 tensor (N, 11): generated sum digits, least significant first, on the CPU.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, pairs.shape[0], batch_size):
        chunk = pairs[start:start + batch_size]
        idx = encode(chunk[:, 0], chunk[:, 1])[:, :PROMPT_LEN].to(device)
        for _ in range(SUM_DIGITS):
            logits = model(idx[:, -MAX_CONTEXT:])
            idx = torch.cat([idx, logits[:, -1, :].argmax(dim=-1, keepdim=True)], dim=1)
        outputs.append(idx[:, PROMPT_LEN:].cpu())
    model.train(was_training)
    return torch.cat(outputs)


def score_pairs(model: nn.Module, pairs: torch.Tensor, batch_size: int = 512) -> Score:
    """Exact match / token accuracy of greedy decoding on ``pairs`` (int64, shape (N, 2))."""
    predicted = greedy_sum_digits(model, pairs, batch_size)
    target = encode(pairs[:, 0], pairs[:, 1])[:, PROMPT_LEN:PROMPT_LEN + SUM_DIGITS]
    correct = predicted == target
    errors = int((~correct.all(dim=1)).sum())
    return Score(n=pairs.shape[0], errors=errors, token_accuracy=float(correct.float().mean()))


@dataclass(frozen=True)
class ProtocolResult:
    """Outcome of a published evaluation protocol."""

    protocol: str
    """'100k' or 'adderboard'."""
    total: int
    """Pairs scored."""
    errors: int
    """Pairs with a wrong sum."""
    errors_by_seed: dict[int, int] = field(default_factory=dict)
    """100k protocol: errors on each test seed's 10,000 pairs."""

    @property
    def passed(self) -> int:
        """Pairs with the right sum."""
        return self.total - self.errors

    @property
    def exact_match(self) -> float:
        """passed / total."""
        return self.passed / self.total

    @property
    def qualified(self) -> bool:
        """AdderBoard's >= 99% mark (meaningful for either protocol)."""
        return self.exact_match >= ADDERBOARD_QUALIFY


def evaluate_100k(model: nn.Module, batch_size: int = 512, seeds: tuple[int, ...] = TEST_SEEDS_100K) -> ProtocolResult:
    """The reference's 100k held-out protocol: the 10,000 test pairs of each seed's holdout."""
    by_seed = {}
    for seed in seeds:
        _, test = build_holdout(seed)
        by_seed[seed] = score_pairs(model, test, batch_size).errors
    return ProtocolResult("100k", total=10_000 * len(seeds), errors=sum(by_seed.values()), errors_by_seed=by_seed)


def evaluate_adderboard(model: nn.Module, batch_size: int = 512) -> ProtocolResult:
    """AdderBoard's verify.py protocol: 10,010 pairs, qualified at >= 99%."""
    score = score_pairs(model, adderboard_pairs(), batch_size)
    return ProtocolResult("adderboard", total=score.n, errors=score.errors)


PROTOCOLS = {"100k": evaluate_100k, "adderboard": evaluate_adderboard}
"""Published protocols by name."""
