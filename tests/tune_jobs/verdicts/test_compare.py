"""Two samples compared per configuration: exact tests, log-rank, seed matching, first differing step."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from matplotlib.figure import Figure

from tune_jobs.verdicts.compare import (compare_configurations, first_differing_step, logrank_p,
                                        plot_time_to_grok, rate_p, seed_table, time_to_grok_figure)

NAN = math.nan


def sample(config: str, seeds: dict[int, float], horizon: int = 26999) -> pd.DataFrame:
    """seed -> grokking step (NaN: never grokked) of one configuration."""
    return pd.DataFrame([{"config_id": config, "name": f"n-{config}", "seed": s, "success": float(not math.isnan(g)),
                          "grokking_step": g, "censored_at": horizon} for s, g in seeds.items()])


def test_fisher_exact_p_values():
    assert rate_p(2, 3, 2, 3) == 1.0
    assert rate_p(2, 3, 0, 3) == pytest.approx(0.4)  # hypergeometric: (1 + 1) / 5 over tables as extreme
    assert rate_p(10, 10, 0, 10) == pytest.approx(2 / 184756, rel=1e-9)  # 2 / C(20, 10)
    assert math.isnan(rate_p(0, 0, 1, 3))


def test_log_rank():
    early, late = sample("c", {s: 1000.0 + s for s in range(8)}), sample("c", {s: 20000.0 + s for s in range(8)})
    assert logrank_p(early, late) < 0.001
    assert logrank_p(early, early) == pytest.approx(1.0)
    assert math.isnan(logrank_p(sample("c", {0: NAN}), sample("c", {0: NAN})))


def test_the_records_two_cpus_same_rate_different_seeds():
    # d8/ff28 on the Intel box (2026-12-01) and on the AMD box (2026-12-02), issue 19
    intel, amd = sample("d8", {0: 14000.0, 1: 9000.0, 2: NAN}), sample("d8", {0: 12000.0, 1: 12000.0, 2: NAN})
    row = compare_configurations(intel, amd).iloc[0]
    assert (row["successes_a"], row["seeds_a"], row["successes_b"], row["seeds_b"]) == (2, 3, 2, 3)
    assert row["p_rate"] == 1.0 and row["matched_seeds"] == 3 and row["disagreeing_seeds"] == ""
    assert row["action"].startswith("same rate, same seeds (2/3 vs 2/3, p = 1")


def test_456p_cuda_against_mps():
    # the record: on CUDA seeds 43 and 44 grokked, 42, 45, 46 did not; on MPS 43 and 44 did not
    cuda = sample("456p", {42: NAN, 43: 30000.0, 44: 40000.0, 45: NAN, 46: NAN}, 53999)
    mps = sample("456p", {43: NAN, 44: NAN}, 53999)
    row = compare_configurations(cuda, mps).iloc[0]
    assert row["p_rate"] == pytest.approx(1.0) and row["matched_seeds"] == 2
    assert row["action"] == ("same rate, different seeds: seed 43 grokked only in A, seed 44 grokked only in A "
                             "(2/5 vs 0/2, p = 1)")


def test_rates_differ_and_one_sided_configurations():
    a = pd.concat([sample("x", {s: 100.0 for s in range(10)}), sample("y", {0: NAN})])
    b = sample("x", {s: NAN for s in range(10)})
    table = compare_configurations(a, b)
    assert list(table["config_id"]) == ["x", "y"]
    assert table.iloc[0]["action"].startswith("rates differ, p = 1.08e-05 (10/10 vs 0/10")
    assert table.iloc[1]["action"] == "not comparable: run on one side only (0/1 vs 0/0)"
    with pytest.raises(KeyError, match="censored_at"):
        compare_configurations(a.drop(columns="censored_at"), b)


def test_first_differing_step_and_seed_table():
    a = pd.Series([2.5, 2.0, 1.5], index=[0, 20, 39])
    assert first_differing_step(a, a.copy()) is None
    assert first_differing_step(a, pd.Series([2.5, math.nextafter(2.0, 3.0), 1.5], index=[0, 20, 39])) == 20
    assert first_differing_step(a, a.iloc[:2]) == 39
    assert first_differing_step(pd.Series([NAN], index=[0]), pd.Series([NAN], index=[0])) is None
    a_s, b_s = sample("c", {0: 10.0, 1: NAN}), sample("c", {0: 10.0, 1: 30.0})
    table = seed_table(a_s, b_s, {("c", 0): None, ("c", 1): 20})
    assert list(table["first_differing_step"]) == ["identical", 20] and list(table["agree"]) == [True, False]


def test_figure_has_one_panel_per_shared_configuration():
    a = pd.concat([sample("x", {0: 100.0, 1: NAN}), sample("y", {0: 50.0})])
    b = pd.concat([sample("x", {0: 200.0, 1: 300.0}), sample("y", {0: NAN})])
    figure = time_to_grok_figure(a, b, ("A", "B"))
    assert [axis.get_title() for axis in figure.axes] == ["n-x", "n-y"]
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == ["A (1/2)", "B (2/2)"]


def test_the_kaplan_meier_line_runs_from_step_zero_to_the_schedules_end_with_censored_seeds_marked():
    axes = Figure().add_subplot()
    # 4 seeds: grokked at 100 and 300, two censored at the schedule's end 1000 (the Kaplan-Meier estimate
    # without earlier censoring is the empirical fraction: 1/4 by 100, 2/4 by 300)
    line = plot_time_to_grok(axes, sample("c", {0: 100.0, 1: NAN, 2: 300.0, 3: NAN}, horizon=1000), label="c")
    assert list(line.get_xdata()) == [0.0, 100.0, 300.0, 1000.0]
    assert list(line.get_ydata()) == [0.0, 0.25, 0.5, 0.5]
    assert line.get_drawstyle() == "steps-post" and line.get_label() == "c"
    marks = [m for m in axes.get_lines() if m is not line]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [1000.0, 1000.0]
    assert list(marks[0].get_ydata()) == [0.5, 0.5] and marks[0].get_color() == line.get_color()
    never = Figure().add_subplot()
    assert list(plot_time_to_grok(never, sample("c", {0: NAN}, horizon=27000)).get_xdata()) == [0.0, 27000.0]
