"""A tiny sweep into a temporary store, then: every config field is a param, a rerun is BIT-IDENTICAL,
and a comparison of the sweep with its own store matches every seed (issue 19)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from mlflow.tracking import MlflowClient

from search_spaces import SearchSpace, load_space
from tests.mlflow_helpers import job_runs
from trainables.addition.config import ModelConfig, TrainConfig
from trainables.checks import ConfigError
from trainables.paths import PROJECT_ROOT
from tune_jobs.compare import CompareArgs, compare
from tune_jobs.rerun import RerunArgs, rerun
from tune_jobs.sweep_addition import SweepArgs, run_addition_sweep
from tune_jobs.sweep_command import SweepCommandArgs, run_command_sweep
from tune_jobs.sweep_vocab import VocabSweepArgs, run_vocab_sweep

FAKE_REPO = PROJECT_ROOT / "tests" / "fake_reference_repo"

SPACE = SearchSpace(
    name="test", description="one tiny configuration", seeds=(0, 1),
    sections={"model": {"d_model": 4, "d_ff": 8},
              "train": {"lr": 0.01, "train_steps": 40, "eval_interval": 20, "warmup_steps": 5, "batch_size": 32,
                        "val_size": 64, "test_size": 64, "mode": "fast"}},
)


def addition_sweep(root, name: str, experiment: str, **settings):
    """(store URI, client, child runs) of a sweep of ``SPACE`` into a new store under ``root``."""
    ray = pytest.importorskip("ray")
    uri = f"sqlite:///{root / 'mlruns.db'}"
    args = SweepArgs(space="smoke", num_configs=1, name=name, experiment=experiment, tracking_uri=uri,
                     storage_path=root / "ray_results", **settings)
    try:
        run_addition_sweep(args, SPACE)
    finally:
        ray.shutdown()
    client, _, children = job_runs(uri, experiment)
    return uri, client, children


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return addition_sweep(tmp_path_factory.mktemp("rerun"), "rerun-sweep", "test", max_concurrent=2)


def test_every_config_field_is_a_param(sweep):
    uri, _, children = sweep
    assert len(children) == 2
    for run in children:
        params = run.data.params
        for section, cls in (("model", ModelConfig), ("train", TrainConfig)):
            for field in dataclasses.fields(cls):
                key = "seed" if field.name == "seed" else f"{section}.{field.name}"
                assert key in params, key
        assert params["train.batch_size"] == "32" and params["train.weight_decay"] == "0.01"
        assert params["model.n_layer"] == "1" and params["train.stream"] == "default"
        assert params["schedule.kind"] == "linear-warmup-cosine" and params["grokking_censored_at"] == "39"
        assert "lr" not in params and "train/lr" not in params
        assert run.data.tags["mlflow.source.name"] == f"make rerun RUN={run.info.run_id} TRACKING_URI={uri}"
        assert "grokking_step" not in run.data.metrics  # 40 steps never learn addition: censored


def test_rerun_is_bit_identical(sweep, capsys):
    uri, client, children = sweep
    original = children[0]
    line = rerun(RerunArgs(run=original.info.run_id, tracking_uri=uri))
    assert line.startswith("BIT-IDENTICAL ("), line
    reruns = client.search_runs([original.info.experiment_id], filter_string="tags.role = 'rerun'")
    assert len(reruns) == 1 and reruns[0].data.tags["rerun_of"] == original.info.run_id
    assert reruns[0].data.params == original.data.params
    assert [m.value for m in client.get_metric_history(reruns[0].info.run_id, "train/loss")] == \
        [m.value for m in client.get_metric_history(original.info.run_id, "train/loss")]


def test_compare_a_sweep_with_its_store(sweep, capsys):
    uri, client, children = sweep
    table = compare(CompareArgs(a="rerun-sweep", b=uri, tracking_uri=uri))
    assert len(table) == 1 and (table.iloc[0]["seeds_a"], table.iloc[0]["seeds_b"]) == (2, 2)
    assert table.iloc[0]["action"] == "same rate, same seeds (0/2 vs 0/2, p = 1)"
    out = capsys.readouterr().out
    assert out.count("identical") == 3 and "same rate, same seeds (0/2 vs 0/2, p = 1); loss traces identical in 2/2" in out
    runs = client.search_runs([client.get_experiment_by_name("comparisons").experiment_id])
    assert len(runs) == 1 and runs[0].data.tags["role"] == "comparison"
    files = {a.path for a in client.list_artifacts(runs[0].info.run_id)} | \
        {a.path for a in client.list_artifacts(runs[0].info.run_id, "figures")}
    assert {"comparison.csv", "seeds.csv", "figures/time_to_grok.png"} <= files


def test_a_command_run_reruns_bit_identical(tmp_path):
    ray = pytest.importorskip("ray")
    job = tmp_path / "job.toml"
    job.write_text(f'''name = "fake"
workdir = "{FAKE_REPO}"
command = """{{python}} -m src.train --run-dir {{out_dir}} --seed {{seed}} --d-model 4 --d-ff 8 --lr {{lr}}
  --train-steps 21 --warmup-steps 5 --eval-interval 10 --val-size 32 --test-size 32 --batch-size 16"""
timeout_s = 120
[metrics]
file = "{{out_dir}}/metrics.csv"
names = {{ train_loss = "train/loss", val_exact = "val/exact_match" }}
[search]
seeds = [0]
lr = 0.01
''')
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    try:
        run_command_sweep(SweepCommandArgs(job=job, num_configs=1, name="cmd", tracking_uri=uri,
                                           storage_path=tmp_path / "ray"))
    finally:
        ray.shutdown()
    client = MlflowClient(uri)
    child = client.search_runs([client.get_experiment_by_name("command-sweep").experiment_id],
                               filter_string="tags.role = 'trial'")[0]
    assert json.loads(child.data.params["command.argv"])[-2:] == ["--batch-size", "16"]
    assert child.data.params["command.job_sha256"] == hashlib.sha256(job.read_bytes()).hexdigest()
    assert rerun(RerunArgs(run=child.info.run_id, tracking_uri=uri)).startswith("BIT-IDENTICAL")
    job.write_text(job.read_text().replace("--batch-size 16", "--batch-size 8"))
    with pytest.raises(ConfigError, match="missing or changed since the run"):
        rerun(RerunArgs(run=child.info.run_id, tracking_uri=uri))


def test_a_language_model_run_reruns_bit_identical(tmp_path):
    ray = pytest.importorskip("ray")
    smoke = load_space("smoke", "lm")
    space = SearchSpace(name="test", description="one tiny language model", seeds=(0,),
                        sections={**smoke.sections, "tokenizer": {"algorithm": "byte_bpe", "vocab_size": 300},
                                  "train": {**smoke.sections["train"], "lr": 5e-3}})
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    try:
        run_vocab_sweep(VocabSweepArgs(space="smoke", num_configs=1, name="lm", experiment="lm", tracking_uri=uri,
                                       storage_path=tmp_path / "ray"), space)
    finally:
        ray.shutdown()
    _, _, children = job_runs(uri, "lm")
    params = children[0].data.params
    assert params["tokenizer.vocab_size"] == "300" and params["data.split_seed"] == "0"
    assert params["generation.temperature"] == "0.8" and "data/train_sha256" in children[0].data.tags
    assert rerun(RerunArgs(run=children[0].info.run_id, tracking_uri=uri)).startswith("BIT-IDENTICAL")


def test_a_seed_of_a_stacked_trial_reruns_alone(tmp_path):
    uri, client, children = addition_sweep(tmp_path, "stacked", "stacked", seeds_per_trial=2)
    assert sorted(run.data.tags["seed"] for run in children) == ["0", "1"]
    original = next(run for run in children if run.data.tags["seed"] == "1")
    assert original.data.params["train.stream"] == "counter" and original.data.params["train.batch_size"] == "32"
    line = rerun(RerunArgs(run=original.info.run_id, tracking_uri=uri))
    assert line.startswith("BIT-IDENTICAL ("), line
    again = client.search_runs([original.info.experiment_id], filter_string="tags.role = 'rerun'")
    assert len(again) == 1 and again[0].data.tags["seed"] == "1"
