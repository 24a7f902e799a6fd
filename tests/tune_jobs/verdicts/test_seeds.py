"""Verdict rules, the Wilson interval and grokking steps."""

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from tune_jobs.verdicts.seeds import (
    INCONCLUSIVE, NOT_REPRODUCED, REPRODUCIBLE, SEED_SENSITIVE, child_tags, grokking_step, label, verdict_table,
    wilson_interval,
)


def _wilson_by_formula(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson (1927): (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)."""
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


@pytest.mark.parametrize("k, n", [(0, 3), (2, 3), (3, 3), (2, 5), (7, 20)])
def test_wilson_interval_matches_the_formula(k, n):
    assert wilson_interval(k, n) == pytest.approx(_wilson_by_formula(k, n), abs=1e-12)


def test_wilson_interval_published_values():
    """2 of 5 seeds (the 456p record) -> [0.1176, 0.7693]; 0 of 3 -> [0, 0.5615]."""
    assert wilson_interval(2, 5) == pytest.approx((0.1176, 0.7693), abs=1e-4)
    assert wilson_interval(0, 3) == pytest.approx((0.0, 0.5615), abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="successes=4 must be between 0 and n=3"):
        wilson_interval(4, 3)


@pytest.mark.parametrize("finished, successes, expected", [
    (3, 3, REPRODUCIBLE), (5, 2, SEED_SENSITIVE), (3, 0, NOT_REPRODUCED), (2, 2, INCONCLUSIVE), (0, 0, INCONCLUSIVE),
])
def test_labels(finished, successes, expected):
    assert label(finished, successes) == expected


def test_grokking_step_is_the_first_evaluation_at_threshold():
    steps = [1000, 2000, 3000, 4000]
    assert grokking_step(steps, [0.0, 0.5, 0.995, 0.3]) == 3000
    assert grokking_step(steps, [0.0, 0.0, 0.98, 0.989]) is None
    assert grokking_step(steps, [0.0, 0.99, 1.0, 1.0], threshold=0.99) == 2000


def test_verdict_table():
    trials = pd.DataFrame([
        # config a: 2 of 3 succeed; config b: none; config c: one crash leaves 2 finished seeds
        {"config_id": "a", "seed": 0, "finished": True, "best_exact_match": 1.0, "grokking_step": 8000, "d": 8},
        {"config_id": "a", "seed": 1, "finished": True, "best_exact_match": 0.0, "grokking_step": None, "d": 8},
        {"config_id": "a", "seed": 2, "finished": True, "best_exact_match": 0.995, "grokking_step": 9500, "d": 8},
        {"config_id": "b", "seed": 0, "finished": True, "best_exact_match": 0.2, "grokking_step": None, "d": 7},
        {"config_id": "b", "seed": 1, "finished": True, "best_exact_match": 0.1, "grokking_step": None, "d": 7},
        {"config_id": "b", "seed": 2, "finished": True, "best_exact_match": 0.0, "grokking_step": None, "d": 7},
        {"config_id": "c", "seed": 0, "finished": True, "best_exact_match": 1.0, "grokking_step": 500, "d": 4},
        {"config_id": "c", "seed": 1, "finished": False, "best_exact_match": 1.0, "grokking_step": 500, "d": 4},
        {"config_id": "c", "seed": 2, "finished": True, "best_exact_match": 1.0, "grokking_step": 700, "d": 4},
    ])
    table = verdict_table(trials).set_index("config_id")
    a, b, c = table.loc["a"], table.loc["b"], table.loc["c"]
    assert (a.verdict, a.successes, a.seeds_run, a.errored) == (SEED_SENSITIVE, 2, 3, 0)
    assert a.success_rate == pytest.approx(2 / 3)
    assert (a.wilson_low, a.wilson_high) == pytest.approx(_wilson_by_formula(2, 3))
    assert a.grokking_steps == "8000,-,9500"
    assert (a.mean_best_exact_match, a.min_best_exact_match, a.max_best_exact_match) == pytest.approx(
        (1.995 / 3, 0.0, 1.0))
    assert b.verdict == NOT_REPRODUCED and b.d == 7
    assert (c.verdict, c.seeds_run, c.errored, c.successes) == (INCONCLUSIVE, 2, 1, 2)
    assert list(verdict_table(trials)["config_id"]) == ["c", "a", "b"]  # by success rate, then mean exact match


def test_verdict_table_needs_its_columns():
    with pytest.raises(KeyError, match="grokking_step"):
        verdict_table(pd.DataFrame([{"config_id": "a", "seed": 0, "finished": True, "best_exact_match": 1.0}]))


def test_names_lead_the_table_and_a_shared_name_takes_the_config_id():
    trials = pd.DataFrame([{"name": name, "config_id": cid, "seed": 0, "finished": True, "best_exact_match": 1.0,
                            "grokking_step": 100} for name, cid in (("d8", "a"), ("d8", "b"), ("d16", "c"))])
    table = verdict_table(trials)
    assert list(table.columns[:2]) == ["name", "config_id"]
    assert dict(zip(table["config_id"], table["name"])) == {"a": "d8-a", "b": "d8-b", "c": "d16"}


def test_a_seeds_tags_show_its_configurations_rate_rounded_for_reading():
    row = pd.Series({"verdict": "SEED-SENSITIVE", "success_rate": 2 / 3})
    tags = child_tags(row, SimpleNamespace(finished=True, grokking_step=300.0, status="finished"))
    assert tags == {"verdict": "SEED-SENSITIVE", "config_success_rate": "0.667", "seed_succeeded": "true",
                    "outcome": "success"}
