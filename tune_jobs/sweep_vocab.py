"""`make sweep-vocab`: Optuna over tokenizer vocabulary size, d_model and lr; seeds as replicates.

    python -m tune_jobs.sweep_vocab --num-configs 4 --seeds 3

Every configuration Optuna suggests runs on each seed of the space; Optuna sees minus the mean
validation bits per byte (comparable across vocabularies; ``trainables.lm.evaluate``). Each trial
holds one CPU and one intra-op thread. MLflow gets one parent run per sweep, a nested run per
trial (metrics, checkpoint folder with the tokenizer JSON, the completions table), and each
configuration's verdict: bits per byte over seeds plus audit flags (``tune_jobs.lm_verdict``).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Optional

import pandas as pd
import tyro

from mlflow_utils import TrackingError, sweep_run
from search_spaces import SearchSpace, SearchSpaceError, validate
from search_spaces.lm import SPACES
from trainables.lm.config import SECTIONS, LMRun
from tune_jobs import lm_verdict
from tune_jobs.settings import RunSettings, fit
from tune_jobs.verdict import MIN_SEEDS


@dataclass(frozen=True)
class VocabSweepArgs(RunSettings):
    """Budget, search and tracking settings of one vocabulary sweep."""

    space: str = "default"
    """Named search space: default, smoke (see search_spaces/lm.py)."""
    num_configs: int = 4
    """Configurations Optuna suggests (each runs on every seed): trials = num_configs x seeds."""
    seeds: Optional[int] = None
    """Seed replicates per configuration (the space's first N, extended by consecutive integers)."""
    train_steps: Optional[int] = None
    """Override the space's training steps (the schedule spans them)."""
    eval_interval: Optional[int] = None
    """Override the space's evaluation interval."""
    corpus: Optional[str] = None
    """Override the corpus: stdlib, en, fr, es, or a path."""
    max_bytes: Optional[int] = None
    """Override the corpus cap in UTF-8 bytes."""
    min_seeds: int = MIN_SEEDS
    """Finished seeds below which a configuration's verdict is INCONCLUSIVE."""
    spread_tolerance: float = lm_verdict.SPREAD_TOLERANCE
    """Largest bits-per-byte spread over seeds of a CONSISTENT configuration."""
    search_seed: int = 0
    """Seed of Optuna's TPE sampler (study variance, kept apart from the trial seeds)."""
    experiment: str = "vocab-sweep"
    """MLflow experiment name."""

    def __post_init__(self) -> None:
        super().__post_init__()
        checks = [("num_configs", self.num_configs, self.num_configs >= 1),
                  ("seeds", self.seeds, self.seeds is None or self.seeds >= 1),
                  ("train_steps", self.train_steps, self.train_steps is None or self.train_steps >= 1),
                  ("eval_interval", self.eval_interval, self.eval_interval is None or self.eval_interval >= 1),
                  ("max_bytes", self.max_bytes, self.max_bytes is None or self.max_bytes >= 0),
                  ("min_seeds", self.min_seeds, self.min_seeds >= 1),
                  ("spread_tolerance", self.spread_tolerance, self.spread_tolerance >= 0)]
        for field_name, value, ok in checks:
            if not ok:
                raise ValueError(f"{field_name} has an impossible value: {value!r}")
        if self.space not in SPACES:
            raise ValueError(f"space {self.space!r} is unknown; known: {', '.join(SPACES)}")


def resolve_space(args: VocabSweepArgs, space: SearchSpace | None = None) -> SearchSpace:
    """The named space (or ``space``) with the CLI's overrides, validated before Ray starts.

    Raises:
        SearchSpaceError: an impossible point, naming the field and value.
    """
    space = space or SPACES[args.space]
    train = {k: v for k, v in (("train_steps", args.train_steps), ("eval_interval", args.eval_interval))
             if v is not None}
    train["threads"] = args.threads
    if args.gpus_per_trial > 0:
        train["device"] = "cuda"
    if args.train_steps is not None and space.sections.get("train", {}).get("warmup_steps", 0) >= args.train_steps:
        train["warmup_steps"] = max(1, args.train_steps // 10)
    data = {k: v for k, v in (("corpus", args.corpus), ("max_bytes", args.max_bytes)) if v is not None}
    space = space.with_overrides(train=train, data=data)
    space = space.with_overrides(**LMRun.complete(space.sections))  # every field recorded, defaults included
    if args.seeds is not None:
        space = space.with_seed_count(args.seeds)
    validate(space, SECTIONS)
    return space


def run_sweep(args: VocabSweepArgs, space: SearchSpace | None = None) -> pd.DataFrame:
    """Run the sweep end to end; returns the verdict table (also logged to MLflow and printed).

    Raises:
        SearchSpaceError: the space holds an impossible configuration (nothing started).
        TrackingError: MLflow is unreachable (nothing trained).
    """
    from tune_jobs.lm_results import log_trial_outputs, trial_table
    from tune_jobs.lm_trial import FAILURE_OBJECTIVE, lm_trial
    from tune_jobs.search import OBJECTIVE, make_searcher, param_space

    space = resolve_space(args, space)
    name = args.job_name(f"vocab-{space.name}")
    params = {f"sweep.{k}": v for k, v in dataclasses.asdict(args).items()}
    params.update({"sweep.seed_list": list(space.seeds), "sweep.space_description": space.description})
    started = time.perf_counter()
    with sweep_run(name, args.experiment, params, {"job": "sweep-vocab", "space": space.name},
                   args.tracking_uri) as tracker:
        searcher = make_searcher(space, args.search_seed, failure_score=FAILURE_OBJECTIVE)
        grid, callback = fit(args, lm_trial, param_space(space), name=name, tracker=tracker, search_alg=searcher,
                             metric=OBJECTIVE, mode="max", num_samples=args.num_configs * len(space.seeds))
        trials = trial_table(grid)
        table = lm_verdict.verdict_table(trials.drop(columns=["error", "trial_id"]), args.min_seeds,
                                         args.spread_tolerance)
        log_trial_outputs(tracker, grid, callback.runs)
        _log_verdicts(tracker, table, trials, callback.runs, time.perf_counter() - started)
    _print(name, table, trials, tracker, callback.failures, time.perf_counter() - started)
    return table


def _log_verdicts(tracker, table: pd.DataFrame, trials: pd.DataFrame, run_ids: dict[str, str], seconds: float) -> None:
    """Verdicts on the parent run (tags, a table, the wall time) and on each child run (tags)."""
    tracker.log_metrics(tracker.parent_run_id, {"perf/sweep_seconds": seconds}, step=0)
    if table.empty:
        return
    tracker.log_table(table, "verdict")
    tracker.log_table(trials, "trials")
    tags = {f"verdict.{row['config_id']}": lm_verdict.summary_line(row) for _, row in table.iterrows()}
    judged = table[table["verdict"] != lm_verdict.SUSPECT]
    best = judged.iloc[0]["config_id"] if not judged.empty else "none (every configuration is SUSPECT)"
    tracker.set_tags(tracker.parent_run_id, {**tags, "verdict.best_config": best})
    by_config = table.set_index("config_id")
    for trial in trials.itertuples():
        run_id = run_ids.get(trial.trial_id)
        if run_id is not None and trial.config_id in by_config.index:
            row = by_config.loc[trial.config_id]
            tracker.set_tags(run_id, {"verdict": row["verdict"], "config_bpb_mean": f"{row['bpb_mean']:.4f}"})


def _print(name: str, table: pd.DataFrame, trials: pd.DataFrame, tracker, failures: int, seconds: float) -> None:
    columns = ["config_id", "verdict", "seeds_run", "errored", "bpb_mean", "bpb_std", "bpb_spread",
               "tokenizer.vocab_size", "model.d_model", "train.lr", "tok/tokens_per_byte", "tok/vocab_used",
               "model/parameters", "collapse_rate_sampled", "audit_flags"]
    print(f"\nVerdicts of vocabulary sweep {name} ({len(trials)} trials, {seconds / 60:.1f} min):")
    if table.empty:
        print("  no trial reported a result")
    else:
        with pd.option_context("display.width", 250, "display.max_columns", 40, "display.max_colwidth", 60,
                               "display.float_format", "{:.4g}".format):
            print(table[[c for c in columns if c in table.columns]].to_string(index=False))
        for row in table[table["audit_reasons"] != ""].itertuples():
            print(f"  {row.config_id} SUSPECT: {row.audit_reasons}")
    for row in trials[trials["error"].notna()].itertuples():
        print(f"  trial {row.trial_id} (config {row.config_id}, seed {row.seed}) failed: {row.error}")
    print(f"MLflow: experiment {tracker.experiment_id}, parent run {tracker.parent_run_id} "
          f"at {tracker.client.tracking_uri}; MLflow calls that failed: {failures}")


def main(argv: list[str] | None = None) -> int:
    try:
        args = tyro.cli(VocabSweepArgs, args=argv)
        table = run_sweep(args)
    except (SearchSpaceError, TrackingError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if not table.empty else 1


if __name__ == "__main__":
    sys.exit(main())
