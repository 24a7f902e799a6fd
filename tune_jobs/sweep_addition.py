"""`make sweep-addition`: Optuna over addition configurations, seeds as replicates, verdicts in MLflow.

    python -m tune_jobs.sweep_addition --space default --num-configs 3 --seeds 3 --set train.lr=0.015

Arguments -> space (``search_spaces/addition/<space>.toml`` with the ``--set`` overrides) -> the
addition trial (``trials.addition``) -> ``runtime.job.run_sweep``: every configuration Optuna
suggests runs once per seed of the space, Optuna sees the success rate (ties broken by mean best
exact match), and MLflow gets one parent run per sweep, a nested run per trial, and the verdict of
every configuration (``verdicts.seeds``). No early-stopping scheduler: grokking arrives late.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Literal, Optional

import pandas as pd

from search_spaces import SearchSpace, load_space, validate, with_sets
from trainables.addition.config import ModelConfig, TrainConfig
from trainables.checks import ConfigError
from tune_jobs.runtime.cli import run_main
from tune_jobs.runtime.job import run_sweep
from tune_jobs.runtime.searcher import with_run_settings
from tune_jobs.runtime.settings import SweepSettings
from tune_jobs.trials.addition import ADDITION, STACKED_TRAIN

SECTIONS = {"model": ModelConfig, "train": TrainConfig}
"""The addition trainable's config sections: what a space's tables and ``--set`` may name."""



@dataclass(frozen=True)
class SweepArgs(SweepSettings):
    """Budget, search and tracking settings of one addition sweep."""

    num_configs: int = 3
    """Configurations (each runs on every seed): the space's points first, then Optuna's suggestions.
    3: the default space's three points (the record's fast learner, its 512p model and a positive control)
    x 3 seeds = 9 trials, about 41 trial-minutes, under 30 minutes on 2 cores (RESULTS.md 2026-12-03);
    4 or more adds Optuna's suggestions (each about 6 trial-minutes a seed when it fails)."""
    space: str = "default"
    """Search space: a name in search_spaces/addition/ (default, short, smoke, lowrank, full) or a path to a .toml file."""
    set: tuple[str, ...] = ()
    """Fix or re-range fields of the space: section.field=value (a TOML value), e.g. train.lr=0.015 or
    'train.lr={loguniform=[0.005,0.03]}'; repeatable."""
    train_steps: Optional[int] = None
    """Override the space's training steps (the cosine schedule spans them; warmup shrinks to fit)."""
    eval_interval: Optional[int] = None
    """Override the space's evaluation interval."""
    mode: Optional[Literal["faithful", "fast"]] = None
    """Override the space's trainable mode."""
    experiment: str = "addition-sweep"
    """MLflow experiment name."""
    stop_after_success: int = 2
    """End a seed's run once validation exact match has been at or above the success threshold at this
    many evaluations in a row (its success cannot change any more; the lr schedule is not shortened);
    0 trains every run to the end. A stacked trial (--seeds-per-trial > 1) trains its seeds to the end."""

    def trial_run_settings(self) -> dict[str, Any]:
        stop = self.stop_after_success if self.seeds_per_trial == 1 else 0  # a stacked trial trains to the end
        return {**super().trial_run_settings(), "stop_after_success": stop}

    def check(self) -> None:
        super().check()
        for field_name in ("train_steps", "eval_interval"):
            value = getattr(self, field_name)
            if value is not None and value < 1:
                raise ConfigError(f"{field_name} has an impossible value: {value!r}")
        if self.stop_after_success < 0:
            raise ConfigError(f"stop_after_success has an impossible value: {self.stop_after_success!r} "
                              "(evaluations in a row; 0 trains every run to the end)")


def resolve_space(args: SweepArgs, space: SearchSpace | None = None) -> SearchSpace:
    """The space (``args.space``, or ``space``) with ``--set`` and the CLI's shortcuts applied,
    validated before Ray starts.

    Raises:
        SearchSpaceError: an impossible point, naming the file (or ``--set``), the field and the value.
    """
    space = with_sets(space or load_space(args.space, "addition"), args.set, SECTIONS)
    space = with_run_settings(space, args, args.train_steps, args.eval_interval, TrainConfig.warmup_steps, 1 / 20)
    if args.mode is not None:
        space = space.with_overrides(train={"mode": args.mode})
    if args.seeds_per_trial > 1:  # a seed trains on the same batches alone or stacked: the counter stream
        space = space.with_overrides(train=STACKED_TRAIN)
    validate(space, SECTIONS)
    return space


def run_addition_sweep(args: SweepArgs, space: SearchSpace | None = None) -> pd.DataFrame:
    """Run the addition sweep end to end; returns the verdict table (also logged to MLflow and printed).

    Args:
        args: budgets and settings.
        space: a search space object instead of the file ``args.space`` (tests, notebooks).

    Raises:
        SearchSpaceError: the space holds an impossible configuration (nothing started).
        TrackingError: MLflow is unreachable (nothing trained).
    """
    space = resolve_space(args, space)
    return run_sweep(args, space, ADDITION, "sweep-addition", f"addition-{space.name}")


def main(argv: list[str] | None = None) -> int:
    return run_main(SweepArgs, run_addition_sweep, argv)


if __name__ == "__main__":
    sys.exit(main())
