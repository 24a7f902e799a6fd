"""A reproduction's trials: the claimed seed twice, alone, then the other seeds in groups of the group size."""

import pandas as pd

from tune_jobs.reproduce import describe_environment, role_of, trial_configs
from tune_jobs.runtime.replicates import replicates
from tune_jobs.trials.addition import STACKED_TRAIN

SECTIONS = {"model": {"d_model": 8}, "train": {"mode": "faithful", "lr": 0.01}}


def test_one_seed_a_trial_keeps_the_claims_mode_and_one_replicate_each():
    configs = trial_configs(SECTIONS, [42, 42, 43, 44], 1)
    assert [c["seeds"] for c in configs] == [[42], [42], [43], [44]]
    assert [role_of(c) for c in configs] == ["claimed-a", "claimed-b", "other", "other"]
    assert {c["train"]["mode"] for c in configs} == {"faithful"}
    assert [key for c in configs for key, _ in replicates("t", c)] == ["t"] * 4


def test_other_seeds_stack_in_groups_on_the_counter_stream_the_claimed_ones_alone():
    configs = trial_configs(SECTIONS, [42, 42, 43, 44, 45], 2)
    assert [(c["seeds"], c["seeds_per_trial"]) for c in configs] == [([42], 1), ([42], 1), ([43, 44], 2), ([45], 2)]
    assert configs[0]["train"] == SECTIONS["train"]
    assert all(c["train"] == {**SECTIONS["train"], **STACKED_TRAIN} for c in configs[2:])
    assert [key for key, _ in replicates("t", configs[3])] == ["t-s45"]
    assert trial_configs(SECTIONS, [42, 42], 2) == trial_configs(SECTIONS, [42, 42], 1)


def test_the_environment_line_names_the_device_kind_where_runs_record_it():
    runs = pd.DataFrame([{"device": "cpu", "device_name": "AMD EPYC", "device_kind": "AuthenticAMD 25/1 AVX2",
                          "torch_version": "2.13.0+cpu", "threads": "1"},
                         {"device": "cpu", "device_name": "AMD EPYC", "device_kind": None,  # logged before the tag
                          "torch_version": "2.13.0+cpu", "threads": "1"}])
    assert describe_environment(runs) == ("cpu (AMD EPYC, AuthenticAMD 25/1 AVX2), torch 2.13.0+cpu, 1 thread(s) | "
                                          "cpu (AMD EPYC), torch 2.13.0+cpu, 1 thread(s)")
    assert describe_environment(pd.DataFrame({"seed": [1]})) == "unknown"
