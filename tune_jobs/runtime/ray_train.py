"""Data-parallel trials through Ray Train: each Tune trial drives a ``TorchTrainer`` (the Ray 2.60
pattern; ``Tuner(TorchTrainer(...))`` is gone with Train V2).

A job asking for ``workers`` > 1 runs ``data_parallel(trial)`` as its trainable. The trial itself
holds no CPU, only one unit of the custom resource ``runtime.resources.DRIVER_RESOURCE`` (so it cannot starve its own
workers on a small machine); the trainer's ``ScalingConfig`` gives each of the ``workers`` processes
``cpus_per_worker`` CPUs (or GPUs). The Train run is named after the trial id, with no timestamp, so
a retried or restored trial finds its Train run and checkpoints again; reports reach Tune through
``TuneReportCallback`` (a checkpoint arrives as its storage path, ``checkpoint_path``). Each worker
runs the trial's body on its shard of every global batch, gradients averaged by
DistributedDataParallel (``ray.train.torch.prepare_model``).
"""

from __future__ import annotations

from typing import Any, Callable

import ray.train
import torch
from ray import tune
from ray.train.torch import TorchTrainer, get_device, prepare_model
from ray.tune.integration.ray_train import TuneReportCallback

from tune_jobs.runtime.storage import KEEP_CHECKPOINTS
from tune_jobs.runtime.trial import Trial, TrialContext
from tune_jobs.runtime.trial_config import run_settings

RAY_TRAIN = "ray_train"
"""Run setting holding the data-parallel spec: workers, cpus_per_worker, gpus_per_worker, storage."""


def data_parallel(trial: Trial) -> Callable[[dict[str, Any]], None]:
    """A Tune function trainable that fits a ``TorchTrainer`` running ``trial``'s body on
    ``run['ray_train']['workers']`` workers (gloo on CPU, NCCL on GPU)."""
    worker = worker_loop(trial)

    def driver(config: dict[str, Any]) -> None:
        spec = run_settings(config)[RAY_TRAIN]
        gpus = float(spec.get("gpus_per_worker", 0))
        resources = {"CPU": float(spec.get("cpus_per_worker", 1)), **({"GPU": gpus} if gpus else {})}
        trainer = TorchTrainer(
            worker, train_loop_config=config,
            scaling_config=ray.train.ScalingConfig(num_workers=int(spec["workers"]), use_gpu=gpus > 0,
                                                   resources_per_worker=resources),
            run_config=ray.train.RunConfig(
                name=f"train-{tune.get_context().get_trial_id()}", storage_path=spec["storage"],
                callbacks=[TuneReportCallback()],
                checkpoint_config=ray.train.CheckpointConfig(num_to_keep=KEEP_CHECKPOINTS),
                failure_config=ray.train.FailureConfig(max_failures=int(spec.get("max_failures", 0)))),
        )
        trainer.fit()

    driver.__name__ = driver.__qualname__ = f"{trial.name}_data_parallel"
    return driver


def worker_loop(trial: Trial) -> Callable[[dict[str, Any]], None]:
    """The Ray Train worker loop of ``trial``: its body under this worker's rank, world and DDP wrapper."""
    body = trial.body

    def worker(config: dict[str, Any]) -> None:
        _use_own_gpu()
        context = ray.train.get_context()
        body(config, TrialContext(ray.train.report, ray.train.get_checkpoint, ray.train.Checkpoint,
                                  rank=context.get_world_rank(), world=context.get_world_size(),
                                  prepare=prepare_model))

    worker.__name__ = worker.__qualname__ = f"{trial.name}_worker"
    return worker


def _use_own_gpu() -> None:
    """Make ``cuda`` (the trainables' device name) mean this worker's GPU: Ray Train shows a node's
    workers all of their GPUs, and the default device would be the first for every rank. (Not run
    here: this machine has no GPU.)"""
    device = get_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)
