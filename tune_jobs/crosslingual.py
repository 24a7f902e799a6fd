"""`make crosslingual`: the same model on English and French, with one shared tokenizer and one per language.

    python -m tune_jobs.crosslingual --seeds 1 --vocab-size 2048

Arguments -> a grid of language (``en``: Tiny Shakespeare, ``fr``: Les trois mousquetaires; see
``$REPROTUNE_CORPORA_DIR/SOURCES.md``) x tokenizer scope (``per-language``: trained on that
language's training split; ``shared``: one tokenizer trained on both training splits), every cell
once per seed -> the language-model trial (``trials.lm``) -> the LM verdict per cell, and the
comparison: per language and scope, validation bits per byte (the comparable number), tokens per
character and per byte, side by side: a printed table, a ``crosslingual`` table and
``crosslingual/<lang>/<scope>/*`` metrics on the parent MLflow run. Both corpora are normalized (no
BOM, LF line ends, no Gutenberg header/license) and capped at the same number of UTF-8 bytes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import pandas as pd

from trainables.checks import require
from trainables.lm.config import LMRun
from trainables.lm.corpus import check_corpora, corpora_of
from trainables.lm.data import tokenizer_text
from trainables.lm.tokenizer import build_tokenizer
from tune_jobs.runtime.cli import run_main
from tune_jobs.runtime.job import open_job
from tune_jobs.runtime.searcher import fixed_replicates
from tune_jobs.runtime.settings import RunSettings
from tune_jobs.runtime.trial_config import RUN
from tune_jobs.trials.lm import LM

LANGUAGES = ("en", "fr")
SCOPES = {"per-language": [], "shared": list(LANGUAGES)}
"""Tokenizer scope -> ``tokenizer.extra_corpora`` (the shared tokenizer learns from both languages)."""


@dataclass(frozen=True)
class CrosslingualArgs(RunSettings):
    """Budget and settings of the cross-lingual comparison."""

    seeds: int = 1
    """Seed replicates per (language, scope); verdicts need 3 (fewer are INCONCLUSIVE)."""
    vocab_size: int = 2048
    """Byte-level BPE vocabulary of every tokenizer."""
    d_model: int = 128
    """Model width (2 layers, 4 heads, 128 tokens of context)."""
    lr: float = 3e-3
    """Peak learning rate."""
    train_steps: int = 400
    """Optimizer steps."""
    eval_interval: int = 100
    """Evaluation interval."""
    max_bytes: int = 1_000_000
    """Each corpus is capped at this many UTF-8 bytes (the same for both languages)."""
    experiment: str = "crosslingual"
    """MLflow experiment name."""

    def check(self) -> None:
        super().check()
        for field_name in ("seeds", "vocab_size", "d_model", "train_steps", "eval_interval", "max_bytes"):
            require(getattr(self, field_name) >= 1, f"{field_name} has an impossible value: {getattr(self, field_name)!r}")
        require(self.lr > 0, f"lr has an impossible value: {self.lr!r}")


def grid_configs(args: CrosslingualArgs) -> list[dict[str, dict[str, Any]]]:
    """Every (language, scope) configuration, every field of every section filled in."""
    base = {"model": {"d_model": args.d_model, "n_layer": 2, "n_head": 4, "context_length": 128},
            "train": {"lr": args.lr, "train_steps": args.train_steps, "eval_interval": args.eval_interval,
                      "warmup_steps": max(1, min(40, args.train_steps // 10)), "batch_size": 16, "threads": args.threads},
            "data": {"max_bytes": args.max_bytes},
            "tokenizer": {"algorithm": "byte_bpe", "vocab_size": args.vocab_size}}
    configs = []
    for language in LANGUAGES:
        for extra in SCOPES.values():
            sections = {**base, "data": {**base["data"], "corpus": language},
                        "tokenizer": {**base["tokenizer"], "extra_corpora": extra}}
            configs.append(LMRun.complete(sections))
    return configs


def warm_tokenizers(configs: list[dict[str, dict[str, Any]]]) -> None:
    """Build every tokenizer of the grid once, so concurrent trials find them in the cache.

    Raises:
        FileNotFoundError: a corpus is missing (names $REPROTUNE_CORPORA_DIR).
    """
    for sections in configs:
        run = LMRun.from_sections(sections)
        build_tokenizer(run.tokenizer, tokenizer_text(run))


def comparison_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """One row per (language, scope): bits per byte over seeds, tokens per char/byte, verdict."""
    scope = verdicts["tokenizer/extra_corpora"].map(lambda v: "shared" if json.loads(v) else "per-language")
    columns = ["data/corpus", "scope", "bpb_mean", "bpb_std", "seeds_run", "tok/tokens_per_char",
               "tok/tokens_per_byte", "tok/vocab_used", "val/loss", "collapse_rate_sampled", "verdict", "audit_flags"]
    table = verdicts.assign(scope=scope)[columns].rename(columns={"data/corpus": "language"})
    return table.sort_values(["language", "scope"]).reset_index(drop=True)


def run_crosslingual(args: CrosslingualArgs) -> pd.DataFrame:
    """Run the grid; returns the comparison table (also printed and logged to MLflow).

    Raises:
        ConfigError: a corpus is missing, empty, binary or too small to split (nothing started).
        TrackingError: MLflow is unreachable (nothing trained).
    """
    configs = grid_configs(args)
    runs = [LMRun.from_sections(sections) for sections in configs]
    check_corpora(data for run in runs for data in corpora_of(run.data, run.tokenizer.extra_corpora))
    warm_tokenizers(configs)
    seeds = list(range(args.seeds))
    with open_job(args, LM, "crosslingual", "crosslingual", {}, {}, label="-".join(LANGUAGES)) as job:
        _, trials = job.fit(LM, {RUN: {}}, fixed_replicates(configs, seeds, LM.failure_score), len(configs) * len(seeds))
        job.raise_if_interrupted()
        verdicts = LM.verdict_table(trials, args)
        intro = [f"**crosslingual**: {' and '.join(LANGUAGES)}, each with its own tokenizer and with one shared "
                 f"tokenizer, {len(seeds)} seed(s) a cell, {args.train_steps} steps; job `{job.name}`."]
        job.log_verdicts(LM, verdicts, trials, intro)
        table = comparison_table(verdicts)
        job.tracker.log_table(table, "crosslingual")
        job.tracker.log_summary(job.tracker.parent_run_id, _metrics(table))
    print(f"\nCross-lingual comparison {job.name} ({len(trials)} trials):")
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print(table.to_string(index=False))
    for row in trials[trials["error"].notna()].itertuples():
        print(f"  trial {row.trial_id} (config {row.config_id}, seed {row.seed}) failed: {row.error}")
    job.print_footer()
    return table


def _metrics(table: pd.DataFrame) -> dict[str, float]:
    keys = {"bpb_mean": "bits_per_byte", "tok/tokens_per_char": "tokens_per_char",
            "tok/tokens_per_byte": "tokens_per_byte"}
    return {f"crosslingual/{row['language']}/{row['scope']}/{name}": float(row[column])
            for _, row in table.iterrows() for column, name in keys.items()}


def main(argv: list[str] | None = None) -> int:
    return run_main(CrosslingualArgs, run_crosslingual, argv)


if __name__ == "__main__":
    sys.exit(main())
