"""The addition trainable as a Ray Tune function trainable: one trial = one configuration x one seed."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ray import tune

from trainables.addition.config import ModelConfig, TrainConfig
from trainables.addition.train import train
from trainables.provenance import provenance
from tune_jobs.search import OBJECTIVE, TIE_BREAK, config_id, seed_of


def addition_trial(config: dict[str, Any]) -> None:
    """Train the trial's configuration with its replicate seed, reporting at every evaluation.

    Each report carries the trainable's metrics, ``success`` (best validation exact match at or
    above ``config['success_threshold']``), the Optuna ``objective``, and ``env/*`` provenance
    strings; the last one carries the checkpoint folder (best.pt, last.pt).
    """
    seed = seed_of(config)
    model_config = ModelConfig.from_dict(config["model"])
    train_config = TrainConfig.from_dict({**config["train"], "seed": seed})
    threshold = float(config["success_threshold"])
    constant = {"seed": seed, "config_id": config_id(config),
                **{f"env/{k}": v for k, v in provenance(train_config.device, train_config.threads).items()}}

    def report(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        best = metrics["val/best_exact_match"]
        success = float(best >= threshold)
        result = {**metrics, "success": success, OBJECTIVE: success + TIE_BREAK * best, **constant}
        checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        tune.report(result, checkpoint=checkpoint)

    with tempfile.TemporaryDirectory(prefix="reprotune-") as out_dir:
        train(model_config, train_config, out_dir, report)
