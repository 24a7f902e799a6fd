"""The verdict of a language-model configuration from its seed replicates and their audits.

Rules (written here and in docs/lm.md):

- per configuration: validation bits per byte at the last step of each finished seed, summarized
  as mean, sample std (ddof 1), min, max and spread (max - min);
- the audit flags of every finished seed (``trainables.lm.audits``), with the seeds that raised
  each and the first seed's reason; the collapse rate of sampled completions pooled over seeds,
  with its 95% Wilson interval (``tune_jobs.verdict.wilson_interval``);
- the label: SUSPECT when any seed raised an audit flag (the reasons say which), else
  INCONCLUSIVE when fewer than ``min_seeds`` (3) seeds finished, else CONSISTENT when the spread
  is at most ``spread_tolerance`` (0.05 bits per byte), else SEED-SENSITIVE.

Rows are ordered best first: non-suspect before SUSPECT, judged before INCONCLUSIVE, then by mean
bits per byte (lower is better).
"""

from __future__ import annotations

import math

import pandas as pd

from tune_jobs.verdicts.seeds import (INCONCLUSIVE, INTERRUPTED, MIN_SEEDS, SEED_SENSITIVE, config_groups, name_first,
                                     outcome, unfinished, wilson_interval)

SUSPECT, CONSISTENT = "SUSPECT", "CONSISTENT"
SPREAD_TOLERANCE = 0.05
"""Largest spread of bits per byte over seeds of a CONSISTENT configuration."""
TRIAL_COLUMNS = ("config_id", "seed", "finished", "bits_per_byte", "flags", "reasons", "collapsed_sampled",
                 "completions_sampled")
"""Columns ``verdict_table`` needs: flags is a comma-separated string of flag names ('' for none),
reasons a '; '-joined string of 'flag: reason'."""


def label(finished: int, spread: float, flagged: bool, min_seeds: int = MIN_SEEDS,
          tolerance: float = SPREAD_TOLERANCE) -> str:
    """The verdict label (rules in the module doc)."""
    if flagged:
        return SUSPECT
    if finished < min_seeds:
        return INCONCLUSIVE
    return CONSISTENT if spread <= tolerance else SEED_SENSITIVE


def _flag_summary(done: pd.DataFrame) -> tuple[str, str]:
    """('flag (seeds a,b)', ...) and the first reason of each flag."""
    seeds_by_flag: dict[str, list[str]] = {}
    reasons: dict[str, str] = {}
    for row in done.itertuples():
        for flag in filter(None, str(row.flags).split(",")):
            seeds_by_flag.setdefault(flag, []).append(str(int(row.seed)))
        for part in filter(None, str(row.reasons).split("; ")):
            flag, _, reason = part.partition(": ")
            reasons.setdefault(flag, reason)
    flags = ", ".join(f"{f} (seeds {','.join(s)})" for f, s in seeds_by_flag.items())
    return flags, "; ".join(f"{f}: {reasons.get(f, '')}" for f in seeds_by_flag)


def verdict_table(trials: pd.DataFrame, min_seeds: int = MIN_SEEDS, tolerance: float = SPREAD_TOLERANCE
                  ) -> pd.DataFrame:
    """One verdict row per configuration.

    Args:
        trials: one row per trial with ``TRIAL_COLUMNS``; other columns constant within a
            configuration (its fields) are carried into the output.
        min_seeds: finished seeds needed for a verdict other than INCONCLUSIVE (or SUSPECT).
        tolerance: spread of bits per byte allowed for CONSISTENT.

    Returns:
        DataFrame with name (when the trials have one), config_id, verdict, seeds_run, errored, bpb_mean, bpb_std, bpb_min, bpb_max,
        bpb_spread, audit_flags, audit_reasons, collapse_rate_sampled, collapse_low, collapse_high,
        seeds, and the configuration's fields; best first.

    Raises:
        KeyError: a required column is missing.
    """
    rows = []
    for config_id, group, done, fields in config_groups(trials, TRIAL_COLUMNS):
        bpb = done["bits_per_byte"].astype(float)
        spread = float(bpb.max() - bpb.min()) if len(done) else math.nan
        flags, reasons = _flag_summary(done)
        collapsed, total = int(done["collapsed_sampled"].sum()), int(done["completions_sampled"].sum())
        low, high = wilson_interval(collapsed, total)
        errored, interrupted = unfinished(group, done)
        verdict = INTERRUPTED if interrupted else label(len(done), spread, bool(flags), min_seeds, tolerance)
        rows.append({"config_id": config_id, "verdict": verdict,
                     "seeds_run": len(done), "errored": errored, "interrupted": interrupted,
                     "bpb_mean": float(bpb.mean()) if len(done) else math.nan,
                     "bpb_std": float(bpb.std(ddof=1)) if len(done) > 1 else math.nan,
                     "bpb_min": float(bpb.min()) if len(done) else math.nan,
                     "bpb_max": float(bpb.max()) if len(done) else math.nan, "bpb_spread": spread,
                     "audit_flags": flags, "audit_reasons": reasons,
                     "collapse_rate_sampled": collapsed / total if total else math.nan,
                     "collapse_low": low, "collapse_high": high,
                     "seeds": ",".join(str(int(s)) for s in done["seed"]), **fields})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["_order"] = table["verdict"].map({SUSPECT: 2, INCONCLUSIVE: 1, INTERRUPTED: 1}).fillna(0)
    table = table.sort_values(["_order", "bpb_mean"], na_position="last").drop(columns="_order")
    return name_first(table.reset_index(drop=True))


def summary_line(row: pd.Series) -> str:
    """One-line verdict, e.g. 'CONSISTENT bpb 2.314 +- 0.012 (spread 0.024, 3 seeds)'."""
    text = (f"{row['verdict']} bpb {row['bpb_mean']:.3f} +- {row['bpb_std']:.3f} "
            f"(spread {row['bpb_spread']:.3f}, {row['seeds_run']} seeds)")
    return text + (f"; {row['audit_flags']}" if row["audit_flags"] else "")


def child_tags(row: pd.Series, trial: object) -> dict[str, str]:
    """Tags of one trial's run from its configuration's verdict ``row`` and its trial-table row: the
    verdict, the configuration's mean bits per byte, and its ``outcome``: success (finished, no audit
    flag), suspect (an audit flag: see ``audit_reasons``), errored or interrupted."""
    return {"verdict": row["verdict"], "config_bpb_mean": f"{row['bpb_mean']:.4f}",
            "outcome": outcome(trial, not getattr(trial, "flags", ""), failed=SUSPECT.lower())}


def best_config(table: pd.DataFrame) -> str:
    """The best configuration that no audit flagged (the table is ordered best first)."""
    judged = table[table["verdict"] != SUSPECT]
    return str(judged.iloc[0]["config_id"]) if not judged.empty else "none (every configuration is SUSPECT)"
