"""Configurations are named by what they are: the tables' first column and the child runs' names."""

from __future__ import annotations

import pytest

from tune_jobs.runtime.trial import short_number
from tune_jobs.trials.addition import ADDITION
from tune_jobs.trials.command import COMMAND, params_name
from tune_jobs.trials.lm import LM
from tune_jobs.runtime.trial_config import config_id

FULL_RANK = {"pos_rank": 0, "qkv_rank": 0, "attn_out_rank": 0, "ffn_rank": 0, "use_rmsnorm": False, "tie_qkv": "none"}


@pytest.mark.parametrize("model, lr, expected", [
    ({"d_model": 8, "d_ff": 28, **FULL_RANK}, 0.015, "d8-ff28-lr0.015"),
    ({"d_model": 16, "d_ff": 64}, 0.01, "d16-ff64-lr0.01"),  # absent fields at their defaults: full rank, LayerNorm
    ({"d_model": 8, "d_ff": 64, **FULL_RANK, "pos_rank": 3, "ffn_rank": 3, "use_rmsnorm": True}, 0.006198,
     "d8-ff64-pos3-ffn3-rms-lr0.0062"),
    ({"d_model": 7, "d_ff": 14, "pos_rank": 3, "qkv_rank": 3, "attn_out_rank": 3, "ffn_rank": 3, "tie_qkv": "shareA"},
     0.02, "d7-ff14-pos3-qkv3-attn3-ffn3-shareA-lr0.02"),
])
def test_addition_names_say_width_ffn_ranks_norm_and_lr(model, lr, expected):
    config = {"model": model, "train": {"lr": lr, "train_steps": 300}, "seed": 4, "run": {"max_steps": 5}}
    assert ADDITION.readable_name(config) == expected
    assert ADDITION.run_name(config) == f"{expected} s4"


def test_lm_names_say_vocabulary_width_lr_and_only_the_choices_off_default():
    base = {"tokenizer": {"vocab_size": 1024}, "model": {"d_model": 128}, "train": {"lr": 3e-3}, "seed": 0}
    assert LM.readable_name(base) == "v1024-d128-lr0.003"
    cell = {"tokenizer": {"vocab_size": 512, "algorithm": "char", "extra_corpora": ["en", "fr"]},
            "model": {"d_model": 64, "gate": "memory", "gate_input_gain": 0.0625}, "train": {"lr": 0.00312},
            "data": {"corpus": "fr"}}
    assert LM.readable_name(cell) == "v512-d64-lr0.00312-memory-gain0.0625-char-fr-shared"


def test_command_names_say_the_searched_params_else_the_config_id():
    config = {"command": {"job": "j.toml"}, "params": {"lr": 0.0123456, "d_model": 8, "steps": 100}, "seed": 1}
    assert params_name(["d_model", "lr"])(config) == "d_model8-lr0.0123"
    assert params_name([])(config) == COMMAND.readable_name(config) == config_id(config)


def test_short_numbers():
    assert [short_number(v) for v in (0.015, 0.006198, 1e-5, 3e-3, 8, "fast")] == \
        ["0.015", "0.0062", "1e-05", "0.003", "8", "fast"]
