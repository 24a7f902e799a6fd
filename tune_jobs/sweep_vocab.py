"""`make sweep-vocab`: Optuna over tokenizer vocabulary size, d_model and lr; seeds as replicates.

    python -m tune_jobs.sweep_vocab --num-configs 4 --seeds 3 --set tokenizer.algorithm='"char"'

Arguments -> space (``search_spaces/lm/<space>.toml`` with the ``--set`` overrides, every field of
the language model's config recorded) -> the language-model trial (``trials.lm``) ->
``runtime.job.run_sweep``: every configuration Optuna suggests runs once per seed, Optuna sees minus
the mean validation bits per byte (comparable across vocabularies; ``trainables.lm.evaluate``), and
each configuration gets its verdict: bits per byte over seeds plus audit flags (``verdicts.lm``).
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from typing import Any, Optional

import pandas as pd

from search_spaces import Choice, IntRange, LogUniform, SearchSpace, load_space, validate, with_sets
from trainables.checks import require
from trainables.lm.config import SECTIONS, DataConfig, LMRun
from trainables.lm.corpus import absolute_corpus, check_corpora, corpora_of
from tune_jobs.runtime.cli import run_main
from tune_jobs.runtime.job import run_sweep
from tune_jobs.runtime.searcher import with_run_settings
from tune_jobs.runtime.settings import SweepSettings
from tune_jobs.trials.lm import LM
from tune_jobs.verdicts import lm


@dataclass(frozen=True)
class VocabSweepArgs(SweepSettings):
    """Budget, search and tracking settings of one vocabulary sweep."""

    space: str = "default"
    """Search space: a name in search_spaces/lm/ (default, smoke) or a path to a .toml file."""
    set: tuple[str, ...] = ()
    """Fix or re-range fields of the space: section.field=value (a TOML value), e.g. train.lr=0.003; repeatable."""
    num_configs: int = 4
    """Configurations Optuna suggests (each runs on every seed): trials = num_configs x seeds."""
    train_steps: Optional[int] = None
    """Override the space's training steps (the schedule spans them)."""
    eval_interval: Optional[int] = None
    """Override the space's evaluation interval."""
    corpus: Optional[str] = None
    """Override the corpus: stdlib, en, fr, es, or a path (made absolute: trials run in their own folders)."""
    max_bytes: Optional[int] = None
    """Override the corpus cap in UTF-8 bytes."""
    spread_tolerance: float = lm.SPREAD_TOLERANCE
    """Largest bits-per-byte spread over seeds of a CONSISTENT configuration."""
    experiment: str = "vocab-sweep"
    """MLflow experiment name."""

    def check(self) -> None:
        super().check()
        for field_name, value, ok in (
                ("train_steps", self.train_steps, self.train_steps is None or self.train_steps >= 1),
                ("eval_interval", self.eval_interval, self.eval_interval is None or self.eval_interval >= 1),
                ("max_bytes", self.max_bytes, self.max_bytes is None or self.max_bytes >= 0),
                ("spread_tolerance", self.spread_tolerance, self.spread_tolerance >= 0)):
            require(ok, f"{field_name} has an impossible value: {value!r}")


def resolve_space(args: VocabSweepArgs, space: SearchSpace | None = None) -> SearchSpace:
    """The space (``args.space``, or ``space``) with ``--set`` and the CLI's overrides, every field
    of every section filled in, validated before Ray starts.

    Raises:
        SearchSpaceError: an impossible point, naming the file (or ``--set``), the field and the value.
    """
    space = with_sets(space or load_space(args.space, "lm"), args.set, SECTIONS)
    space = with_run_settings(space, args, args.train_steps, args.eval_interval, 0, 1 / 10)
    corpus = None if args.corpus is None else absolute_corpus(args.corpus)
    data = {k: v for k, v in (("corpus", corpus), ("max_bytes", args.max_bytes)) if v is not None}
    space = space.with_overrides(data=data)
    space = space.with_overrides(**LMRun.complete(space.sections))  # every field recorded, defaults included
    validate(space, SECTIONS)
    return space


def space_corpora(space: SearchSpace) -> list[DataConfig]:
    """Every corpus a point of ``space`` can read: each value of ``data.corpus`` and of
    ``tokenizer.extra_corpora`` (all choices), at every extreme of the other ``data`` fields."""
    def values(value: Any) -> tuple[Any, ...]:
        return value.extremes() if isinstance(value, (Choice, IntRange, LogUniform)) else (value,)

    data = {k: values(v) for k, v in space.sections.get("data", {}).items()}
    extras = values(space.sections.get("tokenizer", {}).get("extra_corpora", ()))
    configs = []
    for combo in itertools.product(*data.values()):
        for extra in extras:
            configs += corpora_of(DataConfig(**dict(zip(data, combo))), extra)
    return configs


def run_vocab_sweep(args: VocabSweepArgs, space: SearchSpace | None = None) -> pd.DataFrame:
    """Run the sweep end to end; returns the verdict table (also logged to MLflow and printed).

    Raises:
        SearchSpaceError: the space holds an impossible configuration (nothing started).
        ConfigError: a corpus of the space is missing, empty, binary or too small to split (nothing started).
        TrackingError: MLflow is unreachable (nothing trained).
    """
    space = resolve_space(args, space)
    check_corpora(space_corpora(space))
    return run_sweep(args, space, LM, "sweep-vocab", f"vocab-{space.name}")


def main(argv: list[str] | None = None) -> int:
    return run_main(VocabSweepArgs, run_vocab_sweep, argv)


if __name__ == "__main__":
    sys.exit(main())
