"""The language-model trainable as a Ray Tune function trainable: one trial = one configuration x one seed."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from ray import tune

from trainables.lm.config import SECTIONS, LMRun
from trainables.lm.train import MODEL_FILE, train
from trainables.provenance import provenance
from tune_jobs.cluster import node_tags
from tune_jobs.search import OBJECTIVE, config_id, seed_of
from tune_jobs.trial_checkpoints import checkpoint_interval, hand_over, restore_latest

FAILURE_OBJECTIVE = -16.0
"""Objective of a crashed replicate: -16 bits per byte, worse than a uniform guess over bytes (8)."""


def lm_trial(config: dict[str, Any]) -> None:
    """Train the trial's configuration with its replicate seed, reporting at every evaluation.

    Each report carries the trainable's metrics, the Optuna ``objective`` (minus validation bits
    per byte: higher is better), ``config_id``, ``seed`` and ``env/*`` provenance strings. Every
    ``checkpoint_interval`` steps (config key; default every evaluation, 0 = only at the end, else
    rounded up to a multiple of ``train.eval_interval``) a report carries the checkpoint folder
    (model.pt with the resume state); the last one carries the output folder (model.pt,
    tokenizer.json, completions.json, run.json). A retried or restored trial continues from Tune's
    latest checkpoint, bit-identical to a run never stopped, and reports ``resumed_from_step``.
    """
    run_lm(config, tune.report, tune.get_checkpoint, tune.Checkpoint)


def run_lm(config: dict[str, Any], report_to: Callable[..., None], get_checkpoint: Callable[[], Any] | None,
           checkpoint_type: Any, shard: tuple[int, int] = (0, 1),
           prepare: Callable[[torch.nn.Module], torch.nn.Module] | None = None) -> None:
    """The body of ``lm_trial`` for any reporting API: Tune's (a trial) or Ray Train's (one
    data-parallel worker of rank ``shard[0]``; only rank 0 writes and hands over checkpoints, and
    every rank resumes from the one ``get_checkpoint`` returns). ``get_checkpoint`` None: never resume.
    """
    seed = seed_of(config)
    run = LMRun.from_sections({s: config[s] for s in SECTIONS if s in config}, train={"seed": seed})
    constant = {"seed": seed, "config_id": config_id(config), **node_tags(),
                **{f"env/{k}": v for k, v in provenance(run.train.device, run.train.threads).items()}}
    def report(metrics: dict[str, Any], out_dir: Path | None) -> None:
        hand_over(report_to, checkpoint_type, shard[0], {**metrics, OBJECTIVE: -metrics["val/bits_per_byte"],
                                                         **constant}, out_dir)

    with tempfile.TemporaryDirectory(prefix="reprotune-lm-") as out_dir:
        resumed_at = restore_latest(get_checkpoint, out_dir, MODEL_FILE)
        if resumed_at is not None:
            constant["resumed_from_step"] = resumed_at
        train(run, out_dir, report, shard=shard, prepare=prepare,
              checkpoint_interval=checkpoint_interval(config, run.train.eval_interval),
              resume_from=None if resumed_at is None else out_dir)
