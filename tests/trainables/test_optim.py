"""The shared optimizer pieces: AdamW takes each recipe's betas and eps, the clip coefficient is
clip_grad_norm_'s to the bit, and clipping at 0 leaves gradients alone."""

import pytest
import torch

from trainables.addition.config import TrainConfig as AdditionTrain
from trainables.lm.config import TrainConfig as LMTrain
from trainables.optim import adamw, clip_coefficient, clip_gradients, set_lr


@pytest.mark.parametrize("recipe, betas", [(AdditionTrain(lr=0.03, weight_decay=0.02), (0.9, 0.999)),
                                           (LMTrain(lr=0.004, weight_decay=0.2), (0.9, 0.95))])
def test_adamw_is_built_from_the_recipe(recipe, betas):
    optimizer = adamw([torch.nn.Parameter(torch.zeros(3))], recipe)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"], group["betas"], group["eps"]) == (recipe.lr, recipe.weight_decay,
                                                                                betas, 1e-8)


def test_adamw_passes_kernel_switches_and_an_lr_override():
    lr = torch.tensor(0.5)
    group = adamw([torch.nn.Parameter(torch.zeros(3))], AdditionTrain(), lr=lr).param_groups[0]
    assert group["lr"] is lr
    assert adamw([torch.nn.Parameter(torch.zeros(3))], AdditionTrain(), foreach=True).param_groups[0]["foreach"]


@pytest.mark.parametrize("scale", [1e-3, 1.0, 50.0])
def test_the_clip_coefficient_scales_as_clip_grad_norm(scale):
    torch.manual_seed(0)
    grads = [scale * torch.randn(5, 4), scale * torch.randn(7)]
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=False)
    coef = clip_coefficient(torch.nn.utils.get_total_norm(grads), 1.0)
    assert coef <= 1.0
    for p, g in zip(params, grads):
        assert torch.equal(p.grad, g * coef)


def test_the_clip_coefficient_is_per_row_for_stacked_norms():
    norms = torch.tensor([0.5, 2.0, 4.0])
    assert torch.equal(clip_coefficient(norms, 1.0), torch.stack([clip_coefficient(n, 1.0) for n in norms]))
    assert clip_coefficient(norms, 1.0)[0] == 1.0 and clip_coefficient(norms, 1.0)[2] < 0.25


def test_clipping_at_zero_leaves_gradients_alone():
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.full((3,), 100.0)
    clip_gradients([p], 0.0)
    assert torch.equal(p.grad, torch.full((3,), 100.0))
    clip_gradients([p], 1.0)
    assert torch.linalg.vector_norm(p.grad) == pytest.approx(1.0, rel=1e-5)


def test_set_lr_sets_every_group():
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = adamw([{"params": params[:1]}, {"params": params[1:], "weight_decay": 0.0}], LMTrain())
    set_lr(optimizer, 0.125)
    assert [group["lr"] for group in optimizer.param_groups] == [0.125, 0.125]
