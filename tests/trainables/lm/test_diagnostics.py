"""Effective rank on matrices of known rank, gate health, and jump (grokking onset) steps."""

from __future__ import annotations

import math

import pytest
import torch

from trainables import diagnostics
from trainables.lm.config import ModelConfig
from trainables.lm.model import build_model


def _with_singular_values(values, rows=12, cols=9, seed=0):
    """U diag(values) V^T with random orthonormal U, V: a matrix whose singular values are known."""
    generator = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(rows, rows, generator=generator, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(cols, cols, generator=generator, dtype=torch.float64))
    s = torch.zeros(rows, cols, dtype=torch.float64)
    for i, value in enumerate(values):
        s[i, i] = value
    return u @ s @ v.T


@pytest.mark.parametrize("rank", [1, 2, 5, 9])
def test_effective_rank_of_equal_singular_values_is_the_rank(rank):
    assert diagnostics.effective_rank(_with_singular_values([2.0] * rank)) == pytest.approx(rank, rel=1e-9)


def test_effective_rank_by_hand_and_edge_cases():
    """Singular values (3, 1): p = (3/4, 1/4), exp(-(3/4 ln 3/4 + 1/4 ln 1/4)) = 1.7547654..."""
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert diagnostics.effective_rank(_with_singular_values([3.0, 1.0])) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(1.7547654, abs=1e-7)
    assert diagnostics.effective_rank(torch.eye(5)) == pytest.approx(5.0)
    assert diagnostics.effective_rank(torch.zeros(3, 4)) == 0.0
    with pytest.raises(ValueError, match="2-D matrix"):
        diagnostics.effective_rank(torch.ones(3))
    with pytest.raises(ValueError, match="NaN or infinite"):
        diagnostics.effective_rank(torch.full((2, 2), math.nan))


def test_gate_stats_see_a_dead_tanh_memory_and_a_closed_sigmoid():
    """The reported failure: tanh inputs around 0.017 -> the memory passes almost nothing."""
    x = torch.full((1000,), 0.017)
    stats = diagnostics.gate_stats(x, "tanh")
    assert stats["dead"] == 1.0 and stats["saturated"] == 0.0
    assert stats["input_abs_mean"] == pytest.approx(0.017, rel=1e-6)
    closed = diagnostics.gate_stats(torch.full((10,), -10.0), "sigmoid")
    assert closed["dead"] == 1.0 and closed["mean"] < 1e-4
    open_ = diagnostics.gate_stats(torch.full((10,), 10.0), "sigmoid")
    assert open_["saturated"] == 1.0 and open_["dead"] == 0.0
    with pytest.raises(ValueError, match="kind must be"):
        diagnostics.gate_stats(x, "relu")


@pytest.mark.parametrize("gate, names", [("memory", {"memory.tanh", "memory.sigmoid"}), ("glu", {"ffn.sigmoid"}),
                                         ("none", set())])
def test_gate_health_and_ranks_of_the_lm(gate, names):
    model = build_model(ModelConfig(d_model=16, n_layer=2, n_head=2, context_length=8, gate=gate), 20, seed=0)
    x = torch.randint(20, (2, 8))
    health = diagnostics.gate_health(model, lambda: model(x))
    found = {k.split("/")[2].split(".", 2)[2] for k in health}
    assert found == names
    if gate == "memory":
        assert 0 <= health["diag/gate/blocks.0.memory.tanh/dead"] <= 1
    assert all(not m._forward_hooks for m in model.modules())  # hooks removed
    assert model.training  # mode restored
    ranks = diagnostics.hidden_state_ranks(model, {f"block{i}": b for i, b in enumerate(model.blocks)},
                                           lambda: model(x))
    assert set(ranks) == {"diag/erank/hidden/block0", "diag/erank/hidden/block1"}
    weights = diagnostics.weight_ranks(model)
    assert "diag/erank/token_emb.weight" in weights and "diag/erank/head.weight" not in weights  # tied: once
    assert all(1.0 <= v <= 16.0 for v in weights.values())


def test_jump_step():
    steps = [0, 100, 200, 300, 400, 500]
    assert diagnostics.jump_step(steps, [0.0, 0.0, 0.01, 0.02, 0.95, 1.0]) == 400  # grokking in exact match
    assert diagnostics.jump_step(steps, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]) is None  # steady: no jump
    # an ordinary LM curve (bits per byte of a sweep trial): the fall from initialization is not a jump
    assert diagnostics.jump_step(steps[:5], [3.155, 1.973, 1.822, 1.744, 1.705], higher_is_better=False) is None
    # a plateau then a drop in a loss
    assert diagnostics.jump_step(steps, [5.0, 3.0, 2.95, 2.9, 1.0, 0.95], higher_is_better=False) == 400
    assert diagnostics.jump_step(steps[:3], [0.0, 0.0, 1.0]) is None  # no plateau observed yet
    assert diagnostics.jump_step(steps, [1.0] * 6) is None
