"""The reproducibility verdict of a configuration from its seed replicates.

Rules (written here and in the README):

- a seed **succeeds** when its best validation exact match reaches ``threshold`` (default 0.99);
  its **grokking step** is the first evaluation step at or above the threshold;
- the **success rate** is successes / finished seeds, with a 95% Wilson score interval
  (Wilson 1927; ``scipy.stats.binomtest(...).proportion_ci(method="wilson")``);
- the label: INCONCLUSIVE when fewer than ``min_seeds`` (3) seeds finished, else REPRODUCIBLE
  when every finished seed succeeds, NOT REPRODUCED when none does, SEED-SENSITIVE otherwise.

A crashed seed has not finished: it is counted under ``errored`` and never as a success. A seed cut
short by a Ctrl-C (trial-table ``status`` 'interrupted') is neither finished nor errored: it is counted
under ``interrupted``, and its configuration is not judged (verdict INTERRUPTED) until the job is resumed.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator, Optional, Sequence

import pandas as pd
from scipy.stats import binomtest

from tune_jobs.verdicts.readable import readable_text

SUCCESS_THRESHOLD = 0.99
"""Default exact-match threshold of a successful seed."""
MIN_SEEDS = 3
"""Finished seeds needed before a configuration is judged."""
REPRODUCIBLE, SEED_SENSITIVE, NOT_REPRODUCED, INCONCLUSIVE, INTERRUPTED = (
    "REPRODUCIBLE", "SEED-SENSITIVE", "NOT REPRODUCED", "INCONCLUSIVE", "INTERRUPTED")

TRIAL_COLUMNS = ("config_id", "seed", "finished", "best_exact_match", "grokking_step")
"""Columns ``verdict_table`` needs in its per-trial input."""


def grokking_step(steps: Sequence[int], exact_matches: Sequence[float], threshold: float = SUCCESS_THRESHOLD
                  ) -> Optional[int]:
    """First evaluation step whose exact match is at or above ``threshold``; None if there is none.

    Args:
        steps: evaluation steps in increasing order.
        exact_matches: validation exact match at each of those steps, in [0, 1].
    """
    for step, value in zip(steps, exact_matches):
        if value is not None and not math.isnan(value) and value >= threshold:
            return int(step)
    return None


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (no continuity correction).

    Returns (nan, nan) for n = 0.

    Raises:
        ValueError: successes outside [0, n].
    """
    if n == 0:
        return math.nan, math.nan
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} must be between 0 and n={n}")
    interval = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def label(finished: int, successes: int, min_seeds: int = MIN_SEEDS) -> str:
    """The verdict label for ``successes`` out of ``finished`` seeds (rules in the module doc)."""
    if finished < min_seeds:
        return INCONCLUSIVE
    if successes == finished:
        return REPRODUCIBLE
    if successes == 0:
        return NOT_REPRODUCED
    return SEED_SENSITIVE


def _format_steps(steps: Iterable[Optional[float]]) -> str:
    return ",".join("-" if s is None or (isinstance(s, float) and math.isnan(s)) else str(int(s)) for s in steps)


BOOKKEEPING = ("error", "trial_id", "replicate", "status", "objective")
"""Trial-table columns that describe a trial, not its configuration (never carried into a verdict)."""
NAME = "name"
"""The configuration's readable name: the first column of every verdict table that has one."""
SUCCESS, FAILED, ERRORED, INTERRUPTED_OUTCOME = "success", "failed", "errored", "interrupted"
"""A trial's ``outcome`` tag."""


def name_first(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its ``name`` column (if any) moved to the front, each name made unique: a name
    two configurations share gets '-<config id>' appended (they differ in a field the name leaves out)."""
    if NAME not in table.columns:
        return table
    names = table[NAME].astype(str)
    repeated = names.duplicated(keep=False)
    table = table.assign(**{NAME: [f"{n}-{c}" if r else n for n, c, r in zip(names, table["config_id"], repeated)]})
    return table[[NAME, *(c for c in table.columns if c != NAME)]]


def outcome(trial: Any, succeeded: bool, failed: str = FAILED) -> str:
    """A trial's outcome from its trial-table row: 'interrupted' or 'errored' by its ``status``, else
    'success' when ``succeeded``, else ``failed``."""
    status = getattr(trial, "status", "finished")
    if status == "interrupted":
        return INTERRUPTED_OUTCOME
    if status == "errored" or not bool(trial.finished):
        return ERRORED
    return SUCCESS if succeeded else failed


def config_groups(trials: pd.DataFrame, required: Sequence[str]
                  ) -> Iterator[tuple[str, pd.DataFrame, pd.DataFrame, dict[str, Any]]]:
    """Per configuration of a trial table: (config id, its trials by seed, the finished ones, the
    configuration's other columns: a value constant over its trials as it is, a varying numeric one
    as its mean over the finished trials).

    Raises:
        KeyError: a ``required`` column is missing.
    """
    missing = [c for c in required if c not in trials.columns]
    if missing:
        raise KeyError(f"trial table lacks column(s): {', '.join(missing)}")
    extra = [c for c in trials.columns if c not in required and c not in BOOKKEEPING]
    for config_id, group in trials.groupby("config_id", sort=False):
        group = group.sort_values("seed")
        done = group[group["finished"].astype(bool)]
        yield config_id, group, done, {c: _carried(group[c], done[c]) for c in extra}


def unfinished(group: pd.DataFrame, done: pd.DataFrame) -> tuple[int, int]:
    """(errored, interrupted) trials of one configuration: a trial cut short by a Ctrl-C (``status``
    'interrupted') is neither finished nor errored."""
    interrupted = int((group["status"] == "interrupted").sum()) if "status" in group else 0
    return int(len(group) - len(done)) - interrupted, interrupted


def _carried(values: pd.Series, finished: pd.Series) -> Any:
    distinct = values.astype(str).unique()
    if len(distinct) > 1 and pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return float(finished.mean()) if len(finished) else math.nan
    return values.iloc[0]


def verdict_table(trials: pd.DataFrame, threshold: float = SUCCESS_THRESHOLD, min_seeds: int = MIN_SEEDS
                  ) -> pd.DataFrame:
    """One verdict row per configuration.

    Args:
        trials: one row per trial with ``TRIAL_COLUMNS`` (``grokking_step`` may be None/NaN); extra
            columns constant within a configuration (its fields) are carried into the output.
        threshold: exact match of a successful seed.
        min_seeds: finished seeds needed for a verdict other than INCONCLUSIVE.

    Returns:
        DataFrame with name (when the trials have one), config_id, verdict, seeds_run, errored, successes, success_rate,
        wilson_low, wilson_high, mean/min/max_best_exact_match, grokking_steps (per seed, '-' for
        none, in seed order), seeds, and the configuration's fields; best configurations first.

    Raises:
        KeyError: a required column is missing.
    """
    rows = []
    for config_id, group, done, fields in config_groups(trials, TRIAL_COLUMNS):
        successes = int((done["best_exact_match"] >= threshold).sum())
        low, high = wilson_interval(successes, len(done))
        best = done["best_exact_match"].astype(float)
        errored, interrupted = unfinished(group, done)
        row = {
            "config_id": config_id,
            "verdict": INTERRUPTED if interrupted else label(len(done), successes, min_seeds),
            "seeds_run": len(done),
            "errored": errored,
            "interrupted": interrupted,
            "successes": successes,
            "success_rate": successes / len(done) if len(done) else math.nan,
            "wilson_low": low,
            "wilson_high": high,
            "mean_best_exact_match": float(best.mean()) if len(done) else math.nan,
            "min_best_exact_match": float(best.min()) if len(done) else math.nan,
            "max_best_exact_match": float(best.max()) if len(done) else math.nan,
            "grokking_steps": _format_steps(done["grokking_step"]),
            "seeds": ",".join(str(int(s)) for s in done["seed"]),
            **fields,
        }
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return name_first(table.sort_values(["success_rate", "mean_best_exact_match"], ascending=False,
                                        na_position="last").reset_index(drop=True))


def summary_line(row: pd.Series) -> str:
    """One-line verdict of a configuration, e.g. 'SEED-SENSITIVE 2/3 [0.21, 0.94]' (the Wilson interval),
    or under sequential seeds 'DOMINATED 0/7 CS [0.00, 0.38] by d16-ff64-lr0.01' (the confidence
    sequence, ``verdicts.allocation.decision_table``)."""
    if "cs_low" in row.index:
        by = f" by {row['dominated_by']}" if row.get("dominated_by") else ""
        return (f"{row['verdict']} {row['successes']}/{row['seeds_run']} "
                f"CS [{row['cs_low']:.2f}, {row['cs_high']:.2f}]{by}")
    return (f"{row['verdict']} {row['successes']}/{row['seeds_run']} "
            f"[{row['wilson_low']:.2f}, {row['wilson_high']:.2f}]")


def child_tags(row: pd.Series, trial: Any) -> dict[str, str]:
    """Tags of one trial's run from its configuration's verdict ``row`` (``trial``: its trial-table row):
    the verdict, the configuration's success rate, whether this seed succeeded, and its ``outcome``
    (success, failed, errored or interrupted)."""
    succeeded = bool(trial.finished) and pd.notna(trial.grokking_step)
    return {"verdict": row["verdict"], "config_success_rate": readable_text(float(row['success_rate'])),
            "seed_succeeded": str(succeeded).lower(), "outcome": outcome(trial, succeeded)}


def best_config(table: pd.DataFrame) -> str:
    """The best configuration of a verdict table (its first row)."""
    return str(table.iloc[0]["config_id"])
