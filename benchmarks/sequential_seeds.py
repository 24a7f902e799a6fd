"""Sequential against fixed seed designs on simulated sweeps (no training): cost, wrong decisions, coverage.

    python benchmarks/sequential_seeds.py                        # 10,000 sweeps, the default design
    python benchmarks/sequential_seeds.py --max-seeds 12 --sweeps 20000

Each sweep races seven configurations whose true success rates are 0, 0.05, 0.2, 0.5, 0.8, 0.95 and 1.
A seed's cost is the steps it trains: a failing seed the whole 27,000-step schedule, a solved one stops
near its grokking step, drawn uniformly in [9,000, 14,000] (the addition sweep, RESULTS.md). The fixed
design runs ``max_seeds`` seeds per configuration and decides with the 95% Wilson interval against the
same bars, looking once. The sequential design (``tune_jobs.verdicts.sequential``) advances every open
configuration by one seed per round (seeds finishing in seed order), checks its decision and racing after
each, and pays for the seeds still running when it stops (``max_in_flight`` - 1). A decision is wrong when
the true rate contradicts it (RELIABLE with rate <= reliable bar, UNRELIABLE with rate >= failure bar,
SEED-SENSITIVE outside the bars, DOMINATED by a configuration whose rate is not higher). Coverage: the
final interval holds the true rate. "Wilson looked at after every seed": the share of sweeps' paths whose
Wilson interval excluded the true rate at some seed up to ``max_seeds`` (why it cannot be peeked at).
The last line is the sequential design's cost over the fixed design's.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tune_jobs.verdicts.seeds import SEED_SENSITIVE, wilson_interval  # noqa: E402
from tune_jobs.verdicts.sequential import (  # noqa: E402
    DOMINATED, OPEN, RELIABLE, UNDECIDED, UNRELIABLE, SequentialDesign, confidence_sequence, decide, dominated_by,
    sequence_path,
)

RATES = np.array([0.0, 0.05, 0.2, 0.5, 0.8, 0.95, 1.0])
"""True success rates of a sweep's configurations (issue 18)."""
FAILED_STEPS, SOLVED_STEPS = 27_000, (9_000, 14_000)
"""Steps a failing seed trains (the whole schedule) and the range a solved seed stops in."""
LABELS = (RELIABLE, UNRELIABLE, SEED_SENSITIVE, DOMINATED, UNDECIDED)


def draw(sweeps: int, max_seeds: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes (sweeps, configurations, seeds) in seed order, and each seed's cost in steps."""
    rng = np.random.default_rng(seed)
    shape = (sweeps, len(RATES), max_seeds)
    success = rng.random(shape) < RATES[:, None]
    return success, np.where(success, rng.uniform(*SOLVED_STEPS, shape), FAILED_STEPS)


def _at(path: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    return np.take_along_axis(path, (seeds - 1)[..., None], axis=-1)[..., 0]


def _final_labels(low: np.ndarray, high: np.ndarray, design: SequentialDesign) -> tuple[np.ndarray, np.ndarray]:
    own = decide(low, high, design.reliable_bar, design.failure_bar)
    dominator = dominated_by(low, high) if design.racing else np.full(low.shape, -1)
    labels = np.where(own != OPEN, own, np.where(dominator >= 0, DOMINATED, UNDECIDED))
    return labels, dominator


def sequential(success: np.ndarray, costs: np.ndarray, design: SequentialDesign) -> dict[str, np.ndarray]:
    """Seeds paid, labels, dominators and final intervals of the sequential design (module doc)."""
    success, costs = success[..., :design.max_seeds], costs[..., :design.max_seeds]
    low_path, high_path = sequence_path(success, design.alpha, design.mixture)
    top, first, window = design.max_seeds, design.min_seeds, design.in_flight_limit()
    running = np.ones(success.shape[:2], dtype=bool)
    paid = np.full(success.shape[:2], top)
    for t in range(first, top + 1):
        seen = np.where(running, t, np.minimum(t, paid))
        low, high = _at(low_path, seen), _at(high_path, seen)
        stop = decide(low, high, design.reliable_bar, design.failure_bar) != OPEN
        if design.racing:
            stop |= dominated_by(low, high) >= 0
        stop &= running
        paid = np.where(stop, min(top, max(first, t - 1 + window)), paid)
        running &= ~stop
    low, high = _at(low_path, paid), _at(high_path, paid)
    labels, dominator = _final_labels(low, high, design)
    spent = (costs * (np.arange(top) < paid[..., None])).sum(axis=-1)
    return {"paid": paid, "labels": labels, "dominator": dominator, "low": low, "high": high, "cost": spent}


def _wilson_table(n: int) -> tuple[np.ndarray, np.ndarray]:
    table = np.array([[wilson_interval(k, t) if k <= t else (np.nan, np.nan) for t in range(n + 1)]
                      for k in range(n + 1)])
    return table[..., 0], table[..., 1]


def fixed(success: np.ndarray, costs: np.ndarray, design: SequentialDesign) -> dict[str, np.ndarray]:
    """The fixed design: ``max_seeds`` seeds, Wilson interval against the same bars, no racing."""
    success, costs = success[..., :design.max_seeds], costs[..., :design.max_seeds]
    lows, highs = _wilson_table(design.max_seeds)
    k = success.sum(axis=-1)
    low, high = lows[k, design.max_seeds], highs[k, design.max_seeds]
    labels, dominator = _final_labels(low, high, dataclasses.replace(design, racing=False))
    counts = np.cumsum(success, axis=-1)
    seen = np.arange(1, design.max_seeds + 1)
    peeked_miss = ((lows[counts, seen] > RATES[:, None]) | (highs[counts, seen] < RATES[:, None])).any(axis=-1)
    return {"paid": np.full(k.shape, design.max_seeds), "labels": labels, "dominator": dominator, "low": low,
            "high": high, "cost": costs.sum(axis=-1), "peeked_miss": peeked_miss}


def wrong(result: dict[str, np.ndarray], design: SequentialDesign) -> np.ndarray:
    """Per (sweep, configuration): whether its decision contradicts the true rate (module doc)."""
    labels, rate = result["labels"], np.broadcast_to(RATES, result["labels"].shape)
    dominator_rate = RATES[np.maximum(result["dominator"], 0)]
    return np.select([labels == RELIABLE, labels == UNRELIABLE, labels == SEED_SENSITIVE, labels == DOMINATED],
                     [rate <= design.reliable_bar, rate >= design.failure_bar,
                      (rate <= design.failure_bar) | (rate >= design.reliable_bar), rate >= dominator_rate],
                     default=False)


def summary(result: dict[str, np.ndarray], design: SequentialDesign) -> dict[str, float]:
    """Mean cost per sweep, wrong share of decisions made, coverage of the final intervals."""
    decided = result["labels"] != UNDECIDED
    covered = (result["low"] <= RATES) & (RATES <= result["high"])
    errors = wrong(result, design)
    return {"cost": float(result["cost"].sum(axis=-1).mean()), "wrong": float(errors.sum() / max(decided.sum(), 1)),
            "wrong_all": float(errors.mean()), "coverage": float(covered.mean()), "decided": float(decided.mean())}


def per_rate(name: str, result: dict[str, np.ndarray], design: SequentialDesign) -> None:
    """One line per true rate: seeds, decisions, wrong share, coverage."""
    print(f"\n{name}\n  rate  seeds  cost/cfg(k steps)  " + "  ".join(f"{label[:10]:>10}" for label in LABELS)
          + "   wrong  coverage")
    errors = wrong(result, design)
    covered = (result["low"] <= RATES) & (RATES <= result["high"])
    for c, rate in enumerate(RATES):
        shares = "  ".join(f"{(result['labels'][:, c] == label).mean():>10.3f}" for label in LABELS)
        print(f"  {rate:4.2f}  {result['paid'][:, c].mean():5.1f}  {result['cost'][:, c].mean() / 1e3:17.1f}  "
              f"{shares}  {errors[:, c].mean():6.4f}  {covered[:, c].mean():8.4f}")


def seeds_needed(design: SequentialDesign, limit: int = 400) -> dict[str, int]:
    """Fewest seeds for each decision at ``design``: all successes, all failures, half, and racing
    0/n against n/n; and the Wilson interval's all-success figure at the reliable bar."""
    n = np.arange(1, limit + 1)
    ones_low, _ = confidence_sequence(n, n, design.alpha, design.mixture)
    _, zeros_high = confidence_sequence(0, n, design.alpha, design.mixture)
    half_low, half_high = confidence_sequence(n // 2, n, design.alpha, design.mixture)
    wilson_low = np.array([wilson_interval(t, t, 1 - design.alpha)[0] for t in n])

    def first(hit: np.ndarray) -> int:
        return int(n[hit][0]) if hit.any() else -1

    return {"RELIABLE (all succeed)": first(ones_low > design.reliable_bar),
            "UNRELIABLE (all fail)": first(zeros_high < design.failure_bar),
            "SEED-SENSITIVE (half succeed)": first((half_low > design.failure_bar) & (half_high < design.reliable_bar)),
            "DOMINATED (0/n raced against n/n)": first(zeros_high < ones_low),
            f"Wilson {1 - design.alpha:.0%} interval clears {design.reliable_bar} (all succeed)":
                first(wilson_low > design.reliable_bar)}


def choices(success: np.ndarray, costs: np.ndarray, design: SequentialDesign) -> None:
    """The cost ratio, wrong share and coverage with one field changed at a time from ``design``."""
    print("\ndesign choices (one change from the default; fixed design with the same max_seeds):")
    print("  change                          cost ratio  wrong(seq)  coverage(seq)  wrong(fixed)  coverage(fixed)")
    changes = [("default", {}), ("max_seeds=12", {"max_seeds": 12}), ("max_seeds=20", {"max_seeds": 20}),
               ("alpha=0.1", {"alpha": 0.1}), ("bars 0.1/0.9", {"failure_bar": 0.1, "reliable_bar": 0.9}),
               ("bars 0.25/0.75", {"failure_bar": 0.25, "reliable_bar": 0.75}),
               ("mixture Beta(1, 1)", {"mixture": (1.0, 1.0)}), ("mixture Beta(0.25, 0.25)", {"mixture": (0.25, 0.25)}),
               ("max_in_flight=3", {"max_in_flight": 3}), ("racing off", {"racing": False})]
    for name, fields in changes:
        changed = dataclasses.replace(design, **fields)
        seq = summary(sequential(success, costs, changed), changed)
        fix = summary(fixed(success, costs, changed), changed)
        print(f"  {name:30}  {seq['cost'] / fix['cost']:10.2f}  {seq['wrong']:10.4f}  {seq['coverage']:13.4f}  "
              f"{fix['wrong']:12.4f}  {fix['coverage']:15.4f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=10_000)
    parser.add_argument("--min-seeds", type=int, default=3)
    parser.add_argument("--max-seeds", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation")
    parser.add_argument("--no-choices", action="store_true", help="skip the table of design choices")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    design = SequentialDesign(min_seeds=args.min_seeds, max_seeds=args.max_seeds)
    success, costs = draw(args.sweeps, max(args.max_seeds, 30), args.seed)
    print(f"{args.sweeps} simulated sweeps of {len(RATES)} configurations (true success rates "
          f"{', '.join(f'{r:g}' for r in RATES)}); a failing seed costs {FAILED_STEPS} steps, a solved one "
          f"U{SOLVED_STEPS}\nsequential design: {design.as_dict()}")
    seq, fix = sequential(success, costs, design), fixed(success, costs, design)
    racing = "on" if design.racing else "off"
    per_rate(f"sequential design (beta-binomial mixture confidence sequence, racing {racing})", seq, design)
    per_rate(f"fixed design ({design.max_seeds} seeds, Wilson interval, same bars)", fix, design)
    s, f = summary(seq, design), summary(fix, design)
    print(f"\ncost per sweep (M steps): sequential {s['cost'] / 1e6:.2f}, fixed {f['cost'] / 1e6:.2f}")
    print(f"wrong decisions (share of decisions made): sequential {s['wrong']:.4f}, fixed {f['wrong']:.4f} "
          f"(alpha {design.alpha}); "
          f"of all configurations: sequential {s['wrong_all']:.4f}, fixed {f['wrong_all']:.4f}")
    print(f"configurations decided: sequential {s['decided']:.3f}, fixed {f['decided']:.3f}")
    print(f"coverage of the final intervals: sequential {s['coverage']:.4f}, fixed (Wilson) {f['coverage']:.4f}; "
          f"Wilson looked at after every seed up to {design.max_seeds}: {1 - fix['peeked_miss'].mean():.4f}")
    print("seeds needed at the default design:")
    for name, count in seeds_needed(design).items():
        print(f"  {name}: {count}")
    if not args.no_choices:
        choices(success, costs, design)
    print(f"\n(ran in {time.perf_counter() - started:.0f} s)")
    print(f"cost ratio sequential/fixed: {s['cost'] / f['cost']:.2f}")


if __name__ == "__main__":
    main()
