"""Figures of a job's verdicts, each a pure function of its tables (matplotlib, no pyplot state).

Every function returns a ``matplotlib.figure.Figure`` labelled by the configurations' readable names
(``name`` column) and, where the tables have it, their parameter counts. The jobs log them on the
parent MLflow run (``figures/*.png``, shown in its description):

- ``success_rates``: success rate per configuration with its 95% Wilson interval (``verdicts.seeds``);
- ``learning_curves``: a reported metric against step for every seed, one panel per configuration;
- ``grokking_steps``: the grokking step of every seed, seeds that never reached the threshold marked;
- ``bits_per_byte``: validation bits per byte of every seed per configuration, against vocabulary
  size when it varies (``verdicts.lm``);
- ``claim_values``: a claim's value and bound against each run's measured value (``verdicts.claims``);
- ``confidence_sequences``: under sequential seeds, each configuration's anytime-valid interval after
  every seed it read, with the design's bars (``verdicts.sequential``).
"""

from __future__ import annotations

import math
from typing import Optional

import pandas as pd
from matplotlib.figure import Figure

from tune_jobs.verdicts.allocation import replayed
from tune_jobs.verdicts.claims import Claim
from tune_jobs.verdicts.readable import readable_text
from tune_jobs.verdicts.sequential import SequentialDesign, sequence_path

VERDICT_COLOURS = {"REPRODUCIBLE": "#2e7d32", "CONSISTENT": "#2e7d32", "SEED-SENSITIVE": "#ef6c00",
                   "NOT REPRODUCED": "#c62828", "SUSPECT": "#c62828", "RELIABLE": "#2e7d32",
                   "UNRELIABLE": "#c62828", "DOMINATED": "#c62828"}
"""Bar colour of a verdict (any other verdict, INCONCLUSIVE, UNDECIDED or INTERRUPTED, is grey)."""
GREY = "#9e9e9e"
PARAMETER_COLUMNS = ("parameters", "model/parameters")
"""Verdict-table columns holding a configuration's parameter count (addition, language model)."""
MAX_PANELS = 12
"""Learning-curve panels drawn at most (the first configurations of the verdict table, best first)."""
MAX_WIDTH = 9.6
"""A figure's width at most, in inches: 960 px at matplotlib's 100 dpi (MLflow saves at the figure's
dpi), so the parent run's page shows it without scrolling sideways or clipping its side bar."""


def config_label(row: pd.Series) -> str:
    """'d8-ff28-lr0.015 (1,128 params)': a verdict row's name (else config id) and parameter count."""
    name = str(row.get("name", row.get("config_id", "?")))
    for column in PARAMETER_COLUMNS:
        value = row.get(column)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            return f"{name} ({int(value):,} params)"
    return name


def _height(rows: int) -> float:
    return 1.6 + 0.45 * max(rows, 1)


def success_rates(verdicts: pd.DataFrame, title: str = "Success rate per configuration") -> Figure:
    """Horizontal bars of ``success_rate`` with ``wilson_low``/``wilson_high`` error bars, best on top,
    annotated 'successes/seeds verdict'. A configuration with no finished seed gets no bar."""
    figure = Figure(figsize=(9, _height(len(verdicts))), layout="constrained")
    axes = figure.add_subplot()
    rows = list(verdicts.iloc[::-1].iterrows())
    for y, (_, row) in enumerate(rows):
        rate = row["success_rate"]
        colour = VERDICT_COLOURS.get(row["verdict"], GREY)
        note = f"{row['successes']}/{row['seeds_run']} {row['verdict']}"
        if row.get("errored"):
            note += f", {row['errored']} errored"
        if isinstance(rate, float) and math.isnan(rate):
            axes.text(0.01, y, f"no finished seed: {note}", va="center", fontsize=9)
            continue
        error = [[rate - row["wilson_low"]], [row["wilson_high"] - rate]]
        axes.barh(y, rate, color=colour, alpha=0.8, height=0.6)
        axes.errorbar(rate, y, xerr=error, fmt="none", ecolor="black", capsize=4)
        axes.text(min(row["wilson_high"], 1.0) + 0.02, y, note, va="center", fontsize=9)
    axes.set_yticks(range(len(rows)), [config_label(row) for _, row in rows])
    axes.set_ylim(-0.6, len(rows) - 0.4)
    axes.set_xlim(0, 1.6)
    axes.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    axes.set_xlabel("success rate (bars: 95% Wilson interval)")
    axes.set_title(title)
    axes.grid(axis="x", alpha=0.3)
    return figure


def learning_curves(curves: pd.DataFrame, verdicts: pd.DataFrame, metric: str,
                    threshold: Optional[float] = None, max_panels: int = MAX_PANELS) -> Figure:
    """``metric`` (the curves' ``value``) against ``step``, one line per trial (seed), one panel per configuration
    in verdict order (the first ``max_panels``), with ``threshold`` as a dashed line when given. A seed
    stopped once solved (the curves' ``carried`` rows) ends in a bar at its stop, a dotted line to its
    carried value at the schedule's end, and '(solved, stopped at <step>)' in the legend."""
    order = [row for _, row in verdicts.head(max_panels).iterrows()]
    columns = min(3, max(len(order), 1))
    lines = max(1, math.ceil(len(order) / columns))
    figure = Figure(figsize=(min(MAX_WIDTH, 3.2 * columns), 2.6 * lines + 0.8), layout="constrained")
    panels = figure.subplots(lines, columns, sharex=True, sharey=True, squeeze=False).ravel()
    for axes, row in zip(panels, order):
        mine = curves[curves["config_id"] == row["config_id"]]
        for _, points in mine.groupby("trial_id", sort=False):
            carried = points["carried"].astype(bool) if "carried" in points else pd.Series(False, points.index)
            real = points[~carried]
            label = f"s{points['seed'].iloc[0]}"
            if carried.any() and not real.empty:
                label += f" (solved, stopped at {int(real['step'].iloc[-1])})"
            line, = axes.plot(real["step"], real["value"], marker=".", label=label)
            if carried.any() and not real.empty:  # carried to the schedule's end: dashed, no points
                ends = pd.concat([real.tail(1), points[carried].tail(1)])
                axes.plot(ends["step"], ends["value"], linestyle=":", color=line.get_color())
                axes.plot(real["step"].iloc[-1:], real["value"].iloc[-1:], marker="|", markersize=12,
                          color=line.get_color())
        if threshold is not None:
            axes.axhline(threshold, color="black", linestyle="--", linewidth=0.8)
        axes.set_title(f"{config_label(row)}\n{row['verdict']}", fontsize=9)
        axes.grid(alpha=0.3)
        if not mine.empty:
            axes.legend(fontsize=7, loc="best")
    for axes in panels[len(order):]:
        axes.set_visible(False)
    figure.supxlabel("step")
    figure.supylabel(metric)
    shown = f" (first {max_panels} of {len(verdicts)})" if len(verdicts) > max_panels else ""
    figure.suptitle(f"{metric} against step, every seed{shown}")
    return figure


def grokking_steps(trials: pd.DataFrame, verdicts: pd.DataFrame, horizon: float) -> Figure:
    """The first step at or above the success threshold of every finished seed (dots), per configuration
    in verdict order; a seed that never reached it is an 'x' at ``horizon`` (the schedule's end)."""
    figure = Figure(figsize=(9, _height(len(verdicts))), layout="constrained")
    axes = figure.add_subplot()
    rows = list(verdicts.iloc[::-1].iterrows())
    for y, (_, row) in enumerate(rows):
        mine = trials[(trials["config_id"] == row["config_id"]) & trials["finished"].astype(bool)]
        grokked = mine[mine["grokking_step"].notna()]
        never = mine[mine["grokking_step"].isna()]
        spread = _spread(len(grokked))
        axes.scatter(grokked["grokking_step"].astype(float), [y + d for d in spread], color="#1565c0", zorder=3,
                     label="grokking step" if len(grokked) else None)
        axes.scatter([horizon] * len(never), [y + d for d in _spread(len(never))], marker="x", color="#c62828",
                     zorder=3, label="not within the schedule" if len(never) else None)
        for seed, step, d in zip(grokked["seed"], grokked["grokking_step"], spread):
            axes.annotate(f"s{seed}", (float(step), y + d), textcoords="offset points", xytext=(7, -3), fontsize=7)
    axes.set_yticks(range(len(rows)), [config_label(row) for _, row in rows])
    axes.set_ylim(-0.6, len(rows) - 0.4)
    axes.set_xlim(0, horizon * 1.05)
    axes.set_xlabel("step at which validation exact match first reached the success threshold")
    axes.set_title("Grokking step per seed")
    axes.grid(axis="x", alpha=0.3)
    handles, labels = _once(*axes.get_legend_handles_labels())
    if handles:  # beside the axes: markers sit at the schedule's end, where a legend inside would hide them
        axes.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return figure


def _once(handles: list, labels: list[str]) -> tuple[list, list[str]]:
    """Legend handles and labels with each label once (its first handle), in the order first drawn."""
    first: dict[str, object] = {}
    for handle, label in zip(handles, labels):
        first.setdefault(label, handle)
    return list(first.values()), list(first)


def _spread(count: int, height: float = 0.5) -> list[float]:
    """Vertical offsets that keep ``count`` seeds of one row apart (equal steps are common)."""
    return [0.0] if count == 1 else [height * (i / (count - 1) - 0.5) for i in range(count)]


def bits_per_byte(trials: pd.DataFrame, verdicts: pd.DataFrame, x: str = "tokenizer/vocab_size") -> Figure:
    """Validation bits per byte of every finished seed (dots, coloured by verdict) and each configuration's
    mean with its min-max spread (a colour of its own, named in the legend: every configuration), against
    column ``x`` (log scale) when it varies, else one position per configuration."""
    figure = Figure(figsize=(9, 4.8), layout="constrained")
    axes = figure.add_subplot()
    numeric = x in verdicts and pd.api.types.is_numeric_dtype(verdicts[x]) and verdicts[x].nunique() > 1
    handles: list = []
    for index, (_, row) in enumerate(verdicts.iterrows()):
        mine = trials[(trials["config_id"] == row["config_id"]) & trials["finished"].astype(bool)]
        position = float(row[x]) if numeric else index
        colour = VERDICT_COLOURS.get(row["verdict"], GREY)
        axes.scatter([position] * len(mine), mine["bits_per_byte"], color=colour, alpha=0.6, s=18)
        if len(mine):
            error = [[row["bpb_mean"] - row["bpb_min"]], [row["bpb_max"] - row["bpb_mean"]]]
            handles.append(axes.errorbar(position, row["bpb_mean"], yerr=error, fmt="_", color=f"C{index % 10}",
                                         capsize=5, markersize=14, label=f"{config_label(row)}: {row['verdict']}"))
        else:
            handles += axes.plot([], [], linestyle="none", marker="_", color=f"C{index % 10}",
                                 label=f"{config_label(row)}: no finished seed")
        if numeric:
            axes.annotate(str(row.get("name", "")), (position, row["bpb_mean"]), textcoords="offset points",
                          xytext=(6, 0), fontsize=7)
    if numeric:
        axes.set_xscale("log")
        axes.set_xlabel(x)
    else:
        axes.set_xticks(range(len(verdicts)), [config_label(row) for _, row in verdicts.iterrows()],
                        rotation=20, ha="right", fontsize=8)
    axes.set_ylabel("validation bits per byte (dots: seeds; bars: min-max)")
    axes.set_title("Bits per byte per configuration" + (f" against {x}" if numeric else ""))
    axes.grid(alpha=0.3)
    if handles:  # in verdict order, beside the axes
        axes.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return figure


def claim_values(runs: pd.DataFrame, claim: Claim) -> Figure:
    """Each run's measured value (``role``, ``seed``, ``measured``, ``finished`` columns: green when it
    meets the claim) beside the claimed value and the bound a run must meet."""
    figure = Figure(figsize=(8, 4.2), layout="constrained")
    axes = figure.add_subplot()
    finished = [bool(done) and not math.isnan(value) for value, done in zip(runs["measured"], runs["finished"])]
    values = [value if done else 0.0 for value, done in zip(runs["measured"], finished)]
    labels = [f"{role} s{seed}" + ("" if done else "\n(no value)")
              for role, seed, done in zip(runs["role"], runs["seed"], finished)]
    colours = [GREY if not done else "#2e7d32" if claim.holds(value) else "#c62828"
               for value, done in zip(values, finished)]
    axes.bar(range(len(values)), values, color=colours)
    for index, value in enumerate(values):
        if value > 0:  # a zero-height bar gets no floating label (a run without a value says so on its tick)
            axes.text(index, value + 0.02, readable_text(float(value), 4), ha="center", fontsize=8)
    axes.axhline(claim.claimed_value, color="black", linewidth=1, label=f"claimed {claim.claimed_value:.5g}")
    axes.axhline(claim.bound(), color="black", linestyle="--", linewidth=1, label=f"bound: {claim.rule()}")
    axes.set_xticks(range(len(values)), labels, fontsize=8)
    axes.set_ylim(0, 1.12)
    axes.set_ylabel(f"measured exact match ({claim.protocol})")
    axes.set_title(f"Claim {claim.name}: claimed value against each run's measured value")
    axes.legend(fontsize=8, loc="lower right")
    return figure


def horizon_of(curves: pd.DataFrame, trials: pd.DataFrame, column: str = "train/train_steps") -> float:
    """The schedule's end for ``grokking_steps``: the trials' longest ``column``, else the last curve step."""
    if column in trials and trials[column].notna().any():
        return float(pd.to_numeric(trials[column], errors="coerce").max())
    return float(curves["step"].max()) if not curves.empty else 1.0


def confidence_sequences(trials: pd.DataFrame, verdicts: pd.DataFrame, design: SequentialDesign,
                         threshold: float) -> Figure:
    """One panel per configuration (the first ``MAX_PANELS`` of the verdict table): the interval of the
    confidence sequence after each seed read (seed order, ``verdicts.allocation.replayed``) narrowing as
    seeds come in, the outcomes as dots at 1 (success) and 0 (failure), and the reliability and failure
    bars; titled with the decision."""
    rows = [row for _, row in verdicts.head(MAX_PANELS).iterrows()]
    allocation = replayed(design, trials, threshold)
    columns = min(3, max(len(rows), 1))
    figure = Figure(figsize=(3.2 * columns, 2.6 * -(-max(len(rows), 1) // columns)), layout="constrained")
    for index, row in enumerate(rows):
        axes = figure.add_subplot(-(-len(rows) // columns), columns, index + 1)
        outcomes = allocation.outcomes(str(row["config_id"])) if str(row["config_id"]) in \
            allocation.config_ids() else []
        if outcomes:
            low, high = sequence_path(outcomes, design.alpha, design.mixture)
            seeds = list(range(1, len(outcomes) + 1))
            axes.fill_between(seeds, low, high, step="post", alpha=0.3, color=VERDICT_COLOURS.get(row["verdict"], GREY))
            axes.plot(seeds, [float(o) for o in outcomes], "o", markersize=3, color="black")
        for bar in (design.failure_bar, design.reliable_bar):
            axes.axhline(bar, linestyle="--", linewidth=0.8, color=GREY)
        axes.set_ylim(-0.05, 1.05)
        axes.set_xlabel("seeds read")
        axes.set_title(f"{config_label(row)}\n{row['verdict']}", fontsize=8)
    figure.suptitle(f"Confidence sequence of the success rate (1 - alpha = {1 - design.alpha:.2f})", fontsize=9)
    return figure
