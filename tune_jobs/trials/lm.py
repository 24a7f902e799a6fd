"""The language-model trainable as a trial: one configuration x one seed, judged by bits per byte and audits.

Each report carries the trainable's metrics (``trainables.lm.train``), the Optuna ``objective``
(minus validation bits per byte: higher is better), ``config_id``, ``seed`` and ``env/*`` provenance
strings. Every ``checkpoint_interval`` steps (default every evaluation, 0 = only at the end) a report
carries the checkpoint folder (model.pt with the resume state); the last one carries the output
folder (model.pt, tokenizer.json, completions.json, run.json). A retried or restored trial continues
from its latest checkpoint, bit-identical to a run never stopped, and reports ``resumed_from_step``.
The verdict is the language-model rule (``verdicts.lm``).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from mlflow_utils import SweepTracker
from trainables.lm.audits import FLAGS
from trainables.lm.config import SECTIONS, LMRun
from trainables.lm.train import MODEL_FILE, train
from trainables.provenance import provenance
from tune_jobs.runtime.mlflow_callback import final_checkpoint_folder
from tune_jobs.runtime.ray_session import node_tags
from tune_jobs.runtime.results import trial_id_of
from tune_jobs.runtime.searcher import OBJECTIVE
from tune_jobs.runtime.trial import Trial, TrialContext, checkpoint_interval, short_number
from tune_jobs.runtime.trial_config import config_id, seed_of
from tune_jobs.trials.lm_record import lm_params  # issue 19: resolved config
from tune_jobs.verdicts import figures as plots
from tune_jobs.verdicts import lm

logger = logging.getLogger(__name__)

FAILURE_OBJECTIVE = -16.0
"""Objective of a crashed replicate: -16 bits per byte, worse than a uniform guess over bytes (8)."""
MEASURED = ("tok/vocab_size", "tok/tokens_per_char", "tok/tokens_per_byte", "tok/vocab_used", "tok/unk_rate",
            "tok/params_per_vocab_entry", "model/parameters", "val/loss", "val/perplexity",
            "val/unigram_bits_per_byte", "gen/collapse_rate_greedy", "diag/generalization_gap",
            "perf/diagnostics_share") + tuple(
    f"diag/ablation/memory/{variant}/{stat}" for variant in ("zeroed", "mean", "reset1", "reset16")
    for stat in ("delta_bits_per_byte", "relative_change"))
"""Final metrics carried into the trial table (their mean over finished seeds into the verdict table)."""


def readable_name(config: dict[str, Any]) -> str:
    """A configuration's name, e.g. 'v1024-d128-lr0.003', 'v512-d64-lr0.003-memory-gain0.0625-en-shared':
    vocabulary size, width and peak learning rate, then only where they differ from the defaults the
    gate (and its input gain), a character tokenizer, the corpus, and a tokenizer shared with other corpora."""
    run = LMRun.from_sections({s: config[s] for s in SECTIONS if s in config})
    parts = [f"v{run.tokenizer.vocab_size}", f"d{run.model.d_model}", f"lr{short_number(float(run.train.lr))}"]
    if run.model.gate != "none":
        parts.append(run.model.gate)
    if run.model.gate_input_gain != 1.0:
        parts.append(f"gain{short_number(float(run.model.gate_input_gain))}")
    if run.tokenizer.algorithm != "byte_bpe":
        parts.append(run.tokenizer.algorithm)
    if run.data.corpus != "stdlib":
        parts.append(Path(run.data.corpus).stem)
    if run.tokenizer.extra_corpora:
        parts.append("shared")
    return "-".join(parts)


def figures(verdicts: pd.DataFrame, trials: pd.DataFrame, curves: pd.DataFrame, settings: Any) -> dict[str, Any]:
    """Bits per byte of every seed per configuration (against vocabulary size when it varies) and
    validation bits per byte against step for every seed (``verdicts.figures``)."""
    return {"bits_per_byte.png": plots.bits_per_byte(trials, verdicts, "tokenizer/vocab_size"),
            "learning_curves.png": plots.learning_curves(curves, verdicts, "val/bits_per_byte")}


def body(config: dict[str, Any], context: TrialContext) -> None:
    """Train the trial's configuration with its seed, reporting at every evaluation (see the module doc).
    Data-parallel ranks all resume from the checkpoint the context returns; only rank 0 hands one over."""
    seed = seed_of(config)
    run = LMRun.from_sections({s: config[s] for s in SECTIONS if s in config}, train={"seed": seed})
    constant = {"seed": seed, "config_id": config_id(config), **node_tags(), **lm_params(run),  # issue 19
                **{f"env/{k}": v for k, v in provenance(run.train.device, run.train.threads).items()}}

    def report(metrics: dict[str, Any], out_dir: Path | None) -> None:
        context.report({**metrics, OBJECTIVE: -metrics["val/bits_per_byte"], **constant}, out_dir)

    with tempfile.TemporaryDirectory(prefix="reprotune-lm-") as out_dir:
        resumed_at = context.restore_latest(out_dir, MODEL_FILE)
        if resumed_at is not None:
            constant["resumed_from_step"] = resumed_at
        train(run, out_dir, report, shard=context.shard, prepare=context.prepare,
              checkpoint_interval=checkpoint_interval(config, run.train.eval_interval),
              resume_from=None if resumed_at is None else out_dir)


def measure(result: Any) -> dict[str, Any]:
    """Trial-table columns of one trial: the columns ``verdicts.lm.verdict_table`` needs (a trial
    finished when it ended without an error at its last step) and the ``MEASURED`` final metrics."""
    config, metrics = result.config, result.metrics or {}
    finished = result.error is None and metrics.get("step") == int(config["train"]["train_steps"]) - 1
    sampled = metrics.get("gen/completions_sampled", 0.0) or 0.0
    return {"finished": bool(finished),
            "bits_per_byte": metrics.get("val/bits_per_byte", math.nan) if finished else math.nan,
            "flags": ",".join(f for f in FLAGS if metrics.get(f"audit/{f}") == 1.0),
            "reasons": metrics.get("audit_reasons", ""),
            "collapsed_sampled": int(round(metrics.get("gen/collapse_rate_sampled", 0.0) * sampled)) if finished else 0,
            "completions_sampled": int(sampled) if finished else 0,
            **{m: metrics.get(m, math.nan) for m in MEASURED}}


def verdict_table(trials: pd.DataFrame, settings: Any) -> pd.DataFrame:
    """The language-model verdict (``verdicts.lm.verdict_table``) with the job's minimum seeds and
    spread tolerance (the defaults when the job has none)."""
    return lm.verdict_table(trials, getattr(settings, "min_seeds", lm.MIN_SEEDS),
                            getattr(settings, "spread_tolerance", lm.SPREAD_TOLERANCE))


def log_outputs(tracker: SweepTracker, results: Any, run_ids: dict[str, str]) -> None:
    """Each finished trial's completions as the MLflow table ``completions.json`` (its tokenizer JSON
    is already an artifact, ``checkpoints/tokenizer.json``, uploaded by the callback), and its audit
    reasons as a tag. A trial without a checkpoint (crashed) is skipped; a failure is logged and skipped.
    """
    for result in results:
        run_id = run_ids.get(trial_id_of(result))
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


LM = Trial(
    name="lm", body=body, measure=measure, verdict_table=verdict_table, summary_line=lm.summary_line,
    child_tags=lm.child_tags, best_config=lm.best_config, data_parallel=True, failure_score=FAILURE_OBJECTIVE,
    success_rate=False,
    columns=("name", "config_id", "verdict", "seeds_run", "errored", "bpb_mean", "bpb_std", "bpb_spread",
             "tokenizer/vocab_size", "model/d_model", "train/lr", "tok/tokens_per_byte", "tok/vocab_used",
             "model/parameters", "model/gate", "model/gate_input_gain", "diag/ablation/memory/zeroed/relative_change",
             "diag/ablation/memory/reset1/relative_change", "collapse_rate_sampled", "audit_flags"),
    log_outputs=log_outputs, readable_name=readable_name, curve="val/bits_per_byte",
    summary_metrics=("bpb_mean", "bpb_spread"),
    summary_columns=("name", "verdict", "seeds_run", "errored", "bpb_mean", "bpb_std", "bpb_spread",
                     "tok/tokens_per_byte", "model/parameters", "audit_flags", "config_id"),
    figures=figures)
"""The language-model trainable (``trainables.lm``) as the runtime runs it."""
