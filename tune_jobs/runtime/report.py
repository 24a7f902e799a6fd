"""What a job's parent run shows at a glance: a Markdown description with the verdict table and the
figures, the figures themselves (``figures/*.png``), and its row in the runs table (``parent_tags``:
the best configuration and its verdict, each configuration's verdict keyed by its name).

The parent logs no per-configuration metrics: MLflow's chart view drew each as a one-bar chart of a run
outside every configuration's group; each seed's run holds its configuration's ``config/<column>``
metrics, and ``verdict.json``/``verdict.csv`` every column.

MLflow shows a run's description (the tag ``mlflow.note.content``) as Markdown on the run's page; its
images load from the tracking server's ``get-artifact`` route (``mlflow_utils.figure_link``).
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any, Mapping, Sequence

import pandas as pd

from mlflow_utils import SweepTracker, figure_link
from mlflow_utils.views import column
from tune_jobs.runtime.trial import Trial
from tune_jobs.verdicts.readable import readable_table, readable_text

logger = logging.getLogger(__name__)

MAX_ROWS = 30
"""Configurations in the description's table at most (every one is in ``verdict.json``)."""
CHILD_PREFIX = "config/"
"""Prefix of the per-configuration metrics logged on each trial's run."""
CONFIG_TAG = "config"
"""Tag holding a trial's configuration name (the by-configuration view groups by it)."""
_UNSAFE = re.compile(r"[^\w.\- /:]")
"""Characters MLflow refuses in a metric name."""


def shown_text(value: Any) -> str:
    """A table cell for reading: a float rounded (``verdicts.readable``: 0.6666666667 reads 0.667), '-'
    for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return readable_text(value)


def cell_text(value: Any) -> str:
    """A table cell in Markdown: ``shown_text`` with '|' escaped and on one line."""
    return shown_text(value).replace("|", "\\|").replace("\n", " ")


HEADERS = {"successes": "successes/seeds", "success_rate": "success rate [95% Wilson]",
           "mean_best_exact_match": "mean best exact match", "grokking_steps": "grokking steps"}
"""Column headings of the description's table that differ from the column names."""


def markdown_table(table: pd.DataFrame, columns: Sequence[str], max_rows: int = MAX_ROWS) -> str:
    """Those of ``columns`` that ``table`` has, its first ``max_rows`` rows, as a Markdown table
    (headings from ``HEADERS``)."""
    shown = [c for c in columns if c in table.columns]
    lines = ["| " + " | ".join(HEADERS.get(c, c) for c in shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(cell_text(row[c]) for c in shown) + " |" for _, row in table.head(max_rows).iterrows()]
    if len(table) > max_rows:
        lines.append(f"\n(first {max_rows} of {len(table)} configurations; all of them in `verdict.json`)")
    return "\n".join(lines)


def readable_rates(table: pd.DataFrame) -> pd.DataFrame:
    """The verdict table as the description shows it: ``successes`` as 'k/n' and ``success_rate`` with
    its Wilson interval, '0.67 [0.21, 0.94]' (where the table has those columns)."""
    shown = table.copy()
    if {"successes", "seeds_run"} <= set(shown.columns):
        shown["successes"] = [f"{k}/{n}" for k, n in zip(table["successes"], table["seeds_run"])]
    if {"success_rate", "wilson_low", "wilson_high"} <= set(shown.columns):
        shown["success_rate"] = ["-" if pd.isna(r) else f"{r:.2f} [{lo:.2f}, {hi:.2f}]"
                                 for r, lo, hi in zip(table["success_rate"], table["wilson_low"], table["wilson_high"])]
    return shown


def metric_name(*parts: str) -> str:
    """A metric (or tag) name MLflow accepts, from parts joined by '/' (other characters become '_')."""
    return _UNSAFE.sub("_", "/".join(parts))


def summary_value(value: Any) -> float:
    """A summary metric as the UI shows it: 10 significant digits (a mean of 0.1 and 0.008 reads 0.054,
    not 0.05399999999999999)."""
    return float(f"{float(value):.10g}")


BEST_COLUMNS = ("best_config", "best_verdict")
"""The parent's tags its row in the runs table shows (no '.' in them: MLflow 3.17's runs table leaves a
column whose name holds a dot empty)."""


def parent_tags(trial: Trial, table: pd.DataFrame) -> dict[str, str]:
    """The parent run's tags from the verdict ``table``: ``verdict.<configuration name>`` -> its one-line
    verdict (``trial.summary_line``; ' <config id>' appended to a name two configurations share),
    ``best_config`` -> the best configuration's name and ``best_verdict`` -> its one-line verdict (the
    parent's row in the runs table), ``best_config_id`` and ``verdict.best_config`` -> its config id."""
    names = table["name"].astype(str) if "name" in table else table["config_id"].astype(str)
    shared = set(names[names.duplicated()])
    tags = {metric_name(f"verdict.{name}" + (f" {row['config_id']}" if name in shared else "")): trial.summary_line(row)
            for name, (_, row) in zip(names, table.iterrows())}
    best_id = trial.best_config(table)
    best = table[table["config_id"] == best_id]
    row = best.iloc[0] if not best.empty else None
    return {**tags, "verdict.best_config": best_id, "best_config_id": best_id,
            "best_config": best_id if row is None else str(row.get("name", best_id)),
            "best_verdict": "" if row is None else trial.summary_line(row)}


def log_tables(tracker: SweepTracker, tables: Mapping[str, pd.DataFrame]) -> None:
    """Log each table on the parent run: ``<name>.json`` (MLflow's table viewer) rounded for reading
    (``verdicts.readable``), ``<name>.csv`` at full precision."""
    for name, table in tables.items():
        tracker.log_table(table, name, shown=readable_table(table))


def child_metrics(row: pd.Series, columns: Sequence[str]) -> dict[str, float]:
    """``config/<column>`` -> the trial's configuration's value (the same on every seed of it), so the
    runs table sorts trials by their configuration's success rate, bits per byte..."""
    return {f"{CHILD_PREFIX}{column}": summary_value(row[column]) for column in columns if column in row.index}


def log_figures(tracker: SweepTracker, figures: Mapping[str, Any]) -> list[str]:
    """Log each figure as ``figures/<file>`` on the parent run; returns the Markdown image of each one
    logged (a figure that fails to save is reported in a warning and skipped)."""
    links = []
    for file_name, figure in figures.items():
        path = f"figures/{file_name}"
        try:
            tracker.log_figure(figure, path)
        except Exception as error:  # noqa: BLE001 - a figure must never lose the verdict
            logger.warning("figure %s was not logged: %s", path, error)
            continue
        caption = file_name.rsplit(".", 1)[0].replace("_", " ")
        links.append(figure_link(tracker.parent_run_id, path, caption))
    return links


def description(intro: Sequence[str], trial: Trial, table: pd.DataFrame, links: Sequence[str]) -> str:
    """The parent run's description: the best configuration (the line MLflow shows before 'Show more'),
    the verdict table (``trial.summary_columns``), ``intro`` (what ran), the figures, and where the rest is."""
    best_id = trial.best_config(table)
    best = table[table["config_id"] == best_id]
    lines = []
    if not best.empty:
        row = best.iloc[0]
        lines += [f"Best configuration: **{row.get('name', best_id)}**: {trial.summary_line(row)}", ""]
    lines += [markdown_table(readable_rates(table), trial.summary_columns or trial.columns), "", *intro, "", *links, "",
              "Each seed is a nested run named `<configuration> s<seed>`, tagged `outcome` (success, failed or "
              "suspect, errored, interrupted), `config` and `config_id`; its metrics `config/<column>` sort by "
              "configuration. This run's tags `verdict.<configuration>` hold each verdict, `best_config` and "
              "`best_verdict` the best. `verdict.json` and `trials.json` (Artifacts) hold every column, rounded "
              "for reading (`.csv`: full precision)."]
    return "\n".join(lines)


def view_columns(trial: Trial) -> list[str]:
    """The runs-table columns of the job's shared views: each seed's outcome and configuration, the
    parent's best configuration and its verdict (``BEST_COLUMNS``), each seed's configuration's summary
    metrics, and the last value of the trial's curve."""
    return [column("tags", "outcome"), column("tags", CONFIG_TAG), *(column("tags", name) for name in BEST_COLUMNS),
            *(column("metrics", f"{CHILD_PREFIX}{name}") for name in trial.summary_metrics),
            column("metrics", trial.curve)]


def log_report(tracker: SweepTracker, trial: Trial, table: pd.DataFrame, trials: pd.DataFrame,
               curves: pd.DataFrame, settings: Any, intro: Sequence[str]) -> None:
    """Log the parent run's figures (``trial.figures``) and description, and the experiment's shared
    views of the runs table (``mlflow_utils.views``)."""
    figures = {}
    if trial.figures is not None:
        try:
            figures = trial.figures(table, trials, curves, settings)
        except Exception as error:  # noqa: BLE001 - a figure must never lose the verdict
            logger.warning("the figures of %s were not drawn: %s", tracker.sweep_id, error)
    links = log_figures(tracker, figures)
    tracker.set_description(tracker.parent_run_id, description(intro, trial, table, links))
    tracker.share_views(view_columns(trial), CONFIG_TAG, {column("tags", CONFIG_TAG): 220,
                                                          column("tags", "best_config"): 220,
                                                          column("tags", "best_verdict"): 280})
