"""The addition trainable as a Ray Tune function trainable: one trial = one configuration x one seed."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from ray import tune

from trainables.addition.checkpoint import load_checkpoint
from trainables.addition.config import ModelConfig, TrainConfig
from trainables.addition.evaluate import PROTOCOLS
from trainables.addition.train import BEST_CHECKPOINT, LAST_CHECKPOINT, train
from trainables.provenance import provenance
from tune_jobs.cluster import node_tags
from tune_jobs.search import OBJECTIVE, TIE_BREAK, config_id, seed_of
from tune_jobs.trial_checkpoints import checkpoint_interval, hand_over, restore_latest


def addition_trial(config: dict[str, Any]) -> None:
    """Train the trial's configuration with its replicate seed, reporting at every evaluation.

    Each report carries the trainable's metrics, ``success`` (best validation exact match at or
    above ``config['success_threshold']``), the Optuna ``objective``, and ``env/*`` provenance
    strings. Every ``checkpoint_interval`` steps (config key; default every evaluation, 0 = only at
    the end) and at the last step a report carries the checkpoint folder (best.pt, last.pt); a
    retried or restored trial continues from Tune's latest checkpoint, bit-identical to a run never
    stopped, and reports ``resumed_from_step``. When the config names a ``protocol`` (100k,
    adderboard, validation), the last report adds ``protocol/exact_match``: the best checkpoint's
    score on it. ``max_steps`` stops the run early on its full schedule.
    """
    run_addition(config, tune.report, tune.get_checkpoint, tune.Checkpoint)


def run_addition(config: dict[str, Any], report_to: Callable[..., None], get_checkpoint: Callable[[], Any],
                 checkpoint_type: Any, shard: tuple[int, int] = (0, 1),
                 prepare: Callable[[torch.nn.Module], torch.nn.Module] | None = None) -> None:
    """The body of ``addition_trial`` for any reporting API: Tune's (a trial) or Ray Train's (one
    data-parallel worker of rank ``shard[0]``; only rank 0 hands its checkpoints over)."""
    seed = seed_of(config)
    model_config = ModelConfig.from_dict(config["model"])
    train_config = TrainConfig.from_dict({**config["train"], "seed": seed})
    threshold = float(config.get("success_threshold", 0.99))
    protocol = config.get("protocol")
    constant = {"seed": seed, "config_id": config_id(config), **node_tags(),
                **{f"env/{k}": v for k, v in provenance(train_config.device, train_config.threads).items()}}

    def report(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        best = metrics["val/best_exact_match"]
        success = float(best >= threshold)
        result = {**metrics, "success": success, OBJECTIVE: success + TIE_BREAK * best, **constant}
        if "test/exact_match" in metrics and protocol:
            result["protocol/exact_match"] = protocol_score(protocol, checkpoint_dir, best, train_config.device,
                                                            train_config.eval_batch_size)
        hand_over(report_to, checkpoint_type, shard[0], result, checkpoint_dir)

    with tempfile.TemporaryDirectory(prefix="reprotune-") as out_dir:
        resumed_at = restore_latest(get_checkpoint, out_dir, LAST_CHECKPOINT)
        if resumed_at is not None:
            constant["resumed_from_step"] = resumed_at
        train(model_config, train_config, out_dir, report, max_steps=config.get("max_steps"),
              checkpoint_interval=checkpoint_interval(config, train_config.eval_interval),
              resume_from=None if resumed_at is None else out_dir, shard=shard, prepare=prepare)


def protocol_score(protocol: str, checkpoint_dir: str | Path, best_val_exact_match: float, device: str = "cpu",
                   batch_size: int = 512) -> float:
    """Exact match of a run's best checkpoint (``best.pt`` in the reference format) on a published
    protocol; for 'validation', the best validation exact match seen during training.

    Raises:
        FileNotFoundError: the folder has no best.pt.
    """
    if protocol == "validation":
        return best_val_exact_match
    loaded = load_checkpoint(Path(checkpoint_dir) / BEST_CHECKPOINT, device)
    return PROTOCOLS[protocol](loaded.model, batch_size).exact_match
