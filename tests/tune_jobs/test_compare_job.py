"""The compare job's selectors and samples: claim sets from the record, runs from a store (fast)."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pandas as pd
import pytest

from mlflow_utils.records import RunRecord
from trainables.addition.config import TrainConfig
from trainables.checks import ConfigError
from tune_jobs.compare import (CompareArgs, claim_sample, main, match_id, parse_selector, run_sample,
                               trace_summary)
from tune_jobs.rerun import RerunArgs, traces, trial_config
from tune_jobs.runtime.mlflow_callback import flat_params
from tune_jobs.runtime.replicates import is_stacked, replicate_config
from tune_jobs.runtime.run_record import new_params, param_text
from tune_jobs.runtime.trial_config import seeds_of
from tune_jobs.trials.addition_record import addition_params
from tune_jobs.verdicts.compare import compare_configurations


def test_selectors():
    assert parse_selector("sweep-addition-smoke-20261202").tags == (("sweep_id", "sweep-addition-smoke-20261202"),)
    assert parse_selector("threads=2").tags == (("threads", "2"),)
    assert parse_selector("sqlite:////tmp/x/mlruns.db").store == "sqlite:////tmp/x/mlruns.db"
    claim = parse_selector("claim:456p@mps")
    assert (claim.claim, claim.device) == ("456p", "mps") and parse_selector("claim:512p").device == "cuda"
    for bad, message in (("colour=red", "a tag selector is <tag>=<value>"), ("threads=2' OR '1", "tag selector"),
                         ("claim:", "write claim:<prefix>"), ("my sweep", "neither a sweep name")):
        with pytest.raises(ConfigError, match=message):
            parse_selector(bad)


def test_bad_input_is_one_line_before_any_work(capsys):
    assert main(["--a", "threads=2", "--b", "hostname=it's"]) == 2
    assert "selector \"hostname=it's\"" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="run must be an MLflow run id"):
        RerunArgs(run="../x").check()
    with pytest.raises(ConfigError, match="alpha must be in"):
        CompareArgs(a="x", b="y", alpha=1.5).check()


def test_the_records_456p_on_cuda_against_mps():
    cuda, mps = claim_sample(parse_selector("claim:456p")), claim_sample(parse_selector("claim:456p@mps"))
    assert sorted(cuda["seed"]) == [42, 43, 44, 45, 46] and sorted(mps["seed"]) == [43, 44]
    assert dict(zip(cuda["seed"], cuda["success"])) == {42: 0.0, 43: 1.0, 44: 1.0, 45: 0.0, 46: 0.0}
    assert cuda.set_index("seed").loc[43, "grokking_step"] == 34000
    row = compare_configurations(cuda, mps).iloc[0]
    assert row["action"].startswith("same rate, different seeds: seed 43 grokked only in A, seed 44 grokked only in A")
    with pytest.raises(ConfigError, match="no claim 999p-s<seed>"):
        claim_sample(parse_selector("claim:999p"))


def run(run_id, seed, status="FINISHED", **metrics):
    return SimpleNamespace(run_id=run_id, status=status, name=f"d8 s{seed}", metrics=metrics,
                           tags={"config_id": "c1", "seed": str(seed), "config": "d8-c1"},
                           params={"grokking_censored_at": "999", "train.threads": str(seed), "model.d_model": "8"})


def test_run_sample_keeps_the_newest_finished_run_of_a_seed():
    sample = run_sample([run("new", 0, success=1.0, grokking_step=300.0), run("old", 0, success=0.0),
                         run("killed", 1, status="KILLED"), run("r2", 2, success=0.0)])
    assert list(sample["run_id"]) == ["new", "r2"] and list(sample["name"]) == ["d8-c1", "d8-c1"]
    assert sample["grokking_step"].iloc[0] == 300.0 and math.isnan(sample["grokking_step"].iloc[1])
    assert list(sample["censored_at"]) == [999.0, 999.0]
    assert sample["config_id"].nunique() == 1  # the thread count is the environment, not the configuration
    assert match_id({"model.d_model": "8"}) != match_id({"model.d_model": "7"})


def test_a_rerun_of_a_stacked_seed_is_a_stacked_trial_of_that_seed_alone():
    config = {"model": {"d_model": 8}, "train": {"lr": 0.015, "stream": "counter", "mode": "fast", "compile": False},
              "seeds": [3, 4], "seeds_per_trial": 2, "run": {"max_steps": 40, "ray_train": {"workers": 1}}}
    params = {**new_params(addition_params(config, TrainConfig.from_dict({**config["train"], "seed": 4})), {}, set()),
              **{k: param_text(v) for k, v in flat_params(replicate_config(config, 4)).items()}}
    record = RunRecord("a" * 32, "1", "d8 s4", "FINISHED", params, {"trial_id": "ff7b7d91-s4"}, {})
    rebuilt = trial_config(record)
    assert (seeds_of(rebuilt), is_stacked(rebuilt), rebuilt["run"]) == ([4], True, config["run"])
    alone = trial_config(dataclasses.replace(record, tags={"trial_id": "ff7b7d91"}))
    assert (seeds_of(alone), is_stacked(alone)) == ([4], False)
    assert TrainConfig.from_dict({**rebuilt["train"], "seed": 4}) == TrainConfig(seed=4, lr=0.015, stream="counter",
                                                                                   mode="fast", compile=False)
    with pytest.raises(ConfigError, match="cannot be rebuilt from its params.*'train.lr'"):
        trial_config(dataclasses.replace(record, params={k: v for k, v in params.items() if k != "train.lr"}))


def test_trace_summary_counts_the_compared_seeds_of_one_configuration():
    seeds = pd.DataFrame({"config_id": ["c1", "c1", "c1", "c2"], "seed": [0, 1, 2, 0],
                          "first_differing_step": ["identical", 200, "not compared", "not compared"]})
    assert trace_summary(seeds, "c1") == "loss traces differ in 1/2 seeds, first at steps 200"
    assert trace_summary(seeds[seeds["seed"] != 1], "c1") == "loss traces identical in 1/1 seeds"
    assert trace_summary(seeds, "c2") == ""


def test_a_reruns_traces_leave_out_timings_and_the_tokenizer_cache():
    table = traces([{"step": 0, "train/loss": 2.5, "tok/cache_hit": 1.0, "tok/vocab_size": 300.0,
                     "perf/steps_per_second": 9.0, "env/threads": "1", "val/diverged": True}])
    assert sorted(table["key"]) == ["tok/vocab_size", "train/loss"]
