"""Fast mode's step: the last block restricted to the scored positions is exact (same loss and gradients
as the full forward), the compiled whole step trains like the eager one, deterministically, and falls
back to eager when compiling fails; the vectorized holdout exclusion is exact."""

import pytest
import torch
import torch.nn.functional as F

from trainables.addition import compiled_step
from trainables.addition.checkpoint import load_checkpoint
from trainables.addition.config import TIE_MODES, ModelConfig, TrainConfig
from trainables.addition.data import IGNORE_INDEX, TrainingStream, encode, inputs_and_targets
from trainables.addition.compiled_step import CompiledStep, adamw_state
from trainables.addition.losses import scored_loss
from trainables.addition.model import build_model
from trainables.addition.steps import eager_update, make_optimizer
from trainables.addition.train import train

VARIANTS = {
    "full-rank LayerNorm": {},
    "low-rank RMSNorm": {"pos_rank": 2, "attn_out_rank": 2, "ffn_rank": 3, "use_rmsnorm": True},
}
# One small configuration for every compiled test, so that they share one compile (and its cache).
MODEL = ModelConfig(d_model=6, d_ff=12)
TRAIN = TrainConfig(seed=5, train_steps=60, warmup_steps=5, eval_interval=20, val_size=64, test_size=64,
                    batch_size=32, mode="fast", compile=True)


def _batch(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(1, 11, (n,), generator=g)
    a = (torch.rand(n, generator=g, dtype=torch.float64) * 10.0 ** k).long()
    b = (torch.rand(n, generator=g, dtype=torch.float64) * 10.0 ** k).long()
    return a, b


def _full_loss(model, x, y):
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, 14), y.reshape(-1), ignore_index=IGNORE_INDEX)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("n_layer", [1, 2])
@pytest.mark.parametrize("tie", TIE_MODES)
def test_the_restricted_forward_gives_the_full_loss_and_gradients(tie, n_layer, variant):
    config = ModelConfig(d_model=6, d_ff=12, n_layer=n_layer, tie_qkv=tie, qkv_rank=2 if tie.startswith("share") or
                         variant != "full-rank LayerNorm" else 0, **VARIANTS[variant])
    model = build_model(config, 11)
    with torch.no_grad():  # move off the initial point, where LayerNorm/RMSNorm weights are all 1
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x, y = inputs_and_targets(encode(*_batch()))
    full = _full_loss(model, x, y)
    full_grads = torch.autograd.grad(full, list(model.parameters()))
    restricted = scored_loss(model, x, y)
    restricted_grads = torch.autograd.grad(restricted, list(model.parameters()))
    torch.testing.assert_close(restricted, full, rtol=1e-6, atol=1e-7)
    for (name, _), got, want in zip(model.named_parameters(), restricted_grads, full_grads):
        assert want.abs().max() > 0, name  # every parameter takes part in the loss
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6, msg=name)
    torch.testing.assert_close(model(x, 21), model(x)[:, 21:], rtol=1e-4, atol=1e-5)


def test_the_restricted_forward_computes_the_last_block_at_the_scored_positions_only():
    model = build_model(ModelConfig(d_model=6, d_ff=12, n_layer=2), 0)
    widths = {}

    def record(name):
        def hook(module, inputs, output):
            widths[name] = output.shape[1]
        return hook

    for name in ("blocks.0.mlp.fc1", "blocks.1.mlp.fc1", "blocks.1.attn.proj"):
        model.get_submodule(name).register_forward_hook(record(name))
    model(inputs_and_targets(encode(*_batch(4)))[0], 21)
    assert widths == {"blocks.0.mlp.fc1": 33, "blocks.1.mlp.fc1": 12, "blocks.1.attn.proj": 12}


def test_the_compiled_step_takes_the_eager_steps_values():
    """The functional clip + AdamW of the compiled graph is PyTorch's: 5 steps agree with the eager step
    to float32 rounding, and the optimizer state keeps AdamW's format (step counts, moments)."""
    losses, states = {}, {}
    for kind in ("eager", "compiled"):
        model = build_model(MODEL, 5)
        optimizer = make_optimizer(model, TRAIN)
        cfg = TrainConfig(**{**TRAIN.__dict__, "compile": kind == "compiled"})
        eager = lambda a, b, lr, model=model, optimizer=optimizer: eager_update(model, optimizer, cfg, a, b, lr)
        step = CompiledStep(model, optimizer, cfg.grad_clip, eager) if kind == "compiled" else eager
        losses[kind] = torch.stack([step(*_batch(32, seed), cfg.lr_at(seed)) for seed in range(5)])
        states[kind] = (model.state_dict(), optimizer.state_dict())
        assert kind == "eager" or step.compiled and step.compile_seconds > 0
    torch.testing.assert_close(losses["compiled"], losses["eager"], rtol=1e-5, atol=1e-6)
    for name, tensor in states["eager"][0].items():
        torch.testing.assert_close(states["compiled"][0][name], tensor, rtol=1e-4, atol=1e-6, msg=name)
    for index, state in states["eager"][1]["state"].items():
        assert float(states["compiled"][1]["state"][index]["step"]) == float(state["step"]) == 5.0
        torch.testing.assert_close(states["compiled"][1]["state"][index]["exp_avg_sq"], state["exp_avg_sq"],
                                   rtol=1e-4, atol=1e-9)


def test_compiled_training_is_deterministic_and_checkpoints_in_the_reference_format(tmp_path):
    calls = []
    first = train(MODEL, TRAIN, tmp_path / "a", report=lambda m, folder: calls.append(m))
    second = train(MODEL, TRAIN, tmp_path / "b")
    assert first.loss_trace == second.loss_trace and len(first.loss_trace) == 60
    assert calls[0]["perf/compile_seconds"] > 0 and all("perf/compile_seconds" not in m for m in calls[1:])
    eager = train(MODEL, TrainConfig(**{**TRAIN.__dict__, "compile": False}))
    assert eager.loss_trace != first.loss_trace  # another operation order ...
    assert eager.loss_trace == pytest.approx(first.loss_trace, rel=1e-4)  # ... the same training
    best = load_checkpoint(tmp_path / "a" / "best.pt")
    assert best.model_config == MODEL and best.extra["train_step"] == "compiled step"
    assert torch.load(tmp_path / "a" / "last.pt", weights_only=True)["optimizer_state"]["state"][0]["step"] == 60


def test_a_compile_failure_warns_and_trains_with_the_eager_step(monkeypatch, tmp_path):
    def no_compiler(graph, example_inputs):
        raise torch._inductor.exc.InvalidCxxCompiler()

    monkeypatch.setattr(compiled_step, "COMPILE_BACKEND", no_compiler)
    calls = []
    with pytest.warns(RuntimeWarning, match=r"compile of the training step failed \(InvalidCxxCompiler: No working "
                                            r"C\+\+ compiler.*training with the eager step instead"):
        fallback = train(MODEL, TRAIN, tmp_path, report=lambda m, folder: calls.append(m))
    eager = train(MODEL, TrainConfig(**{**TRAIN.__dict__, "compile": False}))
    assert fallback.loss_trace == eager.loss_trace
    assert all("perf/compile_seconds" not in m for m in calls)
    assert load_checkpoint(tmp_path / "last.pt").extra["train_step"] == "eager"


def test_adamw_state_matches_what_adamw_creates():
    model = build_model(MODEL, 0)
    ours = make_optimizer(model, TRAIN)
    params, exp_avgs, exp_avg_sqs, steps = adamw_state(ours)
    theirs = make_optimizer(model, TRAIN)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    theirs.step()  # zero gradients: creates the state, leaves moments at 0
    for p, mine in zip(params, steps):
        state = theirs.state[p]
        assert mine.dtype == state["step"].dtype and mine.shape == state["step"].shape
    assert [t.shape for t in exp_avgs] == [t.shape for t in exp_avg_sqs] == [p.shape for p in params]
    with pytest.raises(ValueError, match="one AdamW parameter group"):
        adamw_state(torch.optim.AdamW([{"params": [params[0]]}, {"params": params[1:]}]))


def _per_example_reference(stream, batch_size, lo, hi):
    """The fast stream with the holdout checked example by example (the loop it replaced)."""
    g = stream.generator
    k = torch.randint(lo, hi + 1, (batch_size,), generator=g)
    high = torch.pow(10.0, k.double())
    a = (torch.rand(batch_size, generator=g, dtype=torch.float64) * high).long()
    b = (torch.rand(batch_size, generator=g, dtype=torch.float64) * high).long()
    for i, pair in enumerate(zip(a.tolist(), b.tolist())):
        while pair in stream.holdout:
            pair = (int(torch.randint(0, 10 ** int(k[i]), (1,), generator=g)),
                    int(torch.randint(0, 10 ** int(k[i]), (1,), generator=g)))
            a[i], b[i] = pair
    return a, b


@pytest.mark.parametrize("digits", [(1, 10), (1, 1)])
def test_the_vectorized_holdout_exclusion_excludes_planted_pairs_exactly(digits):
    upcoming = TrainingStream(3, set(), "fast").sample(512, *digits)  # what the stream would draw first
    planted = {(int(upcoming[0][i]), int(upcoming[1][i])) for i in (0, 7, 300)}
    holdout = planted | {(123, 456), (10**10 - 1, 5)}
    a, b = TrainingStream(3, holdout, "fast").sample(512, *digits)
    drawn = set(zip(a.tolist(), b.tolist()))
    assert not drawn & holdout
    reference = _per_example_reference(TrainingStream(3, holdout, "fast"), 512, *digits)
    assert torch.equal(a, reference[0]) and torch.equal(b, reference[1])
    unplanted = [i for i in range(512) if (int(upcoming[0][i]), int(upcoming[1][i])) not in planted]
    assert torch.equal(a[unplanted], upcoming[0][unplanted])  # only the planted examples were redrawn
    assert a.max() < 10 ** digits[1]
