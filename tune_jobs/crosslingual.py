"""`make crosslingual`: the same model on English and French, with one shared tokenizer and one per language.

    python -m tune_jobs.crosslingual --seeds 1 --vocab-size 2048

A grid of language (``en``: Tiny Shakespeare, ``fr``: Les trois mousquetaires; see
``$REPROTUNE_CORPORA_DIR/SOURCES.md``) x tokenizer scope (``per-language``: trained on that
language's training split; ``shared``: one tokenizer trained on both training splits) x seed.
Both corpora are normalized (no BOM, LF line ends, no Gutenberg header/license) and capped at the
same number of UTF-8 bytes. Per language and scope the job reports validation bits per byte (the
comparable number), tokens per character and per byte, side by side: a printed table, a
``crosslingual`` table and ``crosslingual/<lang>/<scope>/*`` metrics on the parent MLflow run.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any

import pandas as pd
import tyro

from mlflow_utils import TrackingError, sweep_run
from trainables.lm.config import LMRun
from tune_jobs.lm_verdict import summary_line, verdict_table
from tune_jobs.settings import RunSettings, fit
from tune_jobs.verdict import MIN_SEEDS

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

    def __post_init__(self) -> None:
        super().__post_init__()
        for field_name in ("seeds", "vocab_size", "d_model", "train_steps", "eval_interval", "max_bytes", "threads"):
            if getattr(self, field_name) < 1:
                raise ValueError(f"{field_name} has an impossible value: {getattr(self, field_name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr has an impossible value: {self.lr!r}")


def base_sections(args: CrosslingualArgs) -> dict[str, dict[str, Any]]:
    """The configuration shared by every trial, every field (language and scope are gridded on top)."""
    return LMRun.complete({"model": {"d_model": args.d_model, "n_layer": 2, "n_head": 4, "context_length": 128},
            "train": {"lr": args.lr, "train_steps": args.train_steps, "eval_interval": args.eval_interval,
                      "warmup_steps": max(1, min(40, args.train_steps // 10)), "batch_size": 16,
                      "threads": args.threads},
            "data": {"max_bytes": args.max_bytes},
            "tokenizer": {"algorithm": "byte_bpe", "vocab_size": args.vocab_size}})


def warm_tokenizers(sections: dict[str, dict[str, Any]]) -> None:
    """Build every tokenizer of the grid once, so concurrent trials find them in the cache.

    Raises:
        FileNotFoundError: a corpus is missing (names $REPROTUNE_CORPORA_DIR).
    """
    from trainables.lm.data import tokenizer_text
    from trainables.lm.tokenizer import build_tokenizer

    for language in LANGUAGES:
        for extra in SCOPES.values():
            run = LMRun.from_sections(sections, data={"corpus": language}, tokenizer={"extra_corpora": extra})
            build_tokenizer(run.tokenizer, tokenizer_text(run))


def comparison_table(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (language, scope): bits per byte over seeds, tokens per char/byte, verdict."""
    trials = trials.assign(scope=trials["tokenizer.extra_corpora"].map(lambda v: "shared" if v else "per-language"))
    verdicts = verdict_table(trials.drop(columns=["error", "trial_id"]), MIN_SEEDS)
    verdicts["verdict_line"] = verdicts.apply(summary_line, axis=1)
    columns = ["data.corpus", "scope", "bpb_mean", "bpb_std", "seeds_run", "tok/tokens_per_char",
               "tok/tokens_per_byte", "tok/vocab_used", "val/loss", "collapse_rate_sampled", "verdict", "audit_flags"]
    table = verdicts[columns].rename(columns={"data.corpus": "language"})
    return table.sort_values(["language", "scope"]).reset_index(drop=True)


def run(args: CrosslingualArgs) -> pd.DataFrame:
    """Run the grid; returns the comparison table (also printed and logged to MLflow).

    Raises:
        FileNotFoundError: a corpus is missing.
        TrackingError: MLflow is unreachable (nothing trained).
    """
    from ray import tune
    from ray.tune.search.repeater import TRIAL_INDEX

    from tune_jobs.lm_results import log_trial_outputs, trial_table
    from tune_jobs.lm_trial import lm_trial

    sections = base_sections(args)
    warm_tokenizers(sections)
    name = args.job_name("crosslingual")
    space = {**sections, "data": {**sections["data"], "corpus": tune.grid_search(list(LANGUAGES))},
             "tokenizer": {**sections["tokenizer"], "extra_corpora": tune.grid_search(list(SCOPES.values()))},
             "seeds": list(range(args.seeds)), TRIAL_INDEX: tune.grid_search(list(range(args.seeds)))}
    params = {f"crosslingual.{k}": v for k, v in dataclasses.asdict(args).items()}
    with sweep_run(name, args.experiment, params, {"job": "crosslingual"}, args.tracking_uri) as tracker:
        grid, callback = fit(args, lm_trial, space, name=name, tracker=tracker, num_samples=1)
        trials = trial_table(grid)
        table = comparison_table(trials)
        log_trial_outputs(tracker, grid, callback.runs)
        tracker.log_table(table, "crosslingual")
        tracker.log_table(trials, "trials")
        tracker.log_metrics(tracker.parent_run_id, _metrics(table), step=0)
    _print(name, table, trials)
    return table


def _metrics(table: pd.DataFrame) -> dict[str, float]:
    keys = {"bpb_mean": "bits_per_byte", "tok/tokens_per_char": "tokens_per_char",
            "tok/tokens_per_byte": "tokens_per_byte"}
    return {f"crosslingual/{row['language']}/{row['scope']}/{name}": float(row[column])
            for _, row in table.iterrows() for column, name in keys.items()}


def _print(name: str, table: pd.DataFrame, trials: pd.DataFrame) -> None:
    print(f"\nCross-lingual comparison {name} ({len(trials)} trials):")
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print(table.to_string(index=False))
    for _, row in trials[trials["error"].notna()].iterrows():
        print(f"  trial {row['trial_id']} ({row['data.corpus']}, seed {row['seed']}) failed: {row['error']}")


def main(argv: list[str] | None = None) -> int:
    try:
        table = run(tyro.cli(CrosslingualArgs, args=argv))
    except (TrackingError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if not table.empty else 1


if __name__ == "__main__":
    sys.exit(main())
