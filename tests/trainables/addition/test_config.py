"""Configs reject impossible values with messages that name the field and the value."""

import pytest

from trainables.addition.config import ConfigError, ModelConfig, TrainConfig


@pytest.mark.parametrize("kwargs, message", [
    ({"d_model": 7, "qkv_rank": 7}, "qkv_rank=7 must be smaller than d_model=7"),
    ({"d_model": 4, "pos_rank": 9}, "pos_rank=9 must be smaller than d_model=4"),
    ({"tie_qkv": "shareA_tieKV", "qkv_rank": 0}, "tie_qkv='shareA_tieKV' needs a low-rank QKV map, but qkv_rank=0"),
    ({"d_model": 0}, "d_model must be a positive integer, got 0"),
    ({"d_ff": -3}, "d_ff must be a positive integer, got -3"),
    ({"ffn_rank": -1}, "ffn_rank must be an integer >= 0, got -1"),
    ({"tie_qkv": "qkv"}, "tie_qkv must be one of"),
    ({"d_model": 7, "n_head": 2}, "n_head=2 must divide d_model=7"),
])
def test_model_config_rejects(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ModelConfig(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"train_steps": 0}, "train_steps must be a positive integer, got 0"),
    ({"lr": -0.1}, "lr must be > 0, got -0.1"),
    ({"warmup_steps": 500, "train_steps": 400}, "warmup_steps=500 must be smaller than train_steps=400"),
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ({"curriculum": ((0, 1, 11),)}, "curriculum digits must satisfy 1 <= min <= max <= 10"),
    ({"curriculum": ((5, 1, 3),)}, "curriculum must start at step 0, got 5"),
    ({"mode": "quick"}, "mode must be 'faithful' or 'fast', got 'quick'"),
])
def test_train_config_rejects(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**kwargs)


def test_every_share_mode_needs_qkv_rank():
    for mode in ("shareA", "shareA_tieKV", "shareA_tieQK", "shareB", "shareB_tieKV", "shareB_tieQK"):
        with pytest.raises(ConfigError, match="needs a low-rank QKV map"):
            ModelConfig(tie_qkv=mode)
        ModelConfig(tie_qkv=mode, qkv_rank=2)


def test_from_dict_reads_reference_keys_and_rejects_unknown():
    reference = {"n_layer": 1, "d_model": 7, "n_head": 1, "d_ff": 14, "dropout": 0.0, "max_seq_len": 33,
                 "vocab_size": 14, "pos_rank": 3, "qkv_rank": 3, "attn_out_rank": 3, "ffn_rank": 3}
    assert ModelConfig.from_dict(reference) == ModelConfig(pos_rank=3, qkv_rank=3, attn_out_rank=3, ffn_rank=3)
    with pytest.raises(ConfigError, match="unknown ModelConfig field\\(s\\): d_modle"):
        ModelConfig.from_dict({"d_modle": 7})


def test_schedule_matches_the_record():
    """Warmup lr*(s+1)/1350, then cosine from peak to 0.1*peak at train_steps (section 4)."""
    cfg = TrainConfig()
    assert cfg.lr_at(0) == pytest.approx(0.02 / 1350)
    assert cfg.lr_at(1349) == pytest.approx(0.02)
    assert cfg.lr_at(1350) == pytest.approx(0.02)
    assert cfg.lr_at(26_999) == pytest.approx(0.002, rel=1e-5)
    midpoint = 1350 + (27_000 - 1350) // 2
    assert cfg.lr_at(midpoint) == pytest.approx(0.011, rel=1e-3)


def test_curriculum_phases():
    cfg = TrainConfig()
    assert [cfg.digits_at(s) for s in (0, 1999, 2000, 6999, 7000, 26_999)] == [
        (1, 3), (1, 3), (1, 6), (1, 6), (1, 10), (1, 10)]
