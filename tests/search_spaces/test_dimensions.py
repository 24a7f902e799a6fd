"""Search spaces are data, validated before Ray starts, with errors that name field and value."""

import pytest

from search_spaces import Choice, IntRange, LogUniform, SearchSpace, SearchSpaceError, load_space, space_names, validate
from trainables.addition.config import ModelConfig, TrainConfig
from trainables.lm.config import SECTIONS as LM_SECTIONS

BUILDERS = {"model": ModelConfig, "train": TrainConfig}


@pytest.mark.parametrize("family, builders", [("addition", BUILDERS), ("lm", LM_SECTIONS)])
def test_shipped_spaces_are_valid(family, builders):
    names = space_names(family)
    assert "default" in names and "smoke" in names
    for name in names:
        assert validate(load_space(name, family), builders) > 0, name


def test_default_space_is_the_records_configurations_on_the_records_schedule():
    """Issue 14: d8/ff28 at lr 0.015, 512p and the positive control first, on section 4's 27k-step
    schedule (warmup 1,350, curriculum 1-3 / 1-6 / 1-10 digits from 0 / 2,000 / 7,000, eval every 1,000)."""
    DEFAULT = load_space("default", "addition")
    learner, lowrank, control = (point["model"] for point in DEFAULT.points_to_evaluate[:3])
    assert (learner["d_model"], learner["d_ff"], DEFAULT.points_to_evaluate[0]["train"]["lr"]) == (8, 28, 0.015)
    assert all(learner[r] == 0 for r in ("pos_rank", "qkv_rank", "attn_out_rank", "ffn_rank"))
    assert (lowrank["d_model"], lowrank["d_ff"]) == (7, 14)
    assert all(lowrank[r] == 3 for r in ("pos_rank", "qkv_rank", "attn_out_rank", "ffn_rank"))
    assert (control["d_model"], control["d_ff"]) == (16, 64)
    assert len(DEFAULT.seeds) >= 3
    train = DEFAULT.sections["train"]
    assert (train["train_steps"], train["warmup_steps"], train["eval_interval"]) == (27_000, 1350, 1000)
    assert [tuple(phase) for phase in train["curriculum"]] == [(0, 1, 3), (2000, 1, 6), (7000, 1, 10)]


def _space(model=None, train=None, seeds=(0, 1, 2), points=()):
    return SearchSpace("t", "test", seeds, {"model": model or {}, "train": train or {}}, points)


@pytest.mark.parametrize("space, message", [
    (_space(model={"d_model": Choice((6, 8)), "qkv_rank": IntRange(0, 6)}), "qkv_rank=6 must be smaller than d_model=6"),
    (_space(model={"tie_qkv": Choice(("none", "shareA")), "qkv_rank": Choice((0, 2))}),
     "tie_qkv='shareA' needs a low-rank QKV map, but qkv_rank=0"),
    (_space(model={"d_ff": IntRange(0, 8)}), "d_ff must be a positive integer, got 0"),
    (_space(train={"train_steps": Choice((0, 100)), "warmup_steps": 0}), "train_steps must be a positive integer, got 0"),
    (_space(train={"lr": LogUniform(0.0, 0.1)}), "train.lr: a log-scale range needs 0 < low, got low=0.0"),
    (_space(train={"lr": LogUniform(0.1, 0.01)}), "low=0.1 must not exceed high=0.01"),
    (_space(seeds=()), "seeds must name at least one replicate"),
    (_space(seeds=(1, 1, 2)), "seeds repeat: \\[1, 1, 2\\]"),
    (_space(model={"d_model": Choice((7, 8))}, points=({"model": {"d_model": 9}},)),
     "point to evaluate has model.d_model=9, outside its dimension"),
])
def test_impossible_spaces_are_rejected(space, message):
    with pytest.raises(SearchSpaceError, match=message):
        validate(space, BUILDERS)


def test_unknown_field_is_rejected():
    with pytest.raises(SearchSpaceError, match="d_modle"):
        validate(_space(model={"d_modle": 8}), BUILDERS)
