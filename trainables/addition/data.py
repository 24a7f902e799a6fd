"""Sequences, holdout splits and online training data of the 10-digit addition task.

Every layout and random stream here is the public record's (``shared/reference/addition.md``
sections 1, 4 and 5): the holdout comes from its own ``torch.Generator`` seeded with the run
seed, training data from another seeded with ``seed + 1337``, so changing how a model is
initialized or trained never changes the split.
"""

from __future__ import annotations

import functools
import random

import torch

PLUS, EQUALS, PAD, EOS = 10, 11, 12, 13
"""Token ids after the digits 0-9 (reference section 1)."""
N_DIGITS = 10
"""Operand width: A and B are in [0, 10^10)."""
SUM_DIGITS = 11
"""Width of A + B, written least significant digit first."""
PROMPT_LEN = 2 * N_DIGITS + 2
"""22 tokens: A, '+', B, '='."""
SEQ_LEN = PROMPT_LEN + SUM_DIGITS + 1
"""34 tokens: prompt, 11 sum digits, <EOS>."""
MAX_CONTEXT = SEQ_LEN - 1
"""33: the model's context; greedy decoding crops to the last 33 tokens."""
IGNORE_INDEX = -100
"""Target id skipped by the loss (prompt positions)."""

TEST_SEEDS_100K = (41, 100, 200, 300, 400, 500, 999, 1234, 7777, 31415)
"""Holdout seeds of the reference's 100k held-out protocol (section 5): 10 x 10,000 test pairs."""
ADDERBOARD_SEED = 2025
"""``random.Random`` seed of AdderBoard's verify.py (section 5)."""
ADDERBOARD_EDGE_CASES = (
    (0, 0), (0, 1), (9_999_999_999, 0), (9_999_999_999, 1), (9_999_999_999, 9_999_999_999),
    (9_999_999_999, 9_999_999_999), (5_000_000_000, 5_000_000_000), (1_111_111_111, 8_888_888_889),
    (1_234_567_890, 9_876_543_210), (1, 9_999_999_999),
)
"""The 10 edge cases AdderBoard's verify.py checks first, in its order."""

_POW10 = torch.tensor([10**i for i in range(SUM_DIGITS)], dtype=torch.int64)


@functools.lru_cache(maxsize=None)
def pow10_on(device: torch.device) -> torch.Tensor:
    """``_POW10`` on ``device``, copied once (so that encoding inside a captured CUDA graph copies nothing)."""
    return _POW10.to(device)


def encode(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Full token sequences for operand pairs.

    Args:
        a, b: int64 tensors of shape (N,) with values in [0, 10^10), on any device.

    Returns:
        int64 tensor (N, 34) on their device: A (10 digits, most significant first), '+', B, '=', A+B
        (11 digits, least significant first), <EOS>.
    """
    # traced by torch.compile, the copy becomes a graph constant (Dynamo does not trace lru_cache)
    pow10 = _POW10.to(a.device) if torch.compiler.is_compiling() else pow10_on(a.device)
    a_digits = (a[:, None] // pow10[:N_DIGITS].flip(0)) % 10
    b_digits = (b[:, None] // pow10[:N_DIGITS].flip(0)) % 10
    s_digits = ((a + b)[:, None] // pow10) % 10
    n = a.shape[0]
    plus = torch.full((n, 1), PLUS, dtype=torch.int64, device=a.device)
    equals = torch.full((n, 1), EQUALS, dtype=torch.int64, device=a.device)
    eos = torch.full((n, 1), EOS, dtype=torch.int64, device=a.device)
    return torch.cat([a_digits, plus, b_digits, equals, s_digits, eos], dim=1)


def inputs_and_targets(full: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split (N, 34) sequences into model input x = full[:, :-1] and target y = full[:, 1:].

    Targets at the first 21 positions (those predicting prompt tokens) are set to -100, so the
    loss covers exactly the 11 sum digits and <EOS>. Both outputs have shape (N, 33).
    """
    x = full[:, :-1].clone()
    y = full[:, 1:].clone()
    y[:, : PROMPT_LEN - 1] = IGNORE_INDEX
    return x, y


def build_holdout(seed: int, val_size: int = 5000, test_size: int = 10_000) -> tuple[torch.Tensor, torch.Tensor]:
    """Validation and test pairs of a run, exactly as the reference draws them (section 4).

    A ``torch.Generator`` seeded with ``seed`` draws n = max(2 * needed, 4096) values of A, then
    n of B, with ``randint(0, 10^10)``; pairs are walked in order, duplicates skipped, until
    ``val_size + test_size`` unique pairs exist. The first ``val_size`` are validation.

    Returns:
        (val, test): int64 tensors of shape (val_size, 2) and (test_size, 2), columns (A, B).
    """
    generator = torch.Generator().manual_seed(seed)
    total = val_size + test_size
    seen: set[tuple[int, int]] = set()
    pairs: list[tuple[int, int]] = []
    while len(pairs) < total:
        n = max(2 * (total - len(pairs)), 4096)
        a = torch.randint(0, 10**N_DIGITS, (n,), generator=generator).tolist()
        b = torch.randint(0, 10**N_DIGITS, (n,), generator=generator).tolist()
        for pair in zip(a, b):
            if pair in seen:
                continue
            seen.add(pair)
            pairs.append(pair)
            if len(pairs) == total:
                break
    tensor = torch.tensor(pairs, dtype=torch.int64).reshape(-1, 2)
    return tensor[:val_size], tensor[val_size:]


def adderboard_pairs() -> torch.Tensor:
    """The 10,010 pairs of AdderBoard's verify.py: 10 edge cases, then 10,000 from Random(2025).

    Returns:
        int64 tensor of shape (10010, 2), columns (A, B).
    """
    rng = random.Random(ADDERBOARD_SEED)
    pairs = list(ADDERBOARD_EDGE_CASES)
    for _ in range(10_000):
        a = rng.randint(0, 9_999_999_999)
        b = rng.randint(0, 9_999_999_999)
        pairs.append((a, b))
    return torch.tensor(pairs, dtype=torch.int64)


class TrainingStream:
    """Online training batches from a generator seeded with ``seed + 1337`` (reference section 4).

    In ``faithful`` mode each example draws its digit count k with ``randint(lo, hi + 1)``, then A
    and B with ``randint(0, 10^k)``, redrawing A then B while the pair is in the holdout: the
    reference's exact stream. ``fast`` mode draws the same distribution vectorized (different
    numbers, several times fewer calls): k, A and B for the whole batch at once; the rare example
    whose A is some holdout pair's A (found with one ``torch.isin``) is checked against the holdout
    exactly and redrawn, in order, while its pair is in it. The generator state is exposed for
    checkpoints.
    """

    def __init__(self, seed: int, holdout: set[tuple[int, int]], mode: str = "faithful") -> None:
        self.generator = torch.Generator().manual_seed(seed + 1337)
        self.holdout = holdout
        self.mode = mode
        self._holdout_a = torch.tensor(sorted({a for a, _ in holdout}), dtype=torch.int64)

    def sample(self, batch_size: int, min_digits: int, max_digits: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw one batch of operands, each of shape (batch_size,), int64."""
        if self.mode == "faithful":
            return self._sample_faithful(batch_size, min_digits, max_digits)
        return self._sample_fast(batch_size, min_digits, max_digits)

    def _sample_faithful(self, batch_size: int, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.generator
        a_list, b_list = [], []
        for _ in range(batch_size):
            k = int(torch.randint(lo, hi + 1, (1,), generator=g))
            a = int(torch.randint(0, 10**k, (1,), generator=g))
            b = int(torch.randint(0, 10**k, (1,), generator=g))
            while (a, b) in self.holdout:
                a = int(torch.randint(0, 10**k, (1,), generator=g))
                b = int(torch.randint(0, 10**k, (1,), generator=g))
            a_list.append(a)
            b_list.append(b)
        return torch.tensor(a_list, dtype=torch.int64), torch.tensor(b_list, dtype=torch.int64)

    def _sample_fast(self, batch_size: int, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.generator
        k = torch.randint(lo, hi + 1, (batch_size,), generator=g)
        high = torch.pow(10.0, k.double())
        a = (torch.rand(batch_size, generator=g, dtype=torch.float64) * high).long()
        b = (torch.rand(batch_size, generator=g, dtype=torch.float64) * high).long()
        candidates = torch.isin(a, self._holdout_a).nonzero().flatten().tolist()
        for i in candidates:  # a pair in the holdout: probability ~1e-16 per example; exact all the same
            pair = (int(a[i]), int(b[i]))
            while pair in self.holdout:
                ki = int(k[i])
                pair = (int(torch.randint(0, 10**ki, (1,), generator=g)), int(torch.randint(0, 10**ki, (1,), generator=g)))
                a[i], b[i] = pair
        return a, b
