"""What a job prints on the terminal: its verdict table, its failed trials, and where its results landed."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from mlflow_utils import SweepTracker
from tune_jobs.runtime.accounting import Accounting


def print_verdicts(title: str, table: pd.DataFrame, trials: pd.DataFrame, columns: Sequence[str]) -> None:
    """The verdict table (those of ``columns`` it has a value in), each configuration's audit reasons, and
    each failed trial."""
    print(f"\nVerdicts of {title} ({len(trials)} trials):")
    if table.empty:
        print("  no trial reported a result")
    else:
        with pd.option_context("display.width", 250, "display.max_columns", 40, "display.max_colwidth", 60,
                               "display.float_format", "{:.4g}".format):
            shown = [c for c in columns if c in table.columns and not table[c].isna().all()]
            print(table[shown].to_string(index=False))
        if "audit_reasons" in table.columns:
            for row in table[table["audit_reasons"] != ""].itertuples():
                print(f"  {row.config_id} {row.verdict}: {row.audit_reasons}")
    for row in trials[trials["error"].notna()].itertuples():
        print(f"  trial {row.trial_id} (config {row.config_id}, seed {row.seed}) failed: {row.error}")


def print_footer(tracker: SweepTracker, accounting: Accounting, failures: int, name: str,
                 study: str | None = None) -> None:
    """Where the job ``name`` landed in MLflow (and Optuna's ``study`` file), its failed MLflow calls,
    its wall time and what went to no trial."""
    print(f"MLflow: experiment {tracker.experiment_id}, parent run {tracker.parent_run_id} at "
          f"{tracker.client.tracking_uri}; MLflow calls that failed: {failures}")
    print(f"Wall time {accounting.seconds() / 60:.1f} min on {accounting.slots} trial slot(s); the trials' own time "
          f"{accounting.trial_seconds / 60:.1f} min; Ray, MLflow and idle slots: {100 * accounting.overhead_share():.1f}% "
          f"of the capacity, of which slots idle while the last trials finished {100 * accounting.drain_share():.1f}%")
    if study:
        print(f"Optuna: study {name} in {study} (make optuna-dashboard)")
