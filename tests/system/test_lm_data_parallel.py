"""Ray Train data parallelism of the LM trainable: 2 gloo CPU workers train what one process trains on
the same global batch (up to floating-point reordering; dropout 0), an uneven split is refused before
any work, and a vocabulary sweep with ``workers=2`` runs each trial as a TorchTrainer."""

from __future__ import annotations

import json
import os

import pytest
import torch

from search_spaces import Choice, SearchSpace
from tests.mlflow_helpers import job_runs
from trainables.lm.config import LMRun
from trainables.lm.data import prepare
from trainables.lm.tokenizer import CACHE_ENV
from trainables.lm.train import train

TINY = {"data": {"corpus": "stdlib", "max_bytes": 60_000},
        "tokenizer": {"algorithm": "byte_bpe", "vocab_size": 300},
        "model": {"d_model": 16, "n_layer": 1, "n_head": 2, "context_length": 16, "gate": "glu", "dropout": 0.0},
        "train": {"train_steps": 20, "eval_interval": 10, "warmup_steps": 2, "batch_size": 8, "eval_bytes": 2048,
                  "eval_pieces": 8},
        "generation": {"num_prompts": 2, "max_new_tokens": 6}}
KEYS = ("step", "train/loss", "val/loss", "val/bits_per_byte", "train_eval/bits_per_byte")


def test_an_uneven_batch_split_is_refused_before_any_work():
    run = LMRun.from_sections({**TINY, "data": {"corpus": "/nonexistent/corpus.txt"},
                               "train": {**TINY["train"], "batch_size": 6}})
    # the missing corpus would raise FileNotFoundError if any data were prepared first
    with pytest.raises(ValueError, match="batch_size 6 does not split evenly over 4 data-parallel workers"):
        train(run, shard=(1, 4))


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    ray = pytest.importorskip("ray")
    # a fresh tokenizer cache: both workers of the first run train and write the same tokenizer at once
    cache = str(tmp_path_factory.mktemp("tokenizers"))
    saved = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = cache
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, resources={"reprotune_driver": 4},
             runtime_env={"env_vars": {CACHE_ENV: cache}})
    yield cache
    ray.shutdown()
    if saved is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = saved


def test_two_gloo_workers_match_one_process_on_the_same_global_batch(local_ray, tmp_path):
    import ray.train
    from ray.train.torch import TorchTrainer

    from tune_jobs.runtime.ray_train import worker_loop
    from tune_jobs.trials.lm import LM

    reports = tmp_path / "reports.jsonl"

    class Collect(ray.train.UserCallback):  # runs in the Train controller: every report of every rank to a file
        def after_report(self, run_context, metrics, checkpoint):
            with open(reports, "a") as handle:
                handle.write(json.dumps([{k: m[k] for k in KEYS} for m in metrics]) + "\n")

    config = {**TINY, "seed": 3}
    trainer = TorchTrainer(worker_loop(LM), train_loop_config=config,
                           scaling_config=ray.train.ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}),
                           run_config=ray.train.RunConfig(name="lm-dp", storage_path=str(tmp_path),
                                                          callbacks=[Collect()]))
    result = trainer.fit()
    run = LMRun.from_sections(TINY, train={"seed": 3})
    single = train(run, tmp_path / "single", data=prepare(run))

    history = [json.loads(line) for line in reports.read_text().splitlines()]
    assert [len(ranks) for ranks in history] == [2, 2, 2]
    rank0 = [ranks[0] for ranks in history]
    assert [m["step"] for m in rank0] == [0, 10, 19] == [h["step"] for h in single.history]
    for key in KEYS[1:]:
        torch.testing.assert_close(torch.tensor([m[key] for m in rank0], dtype=torch.float64),
                                   torch.tensor([h[key] for h in single.history], dtype=torch.float64),
                                   rtol=1e-4, atol=1e-6, msg=lambda m, key=key: f"{key}: {m}")
    # both ranks report the global batch's loss (all-reduced), not their shard's
    assert [ranks[1]["train/loss"] for ranks in history] == [m["train/loss"] for m in rank0]
    assert result.metrics["step"] == 19 and result.metrics["seed"] == 3 and result.metrics["config_id"]
    # the two workers, preparing the data at once, left one complete tokenizer in the fresh cache
    assert len([p for p in os.listdir(local_ray) if p.endswith(".json")]) == 1
    assert not [p for p in os.listdir(local_ray) if p.endswith(".tmp")]
    with result.checkpoint.as_directory() as folder:  # rank 0's output folder
        assert {"model.pt", "tokenizer.json", "completions.json", "run.json"} <= set(os.listdir(folder))
        parallel = torch.load(f"{folder}/model.pt", weights_only=False)["model_state"]
    # unwrapped weights (no DDP "module." prefix), close to the one-process run's
    reference = torch.load(tmp_path / "single" / "model.pt", weights_only=False)["model_state"]
    assert parallel.keys() == reference.keys()
    torch.testing.assert_close(parallel, reference, rtol=1e-4, atol=1e-5)


def test_a_vocab_sweep_with_two_workers_runs_each_trial_as_a_torch_trainer(local_ray, tmp_path):
    from tune_jobs.sweep_vocab import VocabSweepArgs, run_vocab_sweep

    space = SearchSpace(name="dp", description="one tiny configuration", seeds=(0,),
                        sections={**{k: v for k, v in TINY.items() if k != "train"},
                                  "train": {**TINY["train"], "lr": Choice((5e-3,))}})
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    args = VocabSweepArgs(space="smoke", num_configs=1, name="lm-dp-sweep", experiment="lm-dp", tracking_uri=uri,
                          storage_path=str(tmp_path / "ray_results"), workers=2)
    table = run_vocab_sweep(args, space)
    assert table.iloc[0]["seeds_run"] == 1 and table.iloc[0]["errored"] == 0
    client, parent, children = job_runs(uri, "lm-dp")
    (run,) = children
    assert run.info.status == "FINISHED" and run.data.params["run.ray_train.workers"] == "2"
    assert 0 < run.data.metrics["val/bits_per_byte"] < 16
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [0, 10, 19]
    assert {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")} >= {"checkpoints/model.pt",
                                                                                         "checkpoints/tokenizer.json"}
    assert (tmp_path / "ray_results" / "lm-dp-sweep" / "ray_train").is_dir()
    assert "completions.json" in {a.path for a in client.list_artifacts(run.info.run_id)}  # from the Train folder
