"""The language-model trainable as a Ray Tune function trainable: one trial = one configuration x one seed."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
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
    run_lm(config, tune.report, tune.get_checkpoint, tune.Checkpoint)


def run_lm(config: dict[str, Any], report_to: Callable[..., None], get_checkpoint: Callable[[], Any] | None,
           checkpoint_type: Any, shard: tuple[int, int] = (0, 1),
           prepare: Callable[[torch.nn.Module], torch.nn.Module] | None = None) -> None:
    """The body of ``lm_trial`` for any reporting API: Tune's (a trial) or Ray Train's (one
    data-parallel worker of rank ``shard[0]``; only rank 0 writes and hands over the output folder).

    ``get_checkpoint`` is accepted for symmetry with ``run_addition`` but not called: LM runs keep no
    resumable state, so a retried trial starts again from step 0 (same seed, same numbers).
    """
    del get_checkpoint  # no resume for the LM trainable (see the docstring)
    seed = seed_of(config)
    run = LMRun.from_sections({s: config[s] for s in SECTIONS if s in config}, train={"seed": seed})
    constant = {"seed": seed, "config_id": config_id(config),
                **{f"env/{k}": v for k, v in provenance(run.train.device, run.train.threads).items()}}

    def report(metrics: dict[str, Any], out_dir: Path | None) -> None:
        result = {**metrics, OBJECTIVE: -metrics["val/bits_per_byte"], **constant}
        handed = out_dir is not None and shard[0] == 0
        report_to(result, checkpoint=checkpoint_type.from_directory(str(out_dir)) if handed else None)

    with tempfile.TemporaryDirectory(prefix="reprotune-lm-") as out_dir:
        train(run, out_dir, report, shard=shard, prepare=prepare)
