"""`make sweep-addition`: Optuna over addition configurations, seeds as replicates, verdicts in MLflow.

    python -m tune_jobs.sweep_addition --space default --num-configs 3 --seeds 3

Every configuration Optuna suggests runs on each seed of the space; Optuna sees the success rate
(ties broken by mean best exact match). No early-stopping scheduler: grokking arrives late. Each
trial holds one CPU and one intra-op thread (or its GPUs). MLflow gets one parent run per sweep,
a nested run per trial, and the verdict of every configuration (``tune_jobs.verdict``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Optional

import pandas as pd
import tyro

from mlflow_utils import TrackingError, sweep_run
from search_spaces import SearchSpace, SearchSpaceError, validate
from search_spaces.addition import SPACES
from trainables.addition.config import ModelConfig, TrainConfig
from tune_jobs.verdict import MIN_SEEDS, SUCCESS_THRESHOLD, grokking_step, summary_line, verdict_table

if TYPE_CHECKING:
    from ray.tune import ResultGrid

    from mlflow_utils import SweepTracker
    from tune_jobs.mlflow_callback import MlflowTrialRuns

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class SweepArgs:
    """Budget, search and tracking settings of one addition sweep."""

    space: str = "default"
    """Named search space: default, smoke, lowrank, full (see search_spaces/addition.py)."""
    num_configs: int = 3
    """Configurations Optuna suggests (each runs on every seed): trials = num_configs x seeds."""
    seeds: Optional[int] = None
    """Seed replicates per configuration (the space's first N, extended by consecutive integers)."""
    train_steps: Optional[int] = None
    """Override the space's training steps (the cosine schedule spans them)."""
    eval_interval: Optional[int] = None
    """Override the space's evaluation interval."""
    mode: Optional[Literal["faithful", "fast"]] = None
    """Override the space's trainable mode."""
    max_concurrent: int = 0
    """Trials at once; 0 = as many as CPU cores (or GPUs) allow."""
    threads: int = 1
    """Intra-op threads (and CPUs reserved) per trial."""
    gpus_per_trial: float = 0.0
    """GPUs per trial; > 0 trains on CUDA."""
    success_threshold: float = SUCCESS_THRESHOLD
    """Validation exact match at which a seed counts as a success."""
    min_seeds: int = MIN_SEEDS
    """Finished seeds below which a configuration's verdict is INCONCLUSIVE."""
    search_seed: int = 0
    """Seed of Optuna's TPE sampler (study variance, kept apart from the trial seeds)."""
    experiment: str = "addition-sweep"
    """MLflow experiment name."""
    name: Optional[str] = None
    """Sweep name (Tune experiment and parent run); default addition-<space>-<UTC time>."""
    tracking_uri: Optional[str] = None
    """MLflow tracking URI; default $MLFLOW_TRACKING_URI or sqlite:///<project>/mlruns.db."""
    storage_path: Path = PROJECT_ROOT / "ray_results"
    """Where Tune keeps trial results and checkpoints (shared storage on a cluster)."""
    ray_address: Optional[str] = None
    """Ray cluster to join; default $RAY_ADDRESS, else a local Ray started for this sweep."""

    def __post_init__(self) -> None:
        checks = [("num_configs", self.num_configs, self.num_configs >= 1),
                  ("seeds", self.seeds, self.seeds is None or self.seeds >= 1),
                  ("train_steps", self.train_steps, self.train_steps is None or self.train_steps >= 1),
                  ("eval_interval", self.eval_interval, self.eval_interval is None or self.eval_interval >= 1),
                  ("max_concurrent", self.max_concurrent, self.max_concurrent >= 0),
                  ("threads", self.threads, self.threads >= 1),
                  ("gpus_per_trial", self.gpus_per_trial, self.gpus_per_trial >= 0),
                  ("success_threshold", self.success_threshold, 0 < self.success_threshold <= 1),
                  ("min_seeds", self.min_seeds, self.min_seeds >= 1)]
        for field_name, value, ok in checks:
            if not ok:
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
        seeds = list(space.seeds[: args.seeds])
        while len(seeds) < args.seeds:
            seeds.append(max(seeds) + 1)
        space = space.with_seeds(tuple(seeds))
    validate(space, {"model": ModelConfig, "train": TrainConfig})
    return space


def trial_table(results: "ResultGrid", threshold: float, train_steps_of: dict[str, int]) -> pd.DataFrame:
    """One row per trial from a Tune ResultGrid: seed, finished, best exact match, grokking step, config."""
    rows = []
    for result in results:
        config = result.config
        history = result.metrics_dataframe
        has_history = history is not None and "val/exact_match" in history
        steps = history["step"].tolist() if has_history else []
        ems = history["val/exact_match"].tolist() if has_history else []
        cid = (result.metrics or {}).get("config_id") or _config_id(config)
        # steps are 0-based: a trial that ran its whole schedule last reported train_steps - 1
        finished = result.error is None and bool(steps) and steps[-1] >= train_steps_of.get(cid, math.inf) - 1
        rows.append({"trial_id": (result.metrics or {}).get("trial_id"), "config_id": cid,
                     "seed": _seed(config), "finished": finished,
                     "best_exact_match": max(ems) if ems else math.nan,
                     "grokking_step": grokking_step(steps, ems, threshold),
                     "error": None if result.error is None else str(result.error).splitlines()[0][:300],
                     **{f"{s}.{k}": v for s in ("model",) for k, v in config.get(s, {}).items()},
                     "train.lr": config["train"]["lr"], "train.train_steps": config["train"]["train_steps"]})
    return pd.DataFrame(rows)


def _config_id(config: dict) -> str:
    from tune_jobs.search import config_id

    return config_id(config)


def _seed(config: dict) -> int:
    from tune_jobs.search import seed_of

    return seed_of(config)


def run_sweep(args: SweepArgs, space: SearchSpace | None = None) -> pd.DataFrame:
    """Run the sweep end to end; returns the verdict table (also logged to MLflow and printed).

    Args:
        args: budgets and settings.
        space: a search space object instead of the named ``args.space`` (tests, notebooks).

    Raises:
        SearchSpaceError: the space holds an impossible configuration (nothing started).
        TrackingError: MLflow is unreachable (nothing trained).
    """
    space = resolve_space(args, space)
    name = args.name or f"addition-{space.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"

    params = {f"sweep.{k}": v for k, v in dataclasses.asdict(args).items()}
    params.update({"sweep.seed_list": list(space.seeds), "sweep.space_description": space.description})
    tags = {"job": "sweep-addition", "space": space.name}
    with sweep_run(name, args.experiment, params, tags, args.tracking_uri) as tracker:
        grid, callback = _fit(args, space, name, tracker)
        train_steps = {_config_id(r.config): int(r.config["train"]["train_steps"]) for r in grid}
        trials = trial_table(grid, args.success_threshold, train_steps)
        table = verdict_table(trials.drop(columns=["error", "trial_id"]), args.success_threshold, args.min_seeds)
        _log_verdicts(tracker, table, trials, callback.runs)
    _print(name, table, trials, tracker, callback.failures)
    return table


def _fit(args: SweepArgs, space: SearchSpace, name: str, tracker: "SweepTracker") -> tuple["ResultGrid", "MlflowTrialRuns"]:
    import ray
    from ray import tune

    from tune_jobs.addition_trial import addition_trial
    from tune_jobs.mlflow_callback import MlflowTrialRuns
    from tune_jobs.search import OBJECTIVE, make_searcher, param_space

    if not ray.is_initialized():
        ray.init(address=args.ray_address or os.environ.get("RAY_ADDRESS"), include_dashboard=False,
                 log_to_driver=True, configure_logging=False)
    resources = {"cpu": args.threads, "gpu": args.gpus_per_trial}
    if args.max_concurrent:
        concurrent = args.max_concurrent
    elif args.gpus_per_trial > 0:
        concurrent = max(1, int(ray.cluster_resources().get("GPU", 0) // args.gpus_per_trial))
    else:
        concurrent = max(1, int(ray.cluster_resources().get("CPU", 1) // args.threads))
    callback = MlflowTrialRuns(tracker)
    tuner = tune.Tuner(
        tune.with_resources(addition_trial, resources),
        param_space=param_space(space, success_threshold=args.success_threshold),
        tune_config=tune.TuneConfig(search_alg=make_searcher(space, args.search_seed), metric=OBJECTIVE, mode="max",
                                    num_samples=args.num_configs * len(space.seeds),
                                    max_concurrent_trials=concurrent, reuse_actors=True,
                                    trial_dirname_creator=lambda trial: trial.trial_id),
        run_config=tune.RunConfig(name=name, storage_path=str(Path(args.storage_path).resolve()),
                                  callbacks=[callback], verbose=1),
    )
    return tuner.fit(), callback


def _log_verdicts(tracker: "SweepTracker", table: pd.DataFrame, trials: pd.DataFrame, run_ids: dict[str, str]) -> None:
    """Verdicts on the parent run (tags and a table) and on each child run (tags)."""
    if table.empty:
        return
    tracker.log_table(table, "verdict")
    tags = {f"verdict.{row['config_id']}": summary_line(row) for _, row in table.iterrows()}
    tracker.set_tags(tracker.parent_run_id, {**tags, "verdict.best_config": table.iloc[0]["config_id"]})
    by_config = table.set_index("config_id")
    for trial in trials.itertuples():
        run_id = run_ids.get(trial.trial_id)
        if run_id is None or trial.config_id not in by_config.index:
            continue
        row = by_config.loc[trial.config_id]
        tracker.set_tags(run_id, {"verdict": row["verdict"], "config_success_rate": f"{row['success_rate']:.4f}",
                                  "seed_succeeded": str(trial.grokking_step is not None and trial.finished).lower()})


def _print(name: str, table: pd.DataFrame, trials: pd.DataFrame, tracker: "SweepTracker", failures: int) -> None:
    columns = ["config_id", "verdict", "successes", "seeds_run", "errored", "wilson_low", "wilson_high",
               "mean_best_exact_match", "grokking_steps", "model.d_model", "model.d_ff", "model.pos_rank",
               "model.qkv_rank", "model.attn_out_rank", "model.ffn_rank", "model.use_rmsnorm", "train.lr"]
    print(f"\nReproducibility verdicts of sweep {name} ({len(trials)} trials):")
    if table.empty:
        print("  no trial reported a result")
    else:
        with pd.option_context("display.width", 250, "display.max_columns", 40, "display.float_format", "{:.4g}".format):
            print(table[[c for c in columns if c in table.columns]].to_string(index=False))
    errors = trials[trials["error"].notna()]
    for row in errors.itertuples():
        print(f"  trial {row.trial_id} (config {row.config_id}, seed {row.seed}) failed: {row.error}")
    print(f"MLflow: experiment {tracker.experiment_id}, parent run {tracker.parent_run_id} "
          f"at {tracker.client.tracking_uri}; MLflow calls that failed: {failures}")


def main(argv: list[str] | None = None) -> int:
    try:
        args = tyro.cli(SweepArgs, args=argv)
        table = run_sweep(args)
    except (SearchSpaceError, TrackingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if not table.empty else 1


if __name__ == "__main__":
    sys.exit(main())
