"""Data-parallel trials through Ray Train: each Tune trial drives a ``TorchTrainer`` (the Ray 2.60
pattern; ``Tuner(TorchTrainer(...))`` is gone with Train V2).

A job asking for ``workers`` > 1 runs ``data_parallel(worker_loop)`` as its trainable. The trial
itself holds no CPU, only one unit of the custom resource ``reprotune_driver`` (so it cannot starve
its own workers on a small machine); the trainer's ``ScalingConfig`` gives each of the ``workers``
processes ``cpus_per_worker`` CPUs (or GPUs). The Train run is named after the trial id, with no
timestamp, so a retried or restored trial finds its Train run and checkpoints again; reports reach
Tune through ``TuneReportCallback`` (a checkpoint arrives as its storage path, ``checkpoint_path``).
"""

from __future__ import annotations

from typing import Any, Callable

DRIVER_RESOURCE = "reprotune_driver"
"""Custom Ray resource a data-parallel trial holds instead of CPUs (local Ray and `make cluster-up`
declare it on the head node; a real cluster declares it in its head's start parameters)."""
DRIVER_SLOTS = 64
"""Units of ``DRIVER_RESOURCE`` a node declares: more than any concurrency the CPUs allow."""
RAY_TRAIN = "ray_train"
"""Trial-config section of the data-parallel spec: workers, cpus_per_worker, gpus_per_worker, storage,
max_failures (how a configuration runs, not what it is: kept out of its config id)."""


def data_parallel(worker_loop: Callable[[dict], None]) -> Callable[[dict], None]:
    """A Tune function trainable that fits a ``TorchTrainer`` running ``worker_loop(config)`` on
    ``config['ray_train']['workers']`` workers (gloo on CPU, NCCL on GPU)."""

    def trial(config: dict[str, Any]) -> None:
        import ray.train
        from ray import tune
        from ray.train.torch import TorchTrainer
        from ray.tune.integration.ray_train import TuneReportCallback

        spec = config[RAY_TRAIN]
        gpus = float(spec.get("gpus_per_worker", 0))
        resources = {"CPU": float(spec.get("cpus_per_worker", 1)), **({"GPU": gpus} if gpus else {})}
        trainer = TorchTrainer(
            worker_loop, train_loop_config=config,
            scaling_config=ray.train.ScalingConfig(num_workers=int(spec["workers"]), use_gpu=gpus > 0,
                                                   resources_per_worker=resources),
            run_config=ray.train.RunConfig(
                name=f"train-{tune.get_context().get_trial_id()}", storage_path=spec["storage"],
                callbacks=[TuneReportCallback()], checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
                failure_config=ray.train.FailureConfig(max_failures=int(spec.get("max_failures", 0)))),
        )
        trainer.fit()

    trial.__name__ = f"{worker_loop.__name__}_data_parallel"
    trial.__qualname__ = trial.__name__
    return trial


def addition_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker of a data-parallel addition trial: its shard of every global batch,
    gradients averaged by DistributedDataParallel (``ray.train.torch.prepare_model``)."""
    import ray.train
    from ray.train.torch import prepare_model

    from tune_jobs.addition_trial import run_addition

    _use_own_gpu()
    context = ray.train.get_context()
    run_addition(config, ray.train.report, ray.train.get_checkpoint, ray.train.Checkpoint,
                 shard=(context.get_world_rank(), context.get_world_size()), prepare=prepare_model)


def lm_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker of a data-parallel language-model trial: its shard of every global batch
    of windows, gradients averaged by DistributedDataParallel (``ray.train.torch.prepare_model``).
    Every worker prepares the data itself (the tokenizer cache is written atomically)."""
    import ray.train
    from ray.train.torch import prepare_model

    from tune_jobs.lm_trial import run_lm

    _use_own_gpu()
    context = ray.train.get_context()
    run_lm(config, ray.train.report, ray.train.get_checkpoint, ray.train.Checkpoint,
           shard=(context.get_world_rank(), context.get_world_size()), prepare=prepare_model)


def worker_loop_for(trainable: Callable[[dict], None]) -> Callable[[dict], None]:
    """The Ray Train worker loop of a job's Tune trainable.

    Raises:
        ValueError: the trainable has no data-parallel version (names it and those that do).
    """
    from tune_jobs.addition_trial import addition_trial
    from tune_jobs.lm_trial import lm_trial

    loops = {addition_trial: addition_worker, lm_trial: lm_worker}
    if trainable not in loops:
        raise ValueError(f"workers > 1: the trainable {getattr(trainable, '__name__', trainable)!r} has no "
                         f"data-parallel version; those that do: {', '.join(t.__name__ for t in loops)}")
    return loops[trainable]


def _use_own_gpu() -> None:
    """Make ``cuda`` (the trainables' device name) mean this worker's GPU: Ray Train shows a node's
    workers all of their GPUs, and the default device would be the first for every rank. (Not run
    here: this machine has no GPU.)"""
    import torch
    from ray.train.torch import get_device

    device = get_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)
