"""The resolved config as params and back: every field round-trips, given values are not logged twice."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from trainables.addition.config import ModelConfig, TrainConfig
from trainables.command import load_command_spec
from trainables.lm.config import SECTIONS as LM_SECTIONS
from trainables.lm.config import LMRun
from trainables.paths import PROJECT_ROOT
from tune_jobs.runtime.run_record import (decode_run_settings, decode_section, grokking_metric, new_params,
                                          resolved_report, source_tags)
from tune_jobs.trials.addition_record import addition_params
from tune_jobs.trials.command_record import command_params
from tune_jobs.trials.lm_record import lm_params


def _params(model: ModelConfig, train: TrainConfig) -> dict[str, str]:
    report = resolved_report({"model": model, "train": train}, {"schedule.kind": "linear-warmup-cosine"})
    return new_params(report, {"seed": train.seed}, set())


def test_every_field_round_trips_defaults_included():
    model = ModelConfig(d_model=8, d_ff=28, use_rmsnorm=True, tie_qkv="qk")
    train = TrainConfig(seed=3, lr=0.015, mode="fast", stream="counter", curriculum=((0, 1, 2), (5, 1, 10)))
    params = _params(model, train)
    assert "train.seed" not in params and params["train.batch_size"] == "512" and params["model.use_rmsnorm"] == "true"
    assert params["train.curriculum"] == "[[0, 1, 2], [5, 1, 10]]" and params["schedule.kind"] == "linear-warmup-cosine"
    assert ModelConfig(**decode_section(params, "model", ModelConfig)) == model
    assert TrainConfig(**decode_section(params, "train", TrainConfig, seed=3)) == train


def test_given_fields_and_logged_ones_are_left_out():
    report = resolved_report({"train": TrainConfig(lr=0.015)})
    trial_config = {"train": {"lr": 0.015}, "seed": 0}
    fresh = new_params(report, trial_config, {"train.batch_size"})
    assert "train.lr" not in fresh and "train.batch_size" not in fresh and "train.weight_decay" in fresh
    assert len(fresh) == len(dataclasses.fields(TrainConfig)) - 3  # seed, lr, batch_size


def test_missing_and_bad_params_name_the_param():
    params = _params(ModelConfig(), TrainConfig())
    with pytest.raises(KeyError, match="'train.batch_size'"):
        decode_section({k: v for k, v in params.items() if k != "train.batch_size"}, "train", TrainConfig, seed=0)
    with pytest.raises(ValueError, match=r"param train.lr='fast'"):
        decode_section({**params, "train.lr": "fast"}, "train", TrainConfig, seed=0)


def test_run_settings_source_and_grokking():
    assert decode_run_settings({"run.max_steps": "40", "run.protocol": "100k", "run.ray_train.workers": "2",
                                "train.lr": "0.1"}) == {"max_steps": 40, "protocol": "100k", "ray_train": {"workers": 2}}
    assert source_tags("abc")["mlflow.source.name"] == "make rerun RUN=abc"
    assert source_tags("abc", "sqlite:///a b/m.db")["rerun_command"] == "make rerun RUN=abc TRACKING_URI='sqlite:///a b/m.db'"
    assert grokking_metric(None) == {} and grokking_metric(float("nan")) == {}
    assert grokking_metric(12000) == {"grokking_step": 12000.0}


def test_addition_params_censor_at_the_schedules_last_step():
    config = {"model": {"d_model": 8}, "train": {}, "run": {"max_steps": 500}}
    assert addition_params(config, TrainConfig(train_steps=2000))["param/grokking_censored_at"] == "499"
    assert addition_params({**config, "run": {}}, TrainConfig(train_steps=2000))["param/grokking_censored_at"] == "1999"
    assert addition_params(config, TrainConfig())["param/model.d_model"] == "8"


def test_lm_params_hold_every_field_of_every_section_and_round_trip():
    run = LMRun.from_sections({"model": {"d_model": 64, "gate": "memory"}, "tokenizer": {"extra_corpora": ["en"]},
                               "train": {"seed": 5}})
    params = new_params(lm_params(run), {"seed": 5}, set())
    for name, cls in LM_SECTIONS.items():
        for field in dataclasses.fields(cls):
            assert field.name == "seed" or f"{name}.{field.name}" in params, (name, field.name)
    decoded = {name: decode_section(params, name, cls, seed=5) for name, cls in LM_SECTIONS.items()}
    assert LMRun.from_sections(decoded) == run


def test_command_params_render_the_argument_list_and_checksum_the_job(monkeypatch):
    monkeypatch.setenv("REFERENCE_REPO", str(PROJECT_ROOT / "tests" / "fake_reference_repo"))
    job = PROJECT_ROOT / "command_jobs" / "reference_repo.toml"
    config = {"command": {"job": str(job)}, "params": {"lr": 0.01}}
    params = command_params(config, load_command_spec(job), 3, "c-seed3")
    argv = json.loads(params["param/command.argv"])
    assert "{out_dir}" in " ".join(argv) and "3" in argv and "0.01" in argv
    assert params["param/command.job_sha256"] == hashlib.sha256(job.read_bytes()).hexdigest()

