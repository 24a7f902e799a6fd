"""The anytime-valid confidence sequence, its decision rule, racing, and the seed allocation policy."""

import json
import math

import numpy as np
import pytest
from scipy.special import betaln

from tune_jobs.verdicts.allocation import SeedAllocation
from tune_jobs.verdicts.seeds import SEED_SENSITIVE
from tune_jobs.verdicts.sequential import (
    DOMINATED, OPEN, RELIABLE, UNDECIDED, UNRELIABLE, SequentialDesign, confidence_sequence, decide, dominated_by,
    interval_after, sequence_path,
)


def test_all_successes_lower_bound_has_the_closed_form():
    """n successes of n: the lower end solves p^n = alpha B(a + n, b) / B(a, b) (module doc's M_n)."""
    for n, mixture in ((5, (1.0, 1.0)), (24, (0.5, 0.5)), (40, (0.25, 0.25))):
        low, high = confidence_sequence(n, n, 0.05, mixture)
        closed = math.exp((math.log(0.05) + betaln(mixture[0] + n, mixture[1]) - betaln(*mixture)) / n)
        assert float(low) == pytest.approx(closed, abs=1e-9) and float(high) == 1.0


def test_uniform_mixture_values():
    """Beta(1, 1): 3/3 -> low = (0.05 / 4)^(1/3); an empty record gives [0, 1]; the sequence is symmetric."""
    low, _ = confidence_sequence(3, 3, 0.05, (1.0, 1.0))
    assert float(low) == pytest.approx(0.0125 ** (1 / 3), abs=1e-9)
    assert tuple(map(float, confidence_sequence(0, 0))) == (0.0, 1.0)
    low7, high7 = confidence_sequence(7, 20)
    low13, high13 = confidence_sequence(13, 20)
    assert float(low7) == pytest.approx(1 - float(high13)) and float(high7) == pytest.approx(1 - float(low13))


def test_interval_holds_the_estimate_and_narrows_with_seeds():
    for k, n in ((0, 5), (2, 5), (10, 20), (19, 20)):
        low, high = confidence_sequence(k, n)
        assert low <= k / n <= high
    widths = [float(np.subtract(*confidence_sequence(n // 2, n)[::-1])) for n in (4, 16, 64, 256)]
    assert widths == sorted(widths, reverse=True)


def test_anytime_valid_is_wider_than_wilson_and_needs_24_all_success_seeds_to_clear_08():
    n = np.arange(1, 40)
    low, _ = confidence_sequence(n, n)
    assert int(n[low > 0.8][0]) == 24 and int(n[low > 0.5][0]) == 7


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="successes must lie between 0 and n"):
        confidence_sequence(4, 3)
    with pytest.raises(ValueError, match="alpha must lie in"):
        confidence_sequence(1, 3, alpha=1.5)
    with pytest.raises(ValueError, match="mixture must be two positive numbers"):
        confidence_sequence(1, 3, mixture=(0.0, 1.0))


@pytest.mark.parametrize("rate", [0.05, 0.3, 0.5, 0.9])
def test_time_uniform_coverage_by_simulation(rate):
    """The true rate lies in the running-intersection interval at every one of 200 seeds, in >= 95% of
    2,000 seeded sequences (Ville's inequality), and the reported intervals never widen."""
    outcomes = np.random.default_rng(7).random((2000, 200)) < rate
    low, high = sequence_path(outcomes)
    covered = ((low <= rate) & (rate <= high)).all(axis=-1)
    assert covered.mean() >= 0.95
    assert (np.diff(low, axis=-1) >= 0).all() and (np.diff(high, axis=-1) <= 0).all()


def test_path_entries_match_the_prefix_intervals():
    outcomes = [1, 1, 0, 1, 1, 1, 0, 1]
    low, high = sequence_path(outcomes)
    for t in range(1, len(outcomes) + 1):
        assert interval_after(outcomes[:t]) == (low[t - 1], high[t - 1])
    first_low, first_high = confidence_sequence(1, 1)
    assert (low[0], high[0]) == (first_low, first_high)


def test_decision_rule():
    assert decide(0.85, 1.0).tolist() == RELIABLE
    assert decide(0.0, 0.1).tolist() == UNRELIABLE
    assert decide(0.3, 0.7).tolist() == SEED_SENSITIVE
    assert decide(0.1, 0.7).tolist() == OPEN and decide(0.3, 0.9).tolist() == OPEN
    assert decide(0.8, 1.0).tolist() == OPEN  # on the bar is not above it


def test_racing_names_the_best_configuration():
    lows, highs = [0.0, 0.6, 0.6, 0.3], [0.5, 1.0, 0.9, 0.8]
    assert dominated_by(lows, highs).tolist() == [1, -1, -1, -1]
    assert dominated_by([[0.0, 0.4], [0.5, 0.0]], [[0.3, 1.0], [1.0, 0.45]]).tolist() == [[1, -1], [-1, 0]]


def _design(**fields):
    return SequentialDesign(**{"min_seeds": 3, "max_seeds": 30, **fields})


def _run(allocation, config_id, outcomes):
    """Hand out and finish seeds one by one until the policy stops; returns the seeds handed out."""
    handed = []
    while group := allocation.next_group(config_id):
        handed.extend(group)
        if len(handed) >= allocation.design.min_seeds:
            for seed in handed:
                if seed not in allocation._configs[config_id].outcomes:
                    allocation.finish(config_id, seed, outcomes[seed])
    return handed


def test_first_group_is_min_seeds_then_one_after_each_finished():
    allocation = SeedAllocation(_design())
    assert [allocation.next_group("a") for _ in range(4)] == [(0,), (1,), (2,), ()]
    allocation.finish("a", 1, True)
    assert allocation.next_group("a") == ()  # seeds 0 and 2 still running, group size 1
    allocation.finish("a", 0, True)
    allocation.finish("a", 2, True)
    assert allocation.next_group("a") == (3,)
    assert allocation.decision("a").label == OPEN and allocation.decision("a").cs_seeds == 3


def test_stopping_rules_at_the_default_bars():
    allocation = SeedAllocation(_design(racing=False))
    assert _run(allocation, "good", [True] * 30) == list(range(24))
    assert _run(allocation, "bad", [False] * 30) == list(range(24))
    assert len(_run(allocation, "half", [True, False] * 15)) == 22
    assert _run(allocation, "mostly", [True, True, True, False] * 8) == list(range(30))
    labels = {d.config_id: d.label for d in allocation.decisions()}
    assert labels == {"good": RELIABLE, "bad": UNRELIABLE, "half": SEED_SENSITIVE, "mostly": UNDECIDED}


def _race(allocation, outcomes):
    """Configurations take turns: each starts what the policy gives, then finishes its oldest running seed."""
    for _ in range(100):
        for config_id, results in outcomes.items():
            while allocation.next_group(config_id):
                pass
            seeds = allocation._configs[config_id]
            running = [s for s in seeds.started if s not in seeds.outcomes]
            if running:
                allocation.finish(config_id, running[0], results[running[0]])


def test_racing_stops_the_dominated_configuration_and_names_the_dominator():
    allocation = SeedAllocation(_design(max_seeds=12))
    _race(allocation, {"control": [True] * 12, "512p": [False] * 12})
    fast, slow = allocation.decision("control"), allocation.decision("512p")
    assert slow.label == DOMINATED and slow.dominated_by == "control" and slow.seeds_started == 7
    assert fast.label == UNDECIDED and fast.seeds_started == 12 and fast.dominated_by is None
    alone = SeedAllocation(_design(max_seeds=12, racing=False))
    _race(alone, {"control": [True] * 12, "512p": [False] * 12})
    assert alone.decision("512p").label == UNDECIDED and alone.decision("512p").seeds_started == 12


def test_seed_order_prefix_ignores_finishing_order_and_skips_crashes():
    allocation = SeedAllocation(_design(seed_order=(42, 7)))
    assert [allocation.next_group("a") for _ in range(3)] == [(42,), (7,), (43,)]
    allocation.finish("a", 7, True)
    allocation.finish("a", 43, True)
    decision = allocation.decision("a")
    assert (decision.cs_seeds, decision.seeds_run, decision.successes, decision.in_flight) == (0, 2, 2, 1)
    allocation.error("a", 42)
    decision = allocation.decision("a")
    assert (decision.cs_seeds, decision.cs_successes, decision.errored) == (2, 2, 1)
    with pytest.raises(KeyError, match="seed 42 of configuration 'a' is not running"):
        allocation.finish("a", 42, True)


def test_restored_allocation_continues_the_same_decisions():
    rng = np.random.default_rng(3)
    outcomes = {c: list(rng.random(30) < rate) for c, rate in (("a", 0.9), ("b", 0.1), ("c", 0.5))}
    straight = SeedAllocation(_design())
    resumed = SeedAllocation(_design())
    for step in range(200):
        config_id = "abc"[step % 3]
        for allocation in (straight, resumed):
            for seed in allocation.next_group(config_id):
                allocation.finish(config_id, seed, bool(outcomes[config_id][seed]))
        if step == 10:
            resumed = SeedAllocation.from_dict(json.loads(json.dumps(resumed.to_dict())))
    assert straight.decisions() == resumed.decisions()
    assert [d.label for d in straight.decisions()] != [OPEN] * 3


def test_design_refuses_impossible_values():
    with pytest.raises(ValueError, match=r"seed design: max_seeds=2 is impossible \(min_seeds=3, max_seeds=2"):
        SequentialDesign(min_seeds=3, max_seeds=2)
    with pytest.raises(ValueError, match="failure_bar=0.9 is impossible"):
        _design(failure_bar=0.9)
    with pytest.raises(ValueError, match="alpha=0 is impossible"):
        _design(alpha=0)
    assert SequentialDesign.from_dict(_design(mixture=(1, 2)).as_dict()) == _design(mixture=(1.0, 2.0))
    assert _design(seed_order=(5, 3)).seeds()[:4] == (5, 3, 6, 7)
