"""The counter stream: addition training operands as a pure function of (seed, step, row).

A third training stream beside ``data.TrainingStream``'s two (the reference's per-example
``torch.Generator`` draws, and ``fast``'s vectorized ones). It has no state: the example of row r
at step t of a run with seed s depends on (s, t, r) and the run's holdout only, so it is the same
whether the seed is trained alone or stacked with any number of others, on any device. Every value
is an integer held in an int64 tensor and every product stays below 2^49, so CPU and CUDA give the
same bits (no signed overflow, no floating point).

Construction (all words are 32-bit unsigned integers, ``^`` is xor, arithmetic mod 2^32):

- ``h(x)`` is the lowbias32 integer hash (C. Wellons, "Prospecting for hash functions", 2018):
  ``x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16``, a bijection of
  [0, 2^32). Each product is taken on the constant's two 16-bit halves (``_mul32``).
- seed lanes j = 0, 1: ``key_j = h(s0 ^ h(s1 ^ L_j))`` with ``s0 = s mod 2^32``,
  ``s1 = floor(s / 2^32) mod 2^32``, ``L_0 = 0x243F6A88``, ``L_1 = 0x85A308D3``;
- step t: ``e_j = h(key_j ^ t)`` (distinct for every step of a seed); row r: ``r_j = h(e_j ^ r)``;
- word n of an example: ``w(n) = h(r_0 ^ c_n) ^ r_1`` with ``c_n = n * 0x9E3779B9``.

The example: digit count ``k = lo + w(0) mod (hi - lo + 1)``, the curriculum phase's [lo, hi];
then for attempt a = 0, 1, ...: ``A = (floor(w(1+4a) / 4) * 2^32 + w(2+4a)) mod 10^k`` and ``B``
likewise from ``w(3+4a)``, ``w(4+4a)``; the first attempt whose (A, B) is not in the run's
validation/test holdout is the example (the reference's rule: redraw A and B, keeping k).

Modulo bias: k takes one of n <= 10 values from 2^32 equally likely words, so each value's
probability is off by at most n / 2^32 (relative, < 2.4e-9); A and B reduce 62-bit values mod
10^k <= 10^10, off by at most 10^10 / 2^62 (relative, < 2.2e-9). Both are far below what any
training run could detect.
"""

from __future__ import annotations

from typing import Sequence

import torch

from trainables.addition.config import TrainConfig
from trainables.addition.data import TrainingStream, pow10_on

MASK32 = 0xFFFFFFFF
_LANES = (0x243F6A88, 0x85A308D3)
_WEYL = 0x9E3779B9
_PAIR_SHIFT = 34
"""2^34 > 10^10: (index, operand) pairs packed into one int64 key."""
_SENTINEL = torch.iinfo(torch.int64).max


def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    """``x * constant mod 2^32`` for x in [0, 2^32), with partial products below 2^48."""
    low, high = constant & 0xFFFF, constant >> 16
    return (x * low + (((x * high) & 0xFFFF) << 16)) & MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 of int64 tensor ``x`` with values in [0, 2^32); same shape and range."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def seed_keys(seeds: Sequence[int], device: str | torch.device = "cpu") -> torch.Tensor:
    """The two 32-bit lane keys of each seed: int64 tensor (K, 2).

    Raises:
        ValueError: a seed outside [0, 2^64).
    """
    for seed in seeds:
        if not 0 <= int(seed) < 2**64:
            raise ValueError(f"counter stream seeds must be in [0, 2^64), got {seed!r}")
    s = torch.tensor([[int(seed) & MASK32, (int(seed) >> 32) & MASK32] for seed in seeds], dtype=torch.int64)
    lanes = torch.tensor(_LANES, dtype=torch.int64)
    return hash32(s[:, :1] ^ hash32(s[:, 1:] ^ lanes)).to(device)


class HoldoutTable:
    """Exact, vectorized membership of (seed index, A, B) in each seed's holdout.

    A pair (A, B) of seed i is found by two binary searches: ``i * 2^34 + A`` among the sorted
    distinct (i, A) keys gives A's rank, then ``rank * 2^34 + B`` among the sorted pair keys.
    """

    def __init__(self, holdouts: Sequence[torch.Tensor], device: str | torch.device = "cpu") -> None:
        """``holdouts[i]``: int64 tensor (N_i, 2) of seed i's held-out (A, B) pairs."""
        index = torch.cat([torch.full((len(h),), i, dtype=torch.int64) for i, h in enumerate(holdouts)])
        pairs = torch.cat([h.reshape(-1, 2).to(torch.int64) for h in holdouts])
        a_keys = torch.unique(index * 2**_PAIR_SHIFT + pairs[:, 0])  # sorted
        rank = torch.searchsorted(a_keys, index * 2**_PAIR_SHIFT + pairs[:, 0])
        pair_keys = torch.unique(rank * 2**_PAIR_SHIFT + pairs[:, 1])
        sentinel = torch.tensor([_SENTINEL], dtype=torch.int64)
        self.a_keys = torch.cat([a_keys, sentinel]).to(device)
        self.pair_keys = torch.cat([pair_keys, sentinel]).to(device)

    def contains(self, index: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Bool tensor, broadcast shape of the int64 arguments: is (a, b) in holdout ``index``?"""
        a_key = index * 2**_PAIR_SHIFT + a
        rank = torch.searchsorted(self.a_keys, a_key.contiguous())
        a_found = self.a_keys[rank] == a_key
        pair_key = rank * 2**_PAIR_SHIFT + b
        pair_found = self.pair_keys[torch.searchsorted(self.pair_keys, pair_key.contiguous())] == pair_key
        return a_found & pair_found


def _operand(words: tuple[torch.Tensor, torch.Tensor], bound: torch.Tensor) -> torch.Tensor:
    high, low = words
    return ((high >> 2) * 2**32 + low) % bound


def draw_operands(keys: torch.Tensor, step: torch.Tensor, batch_size: int, lo: torch.Tensor, hi: torch.Tensor,
                  holdout: HoldoutTable, redraws: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Operands of one step for K seeds, as the module docstring defines them.

    Args:
        keys: (K, 2) from ``seed_keys``; row i of the outputs is seed i, checked against holdout i.
        step: int64 tensor of one element (0 <= step < 2^32), on ``keys``' device.
        batch_size: rows per seed (< 2^32).
        lo, hi: int64 tensors of one element, the digit range (1 <= lo <= hi <= 10).
        holdout: the seeds' holdouts, on the same device.
        redraws: None redraws until no pair is held out (exact; reads a flag back from the device
            after each round). An integer does exactly that many rounds with no host sync (for CUDA
            graphs), and the third output flags rows still held out.

    Returns:
        (A, B, unresolved): int64 (K, batch_size) twice and bool (K, batch_size), all False when
        ``redraws`` is None.
    """
    device = keys.device
    rows = torch.arange(batch_size, dtype=torch.int64, device=device)
    lanes = [hash32(hash32(keys[:, j:j + 1] ^ step) ^ rows) for j in range(2)]  # (K, batch) each

    def word(n: int) -> torch.Tensor:
        return hash32(lanes[0] ^ ((n * _WEYL) & MASK32)) ^ lanes[1]

    k = lo + word(0) % (hi - lo + 1)
    bound = pow10_on(device)[k]  # 10^k
    index = torch.arange(keys.shape[0], dtype=torch.int64, device=device)[:, None]
    a, b = _operand((word(1), word(2)), bound), _operand((word(3), word(4)), bound)
    held = holdout.contains(index, a, b)
    attempt = 0
    while (redraws is None and bool(held.any())) or (redraws is not None and attempt < redraws):
        attempt += 1
        a = torch.where(held, _operand((word(1 + 4 * attempt), word(2 + 4 * attempt)), bound), a)
        b = torch.where(held, _operand((word(3 + 4 * attempt), word(4 + 4 * attempt)), bound), b)
        held = held & holdout.contains(index, a, b)
    return a, b, held


class _NextStep:
    """The counter stream's only state, shaped like a torch.Generator's for ``train``'s checkpoints:
    the step of the next batch."""

    def __init__(self) -> None:
        self.step = 0

    def get_state(self) -> torch.Tensor:
        return torch.tensor([self.step], dtype=torch.int64)

    def set_state(self, state: torch.Tensor) -> None:
        self.step = int(state[0])


class CounterStream:
    """One seed's counter stream for the single-seed trainer: the n-th ``sample`` call draws step n.

    ``generator`` holds the next step (``get_state`` / ``set_state``), so ``train``'s ``last.pt``
    resumes it like the generator of ``data.TrainingStream``. Batches are drawn on the CPU.
    """

    def __init__(self, seed: int, holdout: torch.Tensor) -> None:
        """``holdout``: int64 (N, 2) of the run's validation and test pairs."""
        self.keys = seed_keys([seed])
        self.table = HoldoutTable([holdout])
        self.generator = _NextStep()

    def sample(self, batch_size: int, min_digits: int, max_digits: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Operands of the next step, each int64 of shape (batch_size,)."""
        a, b = self.sample_at(self.generator.step, batch_size, min_digits, max_digits)
        self.generator.step += 1
        return a, b

    def sample_at(self, step: int, batch_size: int, min_digits: int, max_digits: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Operands of ``step`` (no state change), each int64 of shape (batch_size,)."""
        a, b, _ = draw_operands(self.keys, torch.tensor([step]), batch_size, torch.tensor([min_digits]),
                                torch.tensor([max_digits]), self.table)
        return a[0], b[0]


def training_stream(cfg: TrainConfig, holdout: set[tuple[int, int]]) -> CounterStream | TrainingStream:
    """The training stream ``cfg`` names: ``CounterStream`` for stream 'counter', else
    ``data.TrainingStream`` in the config's mode (today's behaviour)."""
    if cfg.stream == "counter":
        return CounterStream(cfg.seed, torch.tensor(sorted(holdout), dtype=torch.int64).reshape(-1, 2))
    return TrainingStream(cfg.seed, holdout, cfg.mode)
