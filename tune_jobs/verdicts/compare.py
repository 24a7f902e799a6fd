"""Two samples of seed runs compared per configuration: success rates, time to grok, seed by seed.

A sample is a table with one row per (configuration, seed): ``SAMPLE_COLUMNS``. Per configuration the
two success rates get Wilson intervals and Fisher's exact test of their difference (two-sided,
``scipy.stats.fisher_exact``; Fisher 1935); the time-to-grok distributions, each seed censored at its
schedule's last step when it never grokked, get a log-rank test (``scipy.stats.logrank``; Mantel 1966)
and Kaplan-Meier curves (``scipy.stats.ecdf``, drawn by ``plot_time_to_grok``); and each seed run on
both sides is matched: its outcome, its grokking step on each side and, given both loss traces, the
first step where they differ.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy import stats

from tune_jobs.verdicts.seeds import wilson_interval

SAMPLE_COLUMNS = ("config_id", "name", "seed", "success", "grokking_step", "censored_at")
"""A sample's columns: ``success`` 0/1, ``grokking_step`` NaN when the seed never grokked (censored at
``censored_at``, its schedule's last step)."""
ALPHA = 0.05
"""Significance level of the action lines."""


def first_differing_step(a: pd.Series, b: pd.Series) -> Optional[int]:
    """First step (index) where two traces (step -> value) differ, a step only one side has counting
    as a difference; None when they are bit-identical (same steps, equal floats, NaN equal to NaN)."""
    for step in sorted(set(a.index) | set(b.index)):
        if step not in a.index or step not in b.index:
            return int(step)
        x, y = float(a[step]), float(b[step])
        if x != y and not (math.isnan(x) and math.isnan(y)):
            return int(step)
    return None


def censored(sample: pd.DataFrame) -> stats.CensoredData:
    """The grokking steps of a sample as survival data: grokked seeds are events at their step, the
    others right-censored at ``censored_at``."""
    grokked = sample["grokking_step"].notna()
    return stats.CensoredData(uncensored=sample.loc[grokked, "grokking_step"].astype(float).to_numpy(),
                              right=sample.loc[~grokked, "censored_at"].astype(float).to_numpy())


def plot_time_to_grok(axes: Axes, sample: pd.DataFrame, **style: Any) -> Line2D:
    """Draw a sample's Kaplan-Meier estimate of the fraction of seeds grokked by each step (one minus the
    survival function of ``censored(sample)``) on ``axes``: a step line from (0, 0) to the sample's last
    step, each censored seed (one that never grokked) a '|' on the line at its censoring step. ``style``
    goes to the line (``label``, ``color``); returns it."""
    curve = stats.ecdf(censored(sample)).cdf
    line, = axes.step([0.0, *curve.quantiles], [0.0, *curve.probabilities], where="post", **style)
    at = sample.loc[sample["grokking_step"].isna(), "censored_at"].astype(float).to_numpy()
    axes.plot(at, curve.evaluate(at), linestyle="none", marker="|", markersize=10, color=line.get_color())
    return line


def logrank_p(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Two-sided log-rank p-value of the time-to-grok distributions of two samples; NaN when either is
    empty or no seed grokked on either side (nothing to rank)."""
    if a.empty or b.empty or not (a["grokking_step"].notna().any() or b["grokking_step"].notna().any()):
        return math.nan
    return float(stats.logrank(censored(a), censored(b)).pvalue)


def rate_p(k_a: int, n_a: int, k_b: int, n_b: int) -> float:
    """Two-sided Fisher exact p-value that two success rates k_a/n_a and k_b/n_b differ (NaN if a side is empty)."""
    if n_a == 0 or n_b == 0:
        return math.nan
    return float(stats.fisher_exact([[k_a, n_a - k_a], [k_b, n_b - k_b]]).pvalue)


def match_seeds(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Seeds run on both sides, one row per (config_id, seed): ``success_a/_b``, ``grokking_step_a/_b``
    and ``agree`` (same outcome)."""
    keep = ["config_id", "seed", "success", "grokking_step"]
    matched = a[keep].merge(b[keep], on=["config_id", "seed"], suffixes=("_a", "_b"))
    return matched.assign(agree=matched["success_a"] == matched["success_b"])


def _side(sample: pd.DataFrame, suffix: str) -> dict[str, float]:
    n, k = len(sample), int(sample["success"].sum())
    low, high = wilson_interval(k, n)
    return {f"successes_{suffix}": k, f"seeds_{suffix}": n, f"wilson_low_{suffix}": low, f"wilson_high_{suffix}": high}


def action_line(row: Mapping, alpha: float = ALPHA) -> str:
    """One line a reader can act on, e.g. 'rates differ, p = 0.012', 'same rate, different seeds (...)'."""
    rates = f"{row['successes_a']}/{row['seeds_a']} vs {row['successes_b']}/{row['seeds_b']}"
    if not row["seeds_a"] or not row["seeds_b"]:
        return f"not comparable: run on one side only ({rates})"
    if row["p_rate"] < alpha:
        return f"rates differ, p = {row['p_rate']:.3g} ({rates})"
    if row["disagreeing_seeds"]:
        return f"same rate, different seeds: {row['disagreeing_seeds']} ({rates}, p = {row['p_rate']:.3g})"
    timing = "" if math.isnan(row["p_logrank"]) else f", time to grok log-rank p = {row['p_logrank']:.3g}"
    return f"same rate, same seeds ({rates}, p = {row['p_rate']:.3g}{timing})"


def _disagreeing(matched: pd.DataFrame) -> str:
    """'seed 2 grokked only in A, seed 5 only in B' for the matched seeds whose outcomes differ."""
    parts = [f"seed {int(r.seed)} grokked only in {'A' if r.success_a else 'B'}"
             for r in matched[~matched["agree"]].itertuples()]
    return ", ".join(parts)


def compare_configurations(a: pd.DataFrame, b: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per configuration of either sample: each side's successes, seeds and 95% Wilson interval,
    ``p_rate`` (Fisher), ``p_logrank`` (time to grok), ``matched_seeds``, ``disagreeing_seeds`` and the
    ``action`` line; configurations run on both sides first.

    Raises:
        KeyError: a sample lacks one of ``SAMPLE_COLUMNS``.
    """
    for sample in (a, b):
        missing = [c for c in SAMPLE_COLUMNS if c not in sample.columns]
        if missing:
            raise KeyError(f"a sample lacks the columns {missing}")
    names = pd.concat([a, b])[["config_id", "name"]].drop_duplicates("config_id")
    rows = []
    for config, name in names.itertuples(index=False):
        side_a, side_b = a[a["config_id"] == config], b[b["config_id"] == config]
        matched = match_seeds(side_a, side_b)
        row = {"name": name, "config_id": config, **_side(side_a, "a"), **_side(side_b, "b"),
               "p_rate": rate_p(int(side_a["success"].sum()), len(side_a), int(side_b["success"].sum()), len(side_b)),
               "p_logrank": logrank_p(side_a, side_b), "matched_seeds": len(matched),
               "disagreeing_seeds": _disagreeing(matched)}
        rows.append({**row, "action": action_line(row, alpha)})
    table = pd.DataFrame(rows)
    both = (table["seeds_a"] > 0) & (table["seeds_b"] > 0)
    return pd.concat([table[both], table[~both]], ignore_index=True)


def seed_table(a: pd.DataFrame, b: pd.DataFrame, first_steps: Mapping[tuple[str, int], Optional[int]]) -> pd.DataFrame:
    """The matched seeds (``match_seeds``) with ``first_differing_step`` of their loss traces from
    ``first_steps`` ((config_id, seed) -> step or None; absent: traces not compared)."""
    matched = match_seeds(a, b)
    steps = [first_steps.get((c, int(s)), "not compared") for c, s in zip(matched["config_id"], matched["seed"])]
    return matched.assign(first_differing_step=["identical" if s is None else s for s in steps])


def time_to_grok_figure(a: pd.DataFrame, b: pd.DataFrame, labels: tuple[str, str]) -> Figure:
    """Kaplan-Meier curves of the fraction of seeds grokked by each step, side A against side B, one panel
    per configuration run on both sides (a matplotlib Figure)."""
    configs = [c for c in a["config_id"].unique() if c in set(b["config_id"])] or list(a["config_id"].unique())[:1]
    figure = Figure(figsize=(4.5 * max(1, len(configs)), 3.5))
    axes = figure.subplots(1, max(1, len(configs)), squeeze=False)
    for axis, config in zip(axes[0], configs):
        for sample, label, colour in ((a, labels[0], "tab:blue"), (b, labels[1], "tab:orange")):
            side = sample[sample["config_id"] == config]
            if not side.empty:
                plot_time_to_grok(axis, side, label=f"{label} ({int(side['success'].sum())}/{len(side)})", color=colour)
        name = pd.concat([a, b]).loc[lambda t: t["config_id"] == config, "name"].iloc[0]
        axis.set(title=str(name), xlabel="step", ylabel="fraction of seeds grokked", ylim=(-0.02, 1.02))
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure
