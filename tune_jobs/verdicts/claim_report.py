"""The record's claims as success rates: claims grouped into cells, and each claim judged against its cell.

A **cell** is a configuration and schedule several claims share (every field of the claim's model and
train sections but the seed); its seeds run in the job ``tune_jobs.report``. Per claim:

- the claimed value, and the **claimed seed's value here** (its run in the claim's own mode);
- the cell's **rate**: the fraction of the cell's seeds on which the claim holds (``Claim.holds`` on the
  claim's protocol: ``protocol/exact_match`` of the seed's best checkpoint, or its best validation exact
  match for ``validation``), with its 95% Wilson interval;
- the record's k/n where the record states the outcome of several seeds or environments: the claims of
  the cell from the same ``source_device``, a claim at_least counted as grokked and an at_most claim as
  not; with two or more, Fisher's exact test (``scipy.stats.fisher_exact``; Fisher 1935) of the
  record's grokked k/n against ours;
- the cell's **time to grok**: Kaplan-Meier (``scipy.stats.ecdf`` over right-censored steps: a seed that
  never grokked is censored at its schedule's end) and the median grokking step (NaN when fewer than
  half grokked);
- one **label**: CLAIM REPRODUCED (the claimed seed meets the claim here), REPRODUCED IN DISTRIBUTION
  (it does not, or did not run, and the claim holds for a fraction r > 0 of the cell's seeds), NOT
  REPRODUCED (no seed meets it), each with " (undecided)" when the cell's seeds ran out before its
  sequential decision (``verdicts.sequential``: UNDECIDED).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from scipy import stats

from tune_jobs.verdicts.claims import CLAIM_REPRODUCED, IN_DISTRIBUTION, NOT_REPRODUCED, Claim
from tune_jobs.verdicts.compare import censored, plot_time_to_grok, rate_p
from tune_jobs.verdicts.figures import MAX_WIDTH
from tune_jobs.verdicts.seeds import wilson_interval

UNDECIDED_SUFFIX = " (undecided)"
CELL_COLUMNS = ("cell", "seed", "finished", "best_exact_match", "protocol_exact_match", "grokking_step",
                "censored_at")
"""Columns of the seed table the verdicts read: one row per fast seed of a cell."""
CLAIMED_COLUMNS = ("finished", "best_exact_match", "protocol_exact_match")
"""Columns of a claimed seed's run the verdicts read (beside ``claim``)."""


@dataclass(frozen=True)
class Cell:
    """Claims that share one configuration and schedule (all fields but the seed)."""

    key: str
    """First 8 hex digits of the SHA-1 of the shared sections as sorted JSON."""
    name: str
    """Readable: the first claim's name without its seed part and the schedule, e.g. '456p 54000 steps'."""
    sections: dict[str, dict[str, Any]]
    """``model`` and ``train`` (without ``seed``) as trial sections."""
    claims: tuple[Claim, ...]

    def protocol(self, seed: Optional[int] = None) -> str:
        """The protocol the cell's seeds (or its claimed ``seed``'s run) are scored on at the end: the
        first of its claims' (those of ``seed``) other than 'validation' (always measured, as the best
        validation exact match), else 'validation'."""
        claims = [c for c in self.claims if seed is None or c.train.seed == seed]
        return next((c.protocol for c in claims if c.protocol != "validation"), "validation")

    def claimed_seeds(self) -> list[int]:
        """The seeds its claims name, each once, in the claims' order."""
        return list(dict.fromkeys(c.train.seed for c in self.claims))


def cells(claims: Sequence[Claim]) -> list[Cell]:
    """The claims grouped into cells, in the order each cell's first claim comes."""
    groups: dict[str, list[Claim]] = {}
    sections: dict[str, dict[str, Any]] = {}
    for claim in claims:
        train = {k: v for k, v in dataclasses.asdict(claim.train).items() if k != "seed"}
        shared = {"model": dataclasses.asdict(claim.model), "train": train}
        key = hashlib.sha1(json.dumps(shared, sort_keys=True, default=str).encode()).hexdigest()[:8]
        groups.setdefault(key, []).append(claim)
        sections.setdefault(key, shared)
    return [Cell(key, f"{_stem(group[0].name)} {sections[key]['train']['train_steps']} steps", sections[key],
                 tuple(group)) for key, group in groups.items()]


def _stem(name: str) -> str:
    """A claim's name without its seed part: '456p-s43-mps' -> '456p', 'd8ff28-lr0.010' as it is."""
    parts = name.split("-")
    return "-".join(parts[:next((i for i, p in enumerate(parts) if p[:1] == "s" and p[1:].isdigit()), len(parts))])


def measured(claim: Claim, seed_row: Any) -> float:
    """A seed's value on the claim's protocol (NaN when it did not finish or that protocol was not scored)."""
    if not bool(seed_row["finished"]):
        return math.nan
    value = seed_row["best_exact_match"] if claim.protocol == "validation" else seed_row["protocol_exact_match"]
    return float(value) if value is not None and not pd.isna(value) else math.nan


def record_counts(cell: Cell, device: str) -> tuple[int, int]:
    """(grokked, claims) of the record on ``device`` for this cell: an at_least claim grokked."""
    same = [c for c in cell.claims if c.source_device == device]
    return sum(c.comparison == "at_least" for c in same), len(same)


def time_to_grok(seeds: pd.DataFrame) -> Optional[float]:
    """Median grokking step of a cell's seeds from the Kaplan-Meier estimate (None when fewer than half grokked)."""
    if seeds.empty or not seeds["grokking_step"].notna().any():
        return None
    curve = stats.ecdf(censored(seeds)).cdf
    reached = [q for q, p in zip(curve.quantiles, curve.probabilities) if p >= 0.5]
    return float(reached[0]) if reached else None


def label(claimed_holds: Optional[bool], rate: float, undecided: bool) -> str:
    """The claim's label (module doc) from whether the claimed seed met it here (None: it did not run),
    the rate over the cell's seeds, and whether the cell's seeds ran out undecided."""
    if claimed_holds:
        verdict = CLAIM_REPRODUCED
    elif rate > 0:
        verdict = IN_DISTRIBUTION
    else:
        verdict = NOT_REPRODUCED
    return verdict + (UNDECIDED_SUFFIX if undecided else "")


def claim_rows(cell_list: Sequence[Cell], seeds: pd.DataFrame, claimed: pd.DataFrame,
               decisions: Optional[dict[str, str]] = None) -> pd.DataFrame:
    """One row per claim (module doc).

    Args:
        cell_list: the cells (``cells``).
        seeds: the fast seeds, ``CELL_COLUMNS`` (``grokking_step`` NaN when never grokked).
        claimed: the claimed seeds' runs in the claim's mode: columns ``claim`` and ``CLAIMED_COLUMNS``
            (a claim absent, or its run not finished, e.g. errored: its claimed seed has no value here and
            ``holds`` is None).
        decisions: cell key -> its sequential decision (UNDECIDED adds the suffix); None under fixed seeds.

    Returns:
        DataFrame with claim, cell, rule, record (device and its outcome), claimed_value, claimed_seed,
        claimed_seed_value, holds, seeds_run, rate, wilson_low, wilson_high, record_k, record_n,
        record_p (Fisher, NaN unless the record has >= 2 claims on that device), median_grokking_step,
        label.
    """
    rows = []
    by_claim = claimed.set_index("claim") if not claimed.empty else pd.DataFrame()
    for cell in cell_list:
        own = seeds[(seeds["cell"] == cell.key) & seeds["finished"].astype(bool)]
        grokked = int(own["grokking_step"].notna().sum())
        median = time_to_grok(own)
        for claim in cell.claims:
            values = [measured(claim, row) for _, row in own.iterrows()]
            holds = sum(claim.holds(v) for v in values)
            low, high = wilson_interval(holds, len(values))
            value = measured(claim, by_claim.loc[claim.name]) if claim.name in by_claim.index else math.nan
            claimed_holds = None if math.isnan(value) else claim.holds(value)  # no run, or no finished one
            k, n = record_counts(cell, claim.source_device)
            decision = (decisions or {}).get(cell.key, "")
            rows.append({"claim": claim.name, "cell": cell.name, "rule": claim.rule(),
                         "record": f"{'grokked' if claim.comparison == 'at_least' else 'did not grok'} on "
                                   f"{claim.source_device}",
                         "claimed_value": claim.claimed_value, "claimed_seed": claim.train.seed,
                         "claimed_seed_value": value, "holds": claimed_holds, "seeds_run": len(values),
                         "rate": holds / len(values) if values else math.nan, "wilson_low": low, "wilson_high": high,
                         "record_k": k, "record_n": n,
                         "record_p": rate_p(k, n, grokked, len(own)) if n >= 2 else math.nan,
                         "median_grokking_step": median, "decision": decision,
                         "label": label(claimed_holds, holds / len(values) if values else 0.0,
                                        decision == "UNDECIDED")})
    return pd.DataFrame(rows)


def claimed_vs_measured(rows: pd.DataFrame) -> Figure:
    """Per claim: the claimed value (a cross), the claimed seed's value here (a dot) and the cell's rate
    with its Wilson interval (a bar), one row per claim; the legend below the axes, where it hides no row."""
    figure = Figure(figsize=(9, 1.6 + 0.4 * max(len(rows), 1)), layout="constrained")
    axes = figure.add_subplot()
    y = list(range(len(rows)))[::-1]
    axes.scatter(rows["claimed_value"], y, marker="x", color="black", label="claimed value")
    axes.scatter(rows["claimed_seed_value"], y, marker="o", color="tab:blue", label="claimed seed here")
    axes.errorbar(rows["rate"], y, xerr=[(rows["rate"] - rows["wilson_low"]).clip(lower=0),
                                          (rows["wilson_high"] - rows["rate"]).clip(lower=0)],
                  fmt="s", color="tab:orange", label="rate over the cell's seeds (95% Wilson)")
    axes.set_yticks(y, [f"{c} ({l})" for c, l in zip(rows["claim"], rows["label"])], fontsize=7)
    axes.set(xlim=(-0.05, 1.05), xlabel="exact match / fraction of seeds meeting the claim")
    figure.legend(*axes.get_legend_handles_labels(), fontsize=7, loc="outside lower center", ncols=3)
    return figure


def time_to_grok_curves(seeds: pd.DataFrame, cell_list: Sequence[Cell]) -> Figure:
    """Kaplan-Meier curves of the fraction of a cell's seeds grokked by each step, one panel per cell
    (titled with its grokked/finished seeds) from step 0 to its schedule's end, censored seeds marked
    (``compare.plot_time_to_grok``); a cell with no finished seed says so in its panel."""
    columns = min(4, max(len(cell_list), 1))
    lines = max(1, math.ceil(len(cell_list) / columns))
    figure = Figure(figsize=(MAX_WIDTH, 2.4 * lines + 0.7), layout="constrained")
    panels = figure.subplots(lines, columns, sharey=True, squeeze=False).ravel()
    for axes, cell in zip(panels, cell_list):
        own = seeds[(seeds["cell"] == cell.key) & seeds["finished"].astype(bool)]
        if own.empty:
            axes.text(0.5, 0.5, "no finished seed", ha="center", va="center", transform=axes.transAxes, fontsize=8)
        else:
            plot_time_to_grok(axes, own)
        grokked = int(own["grokking_step"].notna().sum())
        axes.set_title(f"{cell.name}\n{grokked}/{len(own)} grokked", fontsize=8)
        axes.set_ylim(-0.02, 1.02)
        axes.tick_params(labelsize=7)
        axes.xaxis.set_major_formatter(FuncFormatter(lambda step, _: f"{step / 1000:g}k" if step else "0"))
        axes.grid(alpha=0.3)
    for axes in panels[len(cell_list):]:
        axes.set_visible(False)
    figure.supxlabel("step (censored seeds: |)", fontsize=9)
    figure.supylabel("fraction of seeds grokked", fontsize=9)
    figure.suptitle("Time to grok per cell (Kaplan-Meier, censored at the schedule's end)", fontsize=10)
    return figure
