"""The model family: parameter counts from the record, tying, and seeded initialization."""

import pytest
import torch

from trainables.addition.config import TIE_MODES, ModelConfig
from trainables.addition.model import AdditionTransformer, build_model, count_parameters

LN3333 = dict(pos_rank=3, qkv_rank=3, attn_out_rank=3, ffn_rank=3)


@pytest.mark.parametrize("config, expected", [
    (ModelConfig(d_model=7, d_ff=14), 763),
    (ModelConfig(d_model=7, d_ff=28), 959),
    (ModelConfig(d_model=8, d_ff=28), 1128),
    (ModelConfig(d_model=7, d_ff=14, pos_rank=3, qkv_rank=3, attn_out_rank=3), 582),
    (ModelConfig(d_model=7, d_ff=14, **LN3333), 512),
    (ModelConfig(d_model=7, d_ff=14, pos_rank=3, qkv_rank=3, attn_out_rank=2, ffn_rank=3, use_rmsnorm=True,
                 tie_qkv="shareA_tieKV"), 456),
    (ModelConfig(d_model=4, d_ff=8, **LN3333, use_rmsnorm=True, tie_qkv="shareA_tieKV"), 311),
])
def test_parameter_counts_match_the_record(config, expected):
    """Check values of reference section 2."""
    assert count_parameters(config) == expected


def _formula(cfg: ModelConfig) -> int:
    """P = V*d + pos + 3*N + qkv + out + ffn (reference section 2), for the modes it covers."""
    d, r = cfg.d_model, cfg.qkv_rank
    norms = 3 * (d if cfg.use_rmsnorm else 2 * d)
    pos = 33 * d if cfg.pos_rank == 0 else cfg.pos_rank * (33 + d)
    if cfg.qkv_rank == 0:
        qkv = 3 * d * d
    else:
        qkv = 3 * d * r if cfg.tie_qkv.endswith(("tieKV", "tieQK")) else 4 * d * r
    out = d * d if cfg.attn_out_rank == 0 else 2 * d * cfg.attn_out_rank
    ffn = 2 * d * cfg.d_ff if cfg.ffn_rank == 0 else 2 * cfg.ffn_rank * (d + cfg.d_ff)
    return 14 * d + pos + norms + qkv + out + ffn


@pytest.mark.parametrize("mode", ["none", "shareA", "shareA_tieKV", "shareA_tieQK", "shareB", "shareB_tieKV",
                                  "shareB_tieQK"])
@pytest.mark.parametrize("rms", [False, True])
def test_parameter_count_formula(mode, rms):
    cfg = ModelConfig(d_model=6, d_ff=20, pos_rank=2, qkv_rank=3, attn_out_rank=1, ffn_rank=4, use_rmsnorm=rms,
                      tie_qkv=mode)
    assert count_parameters(cfg) == _formula(cfg)


def test_embedding_is_tied_to_the_lm_head():
    model = AdditionTransformer(ModelConfig())
    assert model.lm_head.weight is model.token_emb.weight


def test_same_seed_same_weights_other_seed_other_weights():
    cfg = ModelConfig(**LN3333)
    a, b, c = build_model(cfg, 42), build_model(cfg, 42), build_model(cfg, 43)
    for (name, p), q, r in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(p, q), name
    assert not torch.equal(a.token_emb.weight, c.token_emb.weight)


def test_reinit_pass_sets_norms_and_dense_weights():
    """Norms start at 1/0; full-rank maps and embeddings get std 0.02; low-rank factors keep their draw."""
    model = build_model(ModelConfig(d_model=8, d_ff=28, qkv_rank=3), 0)
    assert torch.all(model.blocks[0].ln1.weight == 1) and torch.all(model.blocks[0].ln1.bias == 0)
    assert model.blocks[0].mlp.fc1.weight.std().item() == pytest.approx(0.02, rel=0.25)
    factor = model.blocks[0].attn.qkv.A  # (8, 3): std sqrt(2 / 11)
    assert factor.std().item() == pytest.approx((2 / 11) ** 0.5, rel=0.35)


@pytest.mark.parametrize("mode", TIE_MODES)
def test_every_tie_mode_runs_and_is_causal(mode):
    cfg = ModelConfig(d_model=6, d_ff=12, qkv_rank=2 if mode.startswith("share") else 0, tie_qkv=mode)
    model = build_model(cfg, 1)
    x = torch.randint(0, 14, (3, 33))
    logits = model(x)
    assert logits.shape == (3, 33, 14)
    changed = x.clone()
    changed[:, 20:] = (changed[:, 20:] + 1) % 14
    assert torch.equal(model(changed)[:, :20], logits[:, :20]), "future tokens changed earlier logits"


def test_first_position_gives_the_same_logits_for_the_kept_positions():
    model = build_model(ModelConfig(), 3)
    x = torch.randint(0, 14, (4, 33))
    torch.testing.assert_close(model(x, 21), model(x)[:, 21:])
