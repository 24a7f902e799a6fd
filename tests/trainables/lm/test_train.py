"""The LM's configs, model and training loop: validation messages, determinism, outputs."""

from __future__ import annotations

import json

import pytest
import torch

from trainables.lm.config import ConfigError, LMRun, ModelConfig, TrainConfig
from trainables.lm.data import prepare
from trainables.lm.model import build_model
from trainables.lm.train import train

TINY = {"data": {"corpus": "stdlib", "max_bytes": 120_000},
        "tokenizer": {"vocab_size": 300},
        "model": {"d_model": 16, "n_layer": 1, "n_head": 2, "context_length": 16, "gate": "glu"},
        "train": {"train_steps": 20, "eval_interval": 10, "warmup_steps": 2, "batch_size": 4, "eval_bytes": 2048},
        "generation": {"num_prompts": 2, "max_new_tokens": 6}}


@pytest.mark.parametrize("make, message", [
    (lambda: ModelConfig(d_model=30, n_head=4), "n_head=4 must divide d_model=30"),
    (lambda: ModelConfig(dropout=1.0), "dropout must be in \\[0, 1\\), got 1.0"),
    (lambda: ModelConfig(gate="lstm"), "gate must be 'none', 'glu' or 'memory', got 'lstm'"),
    (lambda: TrainConfig(train_steps=10, warmup_steps=10), "warmup_steps=10 must be in \\[0, train_steps=10\\)"),
    (lambda: TrainConfig(lr=0.0), "lr must be a finite number > 0, got 0.0"),
    (lambda: LMRun.from_sections({"model": {"width": 3}}), "unknown model field\\(s\\): width"),
])
def test_configs_name_field_and_value(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_schedule_endpoints():
    config = TrainConfig(lr=1.0, train_steps=101, warmup_steps=10, min_lr_ratio=0.1)
    assert config.lr_at(0) == pytest.approx(0.1) and config.lr_at(9) == pytest.approx(1.0)
    assert config.lr_at(10) == pytest.approx(1.0) and config.lr_at(100) == pytest.approx(0.1)
    linear = TrainConfig(lr=1.0, train_steps=101, warmup_steps=0, schedule="linear", min_lr_ratio=0.0)
    assert linear.lr_at(50) == pytest.approx(0.5)
    assert TrainConfig(schedule="constant", warmup_steps=0).lr_at(500) == TrainConfig().lr


def test_model_shapes_parameters_and_context_limit():
    config = ModelConfig(d_model=16, n_layer=2, n_head=2, context_length=8)
    model = build_model(config, 50, seed=0)
    assert model(torch.randint(50, (3, 8))).shape == (3, 8, 50)
    assert model.head.weight is model.token_emb.weight
    untied = build_model(ModelConfig(d_model=16, n_layer=2, n_head=2, context_length=8, tie_embeddings=False), 50, 0)
    assert untied.num_parameters() - model.num_parameters() == 50 * 16
    assert model.embedding_parameters() == 50 * 16 + 8 * 16
    with pytest.raises(ValueError, match="exceeds context_length=8"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_same_seed_same_run_and_seed_never_moves_the_split(tmp_path):
    run = LMRun.from_sections(TINY)
    data = prepare(run, tmp_path / "cache")
    first = train(run, data=data)
    again = train(run, data=prepare(run, tmp_path / "cache"))
    assert [h["val/bits_per_byte"] for h in first.history] == [h["val/bits_per_byte"] for h in again.history]
    other = LMRun.from_sections(TINY, train={"seed": 5})
    other_data = prepare(other, tmp_path / "cache")
    assert other_data.split.val_sha256 == data.split.val_sha256 and other_data.cache_hit
    assert [h["val/bits_per_byte"] for h in train(other, data=other_data).history] != \
        [h["val/bits_per_byte"] for h in first.history]


def test_reports_outputs_and_diagnostics_overhead(tmp_path):
    run = LMRun.from_sections(TINY)
    reports = []
    result = train(run, tmp_path / "out", lambda metrics, folder: reports.append((metrics, folder)),
                   data=prepare(run, tmp_path / "cache"))
    assert [m["step"] for m, _ in reports] == [0, 10, 19]
    assert [f for _, f in reports][:2] == [None, None] and reports[-1][1] == tmp_path / "out"
    final = result.final
    for key in ("val/bits_per_byte", "train_eval/bits_per_byte", "diag/generalization_gap", "tok/tokens_per_byte",
                "tok/vocab_used", "gen/collapse_rate", "audit/causal_leak", "diag/gate/blocks.0.ffn.sigmoid/dead",
                "diag/erank/hidden/block0", "perf/diagnostics_share", "data/train_sha256"):
        assert key in final, key
    assert "data/train_sha256" in reports[0][0] and "data/train_sha256" not in reports[1][0]
    assert 0 < final["perf/diagnostics_share"] < 1
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert files == {"model.pt", "tokenizer.json", "completions.json", "run.json"}
    rows = json.loads((tmp_path / "out" / "completions.json").read_text())
    assert len(rows) == 4 and {r["mode"] for r in rows} == {"greedy", "sampled"}
    saved = torch.load(tmp_path / "out" / "model.pt", weights_only=False)
    assert saved["run"]["model"]["gate"] == "glu" and saved["vocab_size"] == 300
