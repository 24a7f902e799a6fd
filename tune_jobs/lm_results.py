"""What the language-model jobs share: running Tune, reading trials back, logging them to MLflow."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from trainables.lm.audits import FLAGS
from tune_jobs.mlflow_callback import final_checkpoint_folder
from tune_jobs.search import config_id, seed_of

if TYPE_CHECKING:
    from ray.tune import ResultGrid

    from mlflow_utils import SweepTracker
    from tune_jobs.mlflow_callback import MlflowTrialRuns

logger = logging.getLogger(__name__)

CARRIED = ("tokenizer.algorithm", "tokenizer.vocab_size", "tokenizer.extra_corpora", "model.d_model", "model.n_layer",
           "train.lr", "data.corpus")
"""Config fields carried into the trial table (and from there into the verdict table)."""
MEASURED = ("tok/vocab_size", "tok/tokens_per_char", "tok/tokens_per_byte", "tok/vocab_used", "tok/unk_rate",
            "tok/params_per_vocab_entry", "model/parameters", "val/loss", "val/perplexity",
            "val/unigram_bits_per_byte", "gen/collapse_rate_greedy", "diag/generalization_gap",
            "perf/diagnostics_share") + tuple(
    f"diag/ablation/memory/{variant}/{stat}" for variant in ("zeroed", "mean", "reset1", "reset16")
    for stat in ("delta_bits_per_byte", "relative_change"))
"""Final metrics carried into the trial table (their mean over seeds into the verdict table)."""


def _field(config: dict[str, Any], dotted: str) -> Any:
    section, key = dotted.split(".", 1)
    value = config.get(section, {}).get(key)
    return ",".join(value) if isinstance(value, (list, tuple)) else value


def trial_table(results: "ResultGrid") -> pd.DataFrame:
    """One row per trial: the columns ``lm_verdict.verdict_table`` needs, ``CARRIED`` fields, ``MEASURED`` metrics."""
    rows = []
    for result in results:
        config, metrics = result.config, result.metrics or {}
        finished = result.error is None and metrics.get("step") == int(config["train"]["train_steps"]) - 1
        sampled = metrics.get("gen/completions_sampled", 0.0) or 0.0
        rows.append({"trial_id": metrics.get("trial_id"), "config_id": metrics.get("config_id") or config_id(config),
                     "seed": seed_of(config), "finished": bool(finished),
                     "bits_per_byte": metrics.get("val/bits_per_byte", math.nan) if finished else math.nan,
                     "flags": ",".join(f for f in FLAGS if metrics.get(f"audit/{f}") == 1.0),
                     "reasons": metrics.get("audit_reasons", ""),
                     "collapsed_sampled": int(round(metrics.get("gen/collapse_rate_sampled", 0.0) * sampled))
                     if finished else 0,
                     "completions_sampled": int(sampled) if finished else 0,
                     "error": None if result.error is None else str(result.error).splitlines()[0][:300],
                     **{c: _field(config, c) for c in CARRIED},
                     **{m: metrics.get(m, math.nan) for m in MEASURED}})
    return pd.DataFrame(rows)


def log_trial_outputs(tracker: "SweepTracker", results: "ResultGrid", run_ids: dict[str, str]) -> None:
    """Each finished trial's completions as the MLflow table ``completions.json`` (its tokenizer JSON
    is already an artifact, ``checkpoints/tokenizer.json``, uploaded by the callback), and its audit
    reasons as a tag. A trial without a checkpoint (crashed) is skipped; a failure is logged and skipped.
    """
    for result in results:
        run_id = run_ids.get((result.metrics or {}).get("trial_id"))
        if run_id is None:
            continue
        try:
            with final_checkpoint_folder(result.checkpoint, result.metrics) as folder:
                if folder is None:
                    continue
                rows = json.loads((Path(folder) / "completions.json").read_text())
                tracker.log_table(pd.DataFrame(rows), "completions", run_id)
            if result.metrics.get("audit_reasons"):
                tracker.set_tags(run_id, {"audit_reasons": result.metrics["audit_reasons"]})
        except Exception as error:  # noqa: BLE001 - logging must never lose the verdict
            logger.warning("MLflow logging of trial outputs failed: %s", error)
