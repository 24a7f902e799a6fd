"""What every sweep job shares: settings, the Tune run, the per-trial table, verdicts in MLflow.

A job (``sweep_addition``, ``sweep_command``) resolves and validates its search space, then calls
``run_sweep`` with its trainable. Each configuration Optuna suggests runs once per seed
(``SeedReplicates``); no early-stopping scheduler; one CPU and ``threads`` threads per trial.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import pandas as pd

from mlflow_utils import sweep_run
from search_spaces import SearchSpace
from tune_jobs.search import OBJECTIVE, config_id, make_searcher, param_space, seed_of
from tune_jobs.settings import RunSettings, fit
from tune_jobs.verdict import MIN_SEEDS, SUCCESS_THRESHOLD, grokking_step, summary_line, verdict_table

if TYPE_CHECKING:
    from ray.tune import ResultGrid

    from mlflow_utils import SweepTracker
    from tune_jobs.mlflow_callback import MlflowTrialRuns


@dataclass(frozen=True)
class SweepSettings(RunSettings):
    """Budget and search settings common to every sweep job (plus where trials run and are recorded)."""

    num_configs: int = 3
    """Configurations Optuna suggests (each runs on every seed): trials = num_configs x seeds."""
    success_threshold: float = SUCCESS_THRESHOLD
    """Validation exact match at which a seed counts as a success."""
    min_seeds: int = MIN_SEEDS
    """Finished seeds below which a configuration's verdict is INCONCLUSIVE."""
    search_seed: int = 0
    """Seed of Optuna's TPE sampler (study variance, kept apart from the trial seeds)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for field_name, ok in (("num_configs", self.num_configs >= 1), ("min_seeds", self.min_seeds >= 1),
                               ("success_threshold", 0 < self.success_threshold <= 1)):
            if not ok:
                raise ValueError(f"{field_name} has an impossible value: {getattr(self, field_name)!r}")


def _flat_config(config: dict[str, Any]) -> dict[str, Any]:
    return {f"{section}.{k}": v for section, fields in config.items() if isinstance(fields, dict)
            for k, v in fields.items() if k != "seed"}


def trial_table(results: "ResultGrid", threshold: float) -> pd.DataFrame:
    """One row per trial of a ResultGrid: config id, seed, finished, best exact match, grokking step,
    error, and the configuration's fields. A trial finished when it ended without an error."""
    rows = []
    for result in results:
        history = result.metrics_dataframe
        has_history = history is not None and "val/exact_match" in history
        steps = history["step"].tolist() if has_history else []
        ems = history["val/exact_match"].tolist() if has_history else []
        rows.append({"trial_id": (result.metrics or {}).get("trial_id"), "config_id": config_id(result.config),
                     "seed": seed_of(result.config), "finished": result.error is None and bool(steps),
                     "best_exact_match": max(ems) if ems else math.nan,
                     "grokking_step": grokking_step(steps, ems, threshold),
                     "error": None if result.error is None else str(result.error).strip().splitlines()[-1][:300],
                     **_flat_config(result.config)})
    return pd.DataFrame(rows)


def run_sweep(settings: SweepSettings, space: SearchSpace, trainable: Callable[[dict], None], job: str,
              constants: dict[str, Any] | None = None, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Run a validated space through Tune and return (and log, and print) the verdict table.

    The parent run's params are every field of ``settings`` (a job's own settings dataclass) and the
    space's seeds and description.

    Args:
        settings: budgets, search seed, tracking.
        space: the validated search space.
        trainable: Tune function trainable reading its config's sections and ``seeds``.
        job: job name (tags, default sweep name).
        constants: extra keys of every trial config (e.g. the job file).
        columns: configuration columns to print beside the verdict.

    Raises:
        TrackingError: MLflow is unreachable (nothing trained).
    """
    name = settings.job_name(f"{job}-{space.name}")
    all_params = {f"sweep.{k}": v for k, v in dataclasses.asdict(settings).items()}
    all_params.update({"sweep.seed_list": list(space.seeds), "sweep.space": space.name,
                       "sweep.space_description": space.description})
    with sweep_run(name, settings.experiment, all_params, {"job": job, "space": space.name},
                   settings.tracking_uri) as tracker:
        grid, callback = _fit(settings, space, name, tracker, trainable, constants or {})
        trials = trial_table(grid, settings.success_threshold)
        table = verdict_table(trials.drop(columns=["error", "trial_id"]), settings.success_threshold,
                              settings.min_seeds)
        _log_verdicts(tracker, table, trials, callback.runs)
    _print(name, table, trials, tracker, callback.failures, columns)
    return table


def _fit(settings: SweepSettings, space: SearchSpace, name: str, tracker: "SweepTracker",
         trainable: Callable[[dict], None], constants: dict[str, Any]) -> tuple["ResultGrid", "MlflowTrialRuns"]:
    return fit(settings, trainable, param_space(space, success_threshold=settings.success_threshold, **constants),
               name=name, tracker=tracker, search_alg=make_searcher(space, settings.search_seed), metric=OBJECTIVE,
               mode="max", num_samples=settings.num_configs * len(space.seeds))


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
        succeeded = bool(trial.finished) and pd.notna(trial.grokking_step)
        tracker.set_tags(run_id, {"verdict": row["verdict"], "config_success_rate": f"{row['success_rate']:.4f}",
                                  "seed_succeeded": str(bool(succeeded)).lower()})


def _print(name: str, table: pd.DataFrame, trials: pd.DataFrame, tracker: "SweepTracker", failures: int,
           columns: tuple[str, ...]) -> None:
    shown = ["config_id", "verdict", "successes", "seeds_run", "errored", "wilson_low", "wilson_high",
             "mean_best_exact_match", "grokking_steps", *columns]
    print(f"\nReproducibility verdicts of sweep {name} ({len(trials)} trials):")
    if table.empty:
        print("  no trial reported a result")
    else:
        with pd.option_context("display.width", 250, "display.max_columns", 40, "display.float_format", "{:.4g}".format):
            print(table[[c for c in shown if c in table.columns]].to_string(index=False))
    for row in trials[trials["error"].notna()].itertuples():
        print(f"  trial {row.trial_id} (config {row.config_id}, seed {row.seed}) failed: {row.error}")
    print(f"MLflow: experiment {tracker.experiment_id}, parent run {tracker.parent_run_id} "
          f"at {tracker.client.tracking_uri}; MLflow calls that failed: {failures}")
