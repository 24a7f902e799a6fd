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
    storage_path: str = str(PROJECT_ROOT / "ray_results")
    """Where Tune keeps trial results and checkpoints: a folder, or a URI (s3://, gs://); on a
    multi-node cluster a folder every node sees (NFS) or a URI, checked before any trial runs."""
    ray_address: Optional[str] = None
    """Ray cluster to join; default $RAY_ADDRESS, else a local Ray started for this job."""
    checkpoint_interval: Optional[int] = None
    """Steps between trial checkpoints (rounded up to an evaluation step); default every evaluation, 0 = at the end."""
    max_failures: int = 2
    """Times a crashed trial is retried from its latest checkpoint before it counts as failed."""
    workers: int = 1
    """Data-parallel Ray Train workers per trial (each with ``threads`` CPUs or ``gpus_per_trial`` GPUs);
    > 1 runs every trial as a TorchTrainer driven from Tune (tune_jobs/data_parallel.py)."""
    resume: bool = False
    """Continue the interrupted job ``name`` (default: this job's newest one in storage_path) with Tuner.restore."""

    def __post_init__(self) -> None:
        for field_name, ok in (("max_concurrent", self.max_concurrent >= 0), ("threads", self.threads >= 1),
                               ("gpus_per_trial", self.gpus_per_trial >= 0), ("max_failures", self.max_failures >= -1),
                               ("workers", self.workers >= 1),
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

        storage = self.storage()
        if self.resume:
            if self.name:
                candidates = [f"{storage.rstrip('/')}/{self.name}"]
            elif is_uri(storage):
                raise ValueError(f"resume: name the job to restore (--name) when storage_path is a URI ({storage})")
            else:
                candidates = [str(path) for path in sorted(Path(storage).glob(f"{prefix}-*"),
                                                           key=lambda path: path.stat().st_mtime, reverse=True)]
            for path in candidates:
                if Tuner.can_restore(path):
                    return path.rstrip("/").rsplit("/", 1)[-1]
            raise ValueError(f"resume: no interrupted job {self.name or prefix + '-*'!r} to restore in {storage}")
        return self.name or f"{prefix}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"

    def storage(self) -> str:
        """``storage_path`` as Tune takes it: a URI unchanged, a folder made absolute."""
        return self.storage_path if is_uri(self.storage_path) else str(Path(self.storage_path).expanduser().resolve())

    def resources(self) -> dict[str, float]:
        """Ray resources of one trial: its CPUs and GPUs, or, for a data-parallel trial, one driver
        slot (its workers take the CPUs and GPUs)."""
        from tune_jobs.data_parallel import DRIVER_RESOURCE

        if self.workers > 1:
            return {"cpu": 0, DRIVER_RESOURCE: 1}
        return {"cpu": self.threads, "gpu": self.gpus_per_trial}

    def start_ray(self) -> int:
        """Join or start Ray; returns how many trials may run at once."""
        import ray

        from mlflow_utils import resolve_tracking_uri
        from tune_jobs.data_parallel import DRIVER_RESOURCE, DRIVER_SLOTS

        if not ray.is_initialized():
            address = self.ray_address or os.environ.get("RAY_ADDRESS")
            # every worker sees the job's absolute tracking URI (user code in a trial may log to it)
            runtime_env = {"env_vars": {"MLFLOW_TRACKING_URI": resolve_tracking_uri(self.tracking_uri)}}
            local = {} if address else {"resources": {DRIVER_RESOURCE: DRIVER_SLOTS}}
            try:
                ray.init(address=address, include_dashboard=False, configure_logging=False, runtime_env=runtime_env,
                         **local)
            except ConnectionError as error:
                raise ConnectionError(
                    f"ray_address {address!r}: cannot join the Ray cluster ({error}). Ray >= 2.59 clusters use "
                    "token authentication: export RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH (or RAY_AUTH_TOKEN) "
                    "before starting the job; for `make cluster-up`'s cluster: . .cluster/cluster.env") from error
        if self.workers > 1 and not ray.cluster_resources().get(DRIVER_RESOURCE):
            raise ValueError(f"workers={self.workers}: data-parallel trials need the custom resource "
                             f"{DRIVER_RESOURCE!r} on a node of the cluster (e.g. ray start --head "
                             f"--resources='{{\"{DRIVER_RESOURCE}\": {DRIVER_SLOTS}}}')")
        if self.max_concurrent:
            return self.max_concurrent
        if self.gpus_per_trial > 0:
            return max(1, int(ray.cluster_resources().get("GPU", 0) // (self.gpus_per_trial * self.workers)))
        return max(1, int(ray.cluster_resources().get("CPU", 1) // (self.threads * self.workers)))


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

    from tune_jobs.data_parallel import RAY_TRAIN, data_parallel, worker_loop_for
    from tune_jobs.mlflow_callback import MlflowTrialRuns

    worker_loop = worker_loop_for(trainable) if settings.workers > 1 else None
    concurrent = settings.start_ray()
    callback = MlflowTrialRuns(tracker, config_of) if config_of else MlflowTrialRuns(tracker)
    storage = settings.storage()
    if settings.checkpoint_interval is not None:
        param_space = {**param_space, "checkpoint_interval": settings.checkpoint_interval}
    if settings.workers > 1:
        param_space = {**param_space, RAY_TRAIN: {
            "workers": settings.workers, "cpus_per_worker": settings.threads,
            "gpus_per_worker": settings.gpus_per_trial, "storage": f"{storage.rstrip('/')}/{name}/ray_train"}}
        trainable = data_parallel(worker_loop)
    trainable = tune.with_resources(trainable, settings.resources())
    check_shared_storage(storage)
    if settings.resume:
        tuner = tune.Tuner.restore(f"{storage.rstrip('/')}/{name}", trainable, resume_unfinished=True,
                                   resume_errored=True, param_space=param_space)
    else:
        tuner = tune.Tuner(
            trainable, param_space=param_space,
            tune_config=tune.TuneConfig(max_concurrent_trials=concurrent, reuse_actors=True,
                                        trial_dirname_creator=lambda trial: trial.trial_id, **tune_config),
            run_config=tune.RunConfig(name=name, storage_path=storage, callbacks=[callback], verbose=1,
                                      failure_config=tune.FailureConfig(max_failures=settings.max_failures),
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
        )
    grid = tuner.fit()
    callback.reconcile(grid)
    return grid, callback


class StorageError(RuntimeError):
    """The storage path cannot hold a multi-node job's checkpoints; the message names it."""


def is_uri(path: str | Path) -> bool:
    """Whether ``path`` is a URI Tune's pyarrow filesystems open (s3://, gs://, file://...)."""
    return "://" in str(path)


def check_shared_storage(storage: str, probe: Callable[[str, str], bool] | None = None) -> None:
    """Fail before any trial runs when a multi-node Ray cluster is given a folder not every node sees.

    A URI passes (its filesystem is shared by construction). For a folder, the driver writes a marker
    file there and a zero-CPU task pinned to each alive node looks for it (``probe(node_id, marker)``
    replaces the task in tests). One alive node: nothing to check.

    Raises:
        StorageError: names the folder and the nodes that do not see it.
    """
    import uuid

    import ray

    nodes = [node["NodeID"] for node in ray.nodes() if node["Alive"]]
    if is_uri(storage) or len(nodes) < 2:
        return
    marker = Path(storage) / f".reprotune-shared-{uuid.uuid4().hex}"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("written by the driver to check that every node sees this folder\n")
    try:
        if probe is None:
            probe = _probe_on_node
        blind = [node for node in nodes if not probe(node, str(marker))]
    finally:
        marker.unlink(missing_ok=True)
    if blind:
        raise StorageError(
            f"storage_path {storage!r} is not shared: node(s) {', '.join(n[:12] for n in blind)} of this "
            f"{len(nodes)}-node cluster cannot see it, and Ray cannot keep checkpoints saved on several nodes "
            f"there. Give --storage-path a folder every node mounts (NFS) or a URI (s3://bucket/ray_results).")


def _probe_on_node(node_id: str, marker: str) -> bool:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    def exists(path: str) -> bool:
        return os.path.exists(path)

    strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
    return ray.get(exists.options(scheduling_strategy=strategy).remote(marker), timeout=120)
