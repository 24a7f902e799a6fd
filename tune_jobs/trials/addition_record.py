"""The addition trial's resolved config as it reports it (``runtime.run_record``): every field, the schedule."""

from __future__ import annotations

from typing import Any, Mapping

from trainables.addition.config import ModelConfig, TrainConfig
from tune_jobs.runtime.run_record import resolved_report
from tune_jobs.runtime.trial_config import run_settings, steps_run

SCHEDULE_KIND = "linear-warmup-cosine"
"""The learning-rate schedule of ``TrainConfig.lr_at``: linear warmup, then cosine to ``min_lr_ratio``."""
SECTIONS = {"model": ModelConfig, "train": TrainConfig}
"""Config section -> its dataclass: what a run's params are read back into (``tune_jobs.rerun``)."""


def censoring_step(train_config: TrainConfig, run: Mapping[str, Any]) -> int:
    """The last step a seed can grok at: the schedule's last 0-based step, or ``max_steps`` - 1 when
    the run settings stop it earlier."""
    return steps_run(train_config.train_steps, run) - 1


def addition_params(config: Mapping[str, Any], train_config: TrainConfig) -> dict[str, str]:
    """``param/*`` result keys: every ``ModelConfig`` and ``TrainConfig`` field (the data stream is
    ``train.stream``), ``schedule.kind`` and ``grokking_censored_at`` (``censoring_step``)."""
    model_config = ModelConfig.from_dict(config["model"])
    extra = {"schedule.kind": SCHEDULE_KIND, "grokking_censored_at": censoring_step(train_config, run_settings(config))}
    return resolved_report({"model": model_config, "train": train_config}, extra)
