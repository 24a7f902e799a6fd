"""Anytime-valid success-rate decisions over seeds: a beta-binomial mixture confidence sequence for a
configuration's success probability, the decision rule on it, and racing between configurations.

The confidence sequence (Robbins 1970, "Statistical methods related to the law of the iterated
logarithm", Ann. Math. Statist. 41; Howard, Ramdas, McAuliffe and Sekhon 2021, "Time-uniform,
nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49, the conjugate-mixture method): for
0/1 outcomes X_1..X_n with S_n successes, the Bernoulli likelihood ratio mixed over a Beta(a, b)
distribution,

    M_n(p) = B(a + S_n, b + n - S_n) / B(a, b) / (p^S_n (1 - p)^(n - S_n)),

is a nonnegative martingale with M_0 = 1 when p is the true success probability, so by Ville's
inequality P(exists n: M_n(p) >= 1/alpha) <= alpha. The set C_n = {p : M_n(p) < 1/alpha} is an interval
(log M_n is convex in p) that holds the true p at every n at once with probability >= 1 - alpha: one may
look after every seed and stop when one likes. The interval reported is the running intersection of
C_1..C_n (also a 1 - alpha confidence sequence, and it never widens); on the probability <= alpha event
that the intersection would become empty, the last non-empty one is kept.

Outcomes enter in seed order (a configuration's seeds as the design hands them out), never in the order
seeds finish: a failing seed trains the whole schedule and a successful one stops early, so finishing order
depends on the outcome and would bias the sequence toward success.

Decision rule on the interval [low, high]: RELIABLE when low > reliable_bar, UNRELIABLE when high <
failure_bar, SEED-SENSITIVE when failure_bar < low and high < reliable_bar; otherwise the decision is open
(OPEN), and UNDECIDED once ``max_seeds`` seeds ran. Racing: a configuration whose high is below the best
configuration's low (the highest low, the first on ties) is DOMINATED by it. Each of these holds, once
reached, for every later seed (the interval only narrows, the best low only rises), and each is wrong only
if the sequence missed the true rate.

Defaults (alpha 0.05, bars 0.2/0.8, Beta(1/2, 1/2)), chosen with ``benchmarks/sequential_seeds.py``: a
decision needs 24 seeds that all succeed (RELIABLE; a 95% Wilson interval, which may not be looked at after
every seed, clears 0.8 after 16), 24 that all fail (UNRELIABLE), 22 half successes (SEED-SENSITIVE), and 7
failures raced against 7 successes (DOMINATED). So a range with max_seeds below 24 can stop a configuration
only as SEED-SENSITIVE or DOMINATED. On 10,000 simulated sweeps with max_seeds 30 the sequential design
spends 0.52 of the fixed 30-seed design (0.65 at max 20, 0.81 at max 12), 0.7% of its decisions wrong,
final-interval coverage 0.988.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Mapping

import numpy as np
from scipy.special import betaln, xlog1py, xlogy

from search_spaces.seeds import MAX_SEEDS
from tune_jobs.verdicts.seeds import SEED_SENSITIVE

RELIABLE, UNRELIABLE, DOMINATED, UNDECIDED, OPEN = "RELIABLE", "UNRELIABLE", "DOMINATED", "UNDECIDED", "OPEN"
"""Decision labels of a sequential design (SEED-SENSITIVE is ``seeds.SEED_SENSITIVE``)."""
DECIDED = (RELIABLE, UNRELIABLE, SEED_SENSITIVE)
"""Labels that end a configuration's seeds by its own interval."""
INTERVAL_KIND = "beta-binomial mixture confidence sequence"
"""How tables and MLflow name the interval of a sequential design."""
ALPHA = 0.05
"""Default miscoverage: the sequence holds the true rate at every seed with probability >= 0.95."""
RELIABLE_BAR, FAILURE_BAR = 0.8, 0.2
"""Default bars on the success probability (chosen with benchmarks/sequential_seeds.py)."""
MIXTURE = (0.5, 0.5)
"""Default Beta(a, b) mixing distribution (Jeffreys'): narrower at 0 and 1 than the uniform Beta(1, 1)."""
_BISECTIONS = 64


def log_mixture_martingale(successes: Any, n: Any, p: Any, mixture: tuple[float, float] = MIXTURE) -> np.ndarray:
    """log M_n(p) of the module doc (broadcast over arrays of successes, n and p; p in [0, 1])."""
    a, b = mixture
    k = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    return betaln(a + k, b + n - k) - betaln(a, b) - xlogy(k, p) - xlog1py(n - k, -np.asarray(p, dtype=float))


def confidence_sequence(successes: Any, n: Any, alpha: float = ALPHA, mixture: tuple[float, float] = MIXTURE
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Endpoints of C_n (module doc) for ``successes`` out of ``n`` outcomes, found by bisection.

    Args:
        successes, n: integers (or integer arrays of one broadcast shape), 0 <= successes <= n; n = 0
            gives [0, 1].
        alpha: miscoverage in (0, 1).
        mixture: the Beta(a, b) mixing distribution, a, b > 0.

    Returns:
        (low, high) arrays of the broadcast shape; each endpoint lies on or just outside C_n's boundary.

    Raises:
        ValueError: successes outside [0, n], alpha outside (0, 1), or a non-positive mixture parameter.
    """
    k, n = np.broadcast_arrays(np.asarray(successes, dtype=float), np.asarray(n, dtype=float))
    if np.any(k < 0) or np.any(k > n):
        raise ValueError(f"successes must lie between 0 and n, got successes={successes!r}, n={n!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if not all(math.isfinite(v) and v > 0 for v in mixture):
        raise ValueError(f"mixture must be two positive numbers, got {mixture!r}")
    bound = -math.log(alpha)
    centre = np.divide(k, n, out=np.full(k.shape, 0.5), where=n > 0)

    def outside(p: np.ndarray) -> np.ndarray:
        return log_mixture_martingale(k, n, p, mixture) >= bound

    low = _boundary(outside, np.zeros(k.shape), centre)
    high = _boundary(outside, np.ones(k.shape), centre)
    return low, high


def _boundary(outside: Any, edge: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Bisection between ``edge`` (0 or 1) and the interior point ``inside``; ``edge`` where it is inside."""
    out, into = edge.copy(), inside.copy()
    for _ in range(_BISECTIONS):
        mid = (out + into) / 2
        is_out = outside(mid)
        out, into = np.where(is_out, mid, out), np.where(is_out, into, mid)
    return np.where(outside(edge), out, edge)


def sequence_path(outcomes: Any, alpha: float = ALPHA, mixture: tuple[float, float] = MIXTURE
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The reported interval after each outcome: the running intersection of C_1..C_t (module doc).

    Args:
        outcomes: 0/1 (or bool) array of shape (..., n), outcomes in seed order along the last axis.

    Returns:
        (low, high), each of shape (..., n): entry t is the interval after outcomes 0..t.
    """
    x = np.asarray(outcomes, dtype=int)
    successes = np.cumsum(x, axis=-1)
    counts = np.broadcast_to(np.arange(1, x.shape[-1] + 1), x.shape)
    codes, where = np.unique(successes * (x.shape[-1] + 1) + counts, return_inverse=True)
    table_low, table_high = confidence_sequence(codes // (x.shape[-1] + 1), codes % (x.shape[-1] + 1), alpha, mixture)
    lows, highs = table_low[where].reshape(x.shape), table_high[where].reshape(x.shape)
    low, high = lows.copy(), highs.copy()
    for t in range(1, x.shape[-1]):
        new_low = np.maximum(low[..., t - 1], lows[..., t])
        new_high = np.minimum(high[..., t - 1], highs[..., t])
        empty = new_low > new_high
        low[..., t] = np.where(empty, low[..., t - 1], new_low)
        high[..., t] = np.where(empty, high[..., t - 1], new_high)
    return low, high


def interval_after(outcomes: Any, alpha: float = ALPHA, mixture: tuple[float, float] = MIXTURE
                   ) -> tuple[float, float]:
    """The reported interval after a 1-d sequence of outcomes in seed order ([0, 1] when empty)."""
    if len(outcomes) == 0:
        return 0.0, 1.0
    low, high = sequence_path(outcomes, alpha, mixture)
    return float(low[-1]), float(high[-1])


def decide(low: Any, high: Any, reliable_bar: float = RELIABLE_BAR, failure_bar: float = FAILURE_BAR) -> np.ndarray:
    """The decision of the module doc for intervals [low, high] (arrays broadcast): RELIABLE,
    UNRELIABLE, SEED-SENSITIVE or OPEN (an array of those strings)."""
    low, high = np.asarray(low), np.asarray(high)
    return np.select([low > reliable_bar, high < failure_bar, (low > failure_bar) & (high < reliable_bar)],
                     [RELIABLE, UNRELIABLE, SEED_SENSITIVE], default=OPEN)


def dominated_by(lows: Any, highs: Any) -> np.ndarray:
    """Racing: per configuration, the index of the configuration that dominates it, else -1.

    Args:
        lows, highs: interval endpoints of shape (..., configurations).

    Returns:
        int array of that shape: the index of the best configuration (highest low, the first on ties)
        where the configuration's high is below the best low, else -1.
    """
    lows, highs = np.asarray(lows, dtype=float), np.asarray(highs, dtype=float)
    best = np.argmax(lows, axis=-1)[..., None]
    best_low = np.take_along_axis(lows, best, axis=-1)
    return np.where(highs < best_low, np.broadcast_to(best, lows.shape), -1)


@dataclass(frozen=True)
class SequentialDesign:
    """A sequential seed design: how many seeds a configuration may get and when its seeds stop."""

    min_seeds: int
    """Seeds every configuration gets before any decision or racing can stop it (started at once)."""
    max_seeds: int
    """Seeds after which an open configuration stops, UNDECIDED."""
    group_size: int = 1
    """Seeds handed out together (one stacked trial, SEEDS_PER_TRIAL)."""
    max_in_flight: int = 0
    """Seeds a configuration may have running at once after its first ``min_seeds`` (0: ``group_size``:
    its next group starts once its running ones finished; more keeps more slots busy, but seeds already
    running when a decision comes are spent for nothing: 3 costs 0.57 of the fixed design against 0.52,
    benchmarks/sequential_seeds.py)."""
    alpha: float = ALPHA
    """Miscoverage of the confidence sequence, in (0, 1)."""
    reliable_bar: float = RELIABLE_BAR
    """RELIABLE when the whole interval lies above this success probability."""
    failure_bar: float = FAILURE_BAR
    """UNRELIABLE when the whole interval lies below this success probability."""
    mixture: tuple[float, float] = MIXTURE
    """The Beta(a, b) mixing distribution of the confidence sequence."""
    racing: bool = True
    """Stop a configuration once the best configuration dominates it (DOMINATED)."""
    seed_order: tuple[int, ...] = ()
    """Seeds in the order they are handed out; extended by consecutive integers to ``max_seeds``."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "mixture", tuple(float(v) for v in self.mixture))
        object.__setattr__(self, "seed_order", tuple(int(s) for s in self.seed_order))
        checks = (("min_seeds", self.min_seeds, 1 <= self.min_seeds),
                  ("max_seeds", self.max_seeds, self.min_seeds <= self.max_seeds <= MAX_SEEDS),
                  ("group_size", self.group_size, 1 <= self.group_size <= self.max_seeds),
                  ("max_in_flight", self.max_in_flight,
                   self.max_in_flight == 0 or self.max_in_flight >= self.group_size),
                  ("alpha", self.alpha, 0 < self.alpha < 1),
                  ("failure_bar", self.failure_bar, 0 <= self.failure_bar < self.reliable_bar),
                  ("reliable_bar", self.reliable_bar, self.failure_bar < self.reliable_bar <= 1),
                  ("mixture", self.mixture, len(self.mixture) == 2 and all(0 < v < math.inf for v in self.mixture)),
                  ("seed_order", self.seed_order, len(set(self.seed_order)) == len(self.seed_order)))
        for name, value, ok in checks:
            if not ok:
                raise ValueError(f"seed design: {name}={value!r} is impossible (min_seeds={self.min_seeds}, "
                                 f"max_seeds={self.max_seeds}, group_size={self.group_size}; 1 <= min_seeds <= "
                                 f"max_seeds <= {MAX_SEEDS}, 0 <= failure_bar < reliable_bar <= 1, "
                                 f"0 < alpha < 1, seeds distinct)")

    def seeds(self) -> tuple[int, ...]:
        """The ``max_seeds`` seeds in the order they are handed out."""
        seeds = list(self.seed_order[:self.max_seeds])
        while len(seeds) < self.max_seeds:
            seeds.append(max(seeds, default=-1) + 1)
        return tuple(seeds)

    def in_flight_limit(self) -> int:
        """Seeds a configuration may have running at once after its first ``min_seeds``."""
        return self.max_in_flight or self.group_size

    def interval(self, outcomes: Any) -> tuple[float, float]:
        """The reported interval after ``outcomes`` (0/1, in seed order)."""
        return interval_after(outcomes, self.alpha, self.mixture)

    def fewest_to_decide(self) -> int:
        """Seeds after which a configuration may first be decided, on the quickest outcome paths: all
        successes (RELIABLE), all failures (UNRELIABLE), all failures raced against a configuration of all
        successes (DOMINATED, when racing) and alternating outcomes (SEED-SENSITIVE); at least
        ``min_seeds``, at most ``max_seeds`` (where nothing can be decided sooner). At the defaults: 7,
        from racing (README: 24 for RELIABLE, 7 for 0/n raced against n/n). Computed once per design
        (60-140 ms here; a progress line reads it at every refresh)."""
        return _fewest_to_decide(self)

    def as_dict(self) -> dict[str, Any]:
        """Flat, JSON-ready fields (MLflow params, a searcher checkpoint); ``from_dict`` inverts it."""
        fields = asdict(self)
        return {**fields, "mixture": list(self.mixture), "seed_order": list(self.seed_order)}

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> "SequentialDesign":
        """The design ``as_dict`` wrote.

        Raises:
            ValueError: an impossible value (as the constructor); TypeError: an unknown field.
        """
        return cls(**{**fields, "mixture": tuple(fields.get("mixture", MIXTURE)),
                      "seed_order": tuple(fields.get("seed_order", ()))})


@lru_cache(maxsize=None)
def _fewest_to_decide(design: SequentialDesign) -> int:
    """``SequentialDesign.fewest_to_decide``, cached by design (a frozen, hashable dataclass)."""
    for n in range(design.min_seeds, design.max_seeds):
        wins, losses = design.interval([1] * n), design.interval([0] * n)
        mixed = design.interval([(i + 1) % 2 for i in range(n)])
        lows, highs = np.array([wins[0], losses[0], mixed[0]]), np.array([wins[1], losses[1], mixed[1]])
        if (decide(lows, highs, design.reliable_bar, design.failure_bar) != OPEN).any() or \
                (design.racing and losses[1] < wins[0]):
            return n
    return design.max_seeds
