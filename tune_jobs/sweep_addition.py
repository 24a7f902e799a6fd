"""`make sweep-addition`: Optuna over addition configurations, seeds as replicates, verdicts in MLflow.

    python -m tune_jobs.sweep_addition --space default --num-configs 3 --seeds 3

Every configuration Optuna suggests runs on each seed of the space; Optuna sees the success rate
(ties broken by mean best exact match). No early-stopping scheduler: grokking arrives late. Each
trial holds one CPU and one intra-op thread (or its GPUs). MLflow gets one parent run per sweep,
a nested run per trial, and the verdict of every configuration (``tune_jobs.verdict``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal, Optional

import pandas as pd
import tyro

from mlflow_utils import TrackingError
from search_spaces import SearchSpace, SearchSpaceError, validate
from search_spaces.addition import SPACES
from trainables.addition.config import ModelConfig, TrainConfig
from tune_jobs.sweep import SweepSettings, run_sweep

COLUMNS = ("model.d_model", "model.d_ff", "model.pos_rank", "model.qkv_rank", "model.attn_out_rank", "model.ffn_rank",
           "model.use_rmsnorm", "train.lr")


@dataclass(frozen=True)
class SweepArgs(SweepSettings):
    """Budget, search and tracking settings of one addition sweep."""

    space: str = "default"
    """Named search space: default, smoke, lowrank, full (see search_spaces/addition.py)."""
    seeds: Optional[int] = None
    """Seed replicates per configuration (the space's first N, extended by consecutive integers)."""
    train_steps: Optional[int] = None
    """Override the space's training steps (the cosine schedule spans them)."""
    eval_interval: Optional[int] = None
    """Override the space's evaluation interval."""
    mode: Optional[Literal["faithful", "fast"]] = None
    """Override the space's trainable mode."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for field_name in ("seeds", "train_steps", "eval_interval"):
            value = getattr(self, field_name)
            if value is not None and value < 1:
                raise ValueError(f"{field_name} has an impossible value: {value!r}")
        if self.space not in SPACES:
            raise ValueError(f"space {self.space!r} is unknown; known: {', '.join(SPACES)}")


def resolve_space(args: SweepArgs, space: SearchSpace | None = None) -> SearchSpace:
    """The named space (or ``space``) with the CLI's overrides applied, validated before Ray starts.

    Raises:
        SearchSpaceError: an impossible point, naming the field and value.
    """
    space = space or SPACES[args.space]
    train = {k: v for k, v in (("train_steps", args.train_steps), ("eval_interval", args.eval_interval),
                               ("mode", args.mode)) if v is not None}
    train["threads"] = args.threads
    if args.gpus_per_trial > 0:
        train["device"] = "cuda"
    if args.train_steps is not None:
        warmup = space.sections.get("train", {}).get("warmup_steps", TrainConfig.warmup_steps)
        if warmup >= args.train_steps:
            train["warmup_steps"] = max(1, args.train_steps // 20)
    space = space.with_overrides(train=train)
    if args.seeds is not None:
        space = space.with_seed_count(args.seeds)
    validate(space, {"model": ModelConfig, "train": TrainConfig})
    return space


def run_addition_sweep(args: SweepArgs, space: SearchSpace | None = None) -> pd.DataFrame:
    """Run the addition sweep end to end; returns the verdict table (also logged to MLflow and printed).

    Args:
        args: budgets and settings.
        space: a search space object instead of the named ``args.space`` (tests, notebooks).

    Raises:
        SearchSpaceError: the space holds an impossible configuration (nothing started).
        TrackingError: MLflow is unreachable (nothing trained).
    """
    from tune_jobs.addition_trial import addition_trial

    return run_sweep(args, resolve_space(args, space), addition_trial, "addition", columns=COLUMNS)


def main(argv: list[str] | None = None) -> int:
    try:
        args = tyro.cli(SweepArgs, args=argv)
        table = run_addition_sweep(args)
    except (SearchSpaceError, TrackingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if not table.empty else 1


if __name__ == "__main__":
    sys.exit(main())
