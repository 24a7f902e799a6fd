"""A reproduction's trials: the claimed seed twice, alone, then the other seeds in groups of the group size."""

from tune_jobs.reproduce import role_of, trial_configs
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
