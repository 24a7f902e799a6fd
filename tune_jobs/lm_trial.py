"""The language-model trainable as a Ray Tune function trainable: one trial = one configuration x one seed."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ray import tune

from trainables.lm.config import SECTIONS, LMRun
from trainables.lm.train import train
from trainables.provenance import provenance
from tune_jobs.search import OBJECTIVE, config_id, seed_of

FAILURE_OBJECTIVE = -16.0
"""Objective of a crashed replicate: -16 bits per byte, worse than a uniform guess over bytes (8)."""


def lm_trial(config: dict[str, Any]) -> None:
    """Train the trial's configuration with its replicate seed, reporting at every evaluation.

    Each report carries the trainable's metrics, the Optuna ``objective`` (minus validation bits
    per byte: higher is better), ``config_id``, ``seed`` and ``env/*`` provenance strings; the last
    one carries the output folder (model.pt, tokenizer.json, completions.json, run.json).
    """
    seed = seed_of(config)
    run = LMRun.from_sections({s: config[s] for s in SECTIONS if s in config}, train={"seed": seed})
    constant = {"seed": seed, "config_id": config_id(config),
                **{f"env/{k}": v for k, v in provenance(run.train.device, run.train.threads).items()}}

    def report(metrics: dict[str, Any], out_dir: Path | None) -> None:
        result = {**metrics, OBJECTIVE: -metrics["val/bits_per_byte"], **constant}
        checkpoint = tune.Checkpoint.from_directory(str(out_dir)) if out_dir else None
        tune.report(result, checkpoint=checkpoint)

    with tempfile.TemporaryDirectory(prefix="reprotune-lm-") as out_dir:
        train(run, out_dir, report)
