"""Ray Train data parallelism: 2 gloo CPU workers train what one process trains on the same global
batch (up to floating-point reordering), and a sweep runs its trials as TorchTrainers."""

from __future__ import annotations

import pytest
import torch

from search_spaces import Choice, SearchSpace
from tests.mlflow_helpers import job_runs
from trainables.addition.config import ModelConfig, TrainConfig
from trainables.addition.train import train

ray = pytest.importorskip("ray")

MODEL = {"d_model": 6, "d_ff": 12}
TRAIN = {"lr": 0.01, "train_steps": 60, "eval_interval": 20, "warmup_steps": 5, "batch_size": 64, "val_size": 200,
         "test_size": 200, "mode": "fast"}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False,
             resources={"reprotune_driver": 4})
    yield
    ray.shutdown()


def test_two_gloo_workers_match_one_process_on_the_same_global_batch(local_ray, tmp_path):
    import ray.train
    from ray.train.torch import TorchTrainer

    from tune_jobs.runtime.ray_train import worker_loop
    from tune_jobs.trials.addition import ADDITION

    config = {"model": MODEL, "train": TRAIN, "seed": 4}
    trainer = TorchTrainer(worker_loop(ADDITION), train_loop_config=config,
                           scaling_config=ray.train.ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}),
                           run_config=ray.train.RunConfig(name="dp", storage_path=str(tmp_path)))
    result = trainer.fit()
    with result.checkpoint.as_directory() as folder:
        parallel = torch.load(f"{folder}/last.pt", weights_only=True)
    single = train(ModelConfig(**MODEL), TrainConfig(**{**TRAIN, "seed": 4}))

    assert parallel["step"] == 59 and len(parallel["loss_trace"]) == 60
    reference = torch.tensor(single.loss_trace, dtype=torch.float32)
    torch.testing.assert_close(parallel["loss_trace"], reference, rtol=1e-4, atol=1e-5)
    history = result.metrics_dataframe
    assert history["step"].tolist() == [0, 20, 40, 59]
    assert history["val/exact_match"].tolist() == pytest.approx([m["val/exact_match"] for m in single.history],
                                                                abs=0.011)
    # the global batch's loss is reported, not one shard's
    assert history["train/loss"].iloc[-1] == pytest.approx(single.history[-1]["train/loss"], rel=1e-4)


def test_a_sweep_with_two_workers_runs_each_trial_as_a_torch_trainer(local_ray, tmp_path):
    from tune_jobs.sweep_addition import SweepArgs, run_addition_sweep

    space = SearchSpace(name="dp", description="one tiny configuration", seeds=(0,),
                        sections={"model": MODEL, "train": {**TRAIN, "lr": Choice((0.01,))}})
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    args = SweepArgs(space="smoke", num_configs=1, name="dp-sweep", experiment="dp", tracking_uri=uri,
                     storage_path=str(tmp_path / "ray_results"), workers=2)
    table = run_addition_sweep(args, space)
    assert table.iloc[0]["seeds_run"] == 1 and table.iloc[0]["errored"] == 0
    client, parent, children = job_runs(uri, "dp")
    (run,) = children
    assert run.info.status == "FINISHED" and run.data.params["run.ray_train.workers"] == "2"
    assert run.data.metrics["val/exact_match"] >= 0 and "node" in run.data.tags
    assert {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")} >= {"checkpoints/last.pt",
                                                                                         "checkpoints/best.pt"}
    assert (tmp_path / "ray_results" / "dp-sweep" / "ray_train").is_dir()
