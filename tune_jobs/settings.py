"""Settings every Tune job shares (resources, tracking, storage, cluster), starting Ray, and the Tune fit."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from ray.tune import ResultGrid

    from mlflow_utils import SweepTracker
    from tune_jobs.mlflow_callback import MlflowTrialRuns

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RunSettings:
    """Where and how a job's trials run and are recorded."""

    max_concurrent: int = 0
    """Trials at once; 0 = as many as CPU cores (or GPUs) allow."""
    threads: int = 1
    """Intra-op threads (and CPUs reserved) per trial; the numbers depend on it."""
    gpus_per_trial: float = 0.0
    """GPUs per trial; > 0 trains on CUDA."""
    experiment: str = "addition-sweep"
    """MLflow experiment name."""
    name: Optional[str] = None
    """Job name (Tune experiment and parent run); default <job>-<UTC time>."""
    tracking_uri: Optional[str] = None
    """MLflow tracking URI; default $MLFLOW_TRACKING_URI or sqlite:///<project>/mlruns.db."""
    storage_path: Path = PROJECT_ROOT / "ray_results"
    """Where Tune keeps trial results and checkpoints (shared storage on a cluster)."""
    ray_address: Optional[str] = None
    """Ray cluster to join; default $RAY_ADDRESS, else a local Ray started for this job."""
    checkpoint_interval: Optional[int] = None
    """Steps between trial checkpoints (rounded up to an evaluation step); default every evaluation, 0 = at the end."""
    max_failures: int = 2
    """Times a crashed trial is retried from its latest checkpoint before it counts as failed."""
    resume: bool = False
    """Continue the interrupted job ``name`` (default: this job's newest one in storage_path) with Tuner.restore."""

    def __post_init__(self) -> None:
        for field_name, ok in (("max_concurrent", self.max_concurrent >= 0), ("threads", self.threads >= 1),
                               ("gpus_per_trial", self.gpus_per_trial >= 0), ("max_failures", self.max_failures >= -1),
                               ("checkpoint_interval", self.checkpoint_interval is None or self.checkpoint_interval >= 0)):
            if not ok:
                raise ValueError(f"{field_name} has an impossible value: {getattr(self, field_name)!r}")

    def job_name(self, prefix: str) -> str:
        """The Tune experiment (and parent run) name: ``name``; with ``resume`` and no name, the newest
        experiment in ``storage_path`` starting with ``prefix-``; else ``prefix-<UTC time>``.

        Raises:
            ValueError: ``resume`` is set and there is nothing to resume.
        """
        from ray.tune import Tuner

        storage = Path(self.storage_path).expanduser().resolve()
        if self.resume:
            if self.name:
                candidates = [storage / self.name]
            else:
                candidates = sorted(storage.glob(f"{prefix}-*"), key=lambda path: path.stat().st_mtime, reverse=True)
            for path in candidates:
                if Tuner.can_restore(str(path)):
                    return path.name
            raise ValueError(f"resume: no interrupted job {self.name or prefix + '-*'!r} to restore in {storage}")
        return self.name or f"{prefix}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"

    def resources(self) -> dict[str, float]:
        """Ray resources of one trial."""
        return {"cpu": self.threads, "gpu": self.gpus_per_trial}

    def start_ray(self) -> int:
        """Join or start Ray; returns how many trials may run at once."""
        import ray

        if not ray.is_initialized():
            ray.init(address=self.ray_address or os.environ.get("RAY_ADDRESS"), include_dashboard=False,
                     configure_logging=False)
        if self.max_concurrent:
            return self.max_concurrent
        if self.gpus_per_trial > 0:
            return max(1, int(ray.cluster_resources().get("GPU", 0) // self.gpus_per_trial))
        return max(1, int(ray.cluster_resources().get("CPU", 1) // self.threads))


def fit(settings: RunSettings, trainable: Callable[[dict], None], param_space: dict[str, Any], *, name: str,
        tracker: "SweepTracker", config_of: Callable[[dict], dict] | None = None,
        **tune_config: Any) -> tuple["ResultGrid", "MlflowTrialRuns"]:
    """Run ``trainable`` under Tune with ``settings``' resources and storage, each trial mirrored into
    MLflow under ``tracker``'s parent run. ``tune_config`` goes to ``tune.TuneConfig`` (search_alg,
    num_samples, metric, mode, ...).

    Crashed trials are retried ``settings.max_failures`` times from their latest checkpoint. With
    ``settings.resume`` the experiment ``storage_path/name`` is restored instead (finished trials
    kept, unfinished and errored ones continued from their checkpoints, the searcher's state
    reloaded). After the fit, every trial's results in Tune's storage are reconciled into MLflow, so
    what a killed driver or an unreachable server missed is logged once.
    """
    from ray import tune

    from tune_jobs.mlflow_callback import MlflowTrialRuns

    concurrent = settings.start_ray()
    callback = MlflowTrialRuns(tracker, config_of) if config_of else MlflowTrialRuns(tracker)
    if settings.checkpoint_interval is not None:
        param_space = {**param_space, "checkpoint_interval": settings.checkpoint_interval}
    trainable = tune.with_resources(trainable, settings.resources())
    path = Path(settings.storage_path).expanduser().resolve() / name
    if settings.resume:
        tuner = tune.Tuner.restore(str(path), trainable, resume_unfinished=True, resume_errored=True,
                                   param_space=param_space)
    else:
        tuner = tune.Tuner(
            trainable, param_space=param_space,
            tune_config=tune.TuneConfig(max_concurrent_trials=concurrent, reuse_actors=True,
                                        trial_dirname_creator=lambda trial: trial.trial_id, **tune_config),
            run_config=tune.RunConfig(name=name, storage_path=str(path.parent), callbacks=[callback], verbose=1,
                                      failure_config=tune.FailureConfig(max_failures=settings.max_failures),
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
        )
    grid = tuner.fit()
    callback.reconcile(grid)
    return grid, callback
