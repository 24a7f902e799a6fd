"""Each audit fault planted in a tiny model or dataset raises its flag; clean ones raise none."""

from __future__ import annotations

import torch

from trainables.lm import audits
from trainables.lm.config import AuditConfig, LMRun, ModelConfig
from trainables.lm.corpus import split_corpus
from trainables.lm.data import prepare
from trainables.lm.model import build_model
from trainables.lm.train import train

CLEAN = {"causal_leak": 0.0, "split_overlap": 0.02, "val_better": 0.0, "val_perplexity": 40.0,
         "val_bits_per_byte": 2.5, "unigram_bits_per_byte": 4.5, "collapse_rate_sampled": 0.1}


def _model():
    return build_model(ModelConfig(d_model=16, n_layer=2, n_head=2, context_length=12, gate="memory"), 30, seed=0)


def test_causal_model_passes_and_a_non_causal_mask_is_caught():
    model = _model()
    assert audits.causal_leak(model, 30, 12) == 0.0
    for block in model.blocks:  # plant the fault: attention may look at every position
        block.attn.mask.fill_(True)
    leak = audits.causal_leak(model, 30, 12)
    assert leak > 1e-3
    flags = audits.audit_flags({**CLEAN, "causal_leak": leak}, AuditConfig())
    assert set(flags) == {"causal_leak"} and "sees the future" in flags["causal_leak"]


def test_validation_copied_from_training_is_caught(tmp_path):
    text = "".join(f"    value_{i} = compute_something_long(argument_{i}, other={i})\n" for i in range(200))
    assert audits.split_overlap(text, text) == 1.0
    assert audits.split_overlap(text[: len(text) // 2], text[len(text) // 2:]) == 0.0
    for i in range(6):  # a folder whose documents are copies: any split leaks
        (tmp_path / f"copy{i}.txt").write_text(text)
    run = LMRun.from_sections({"data": {"corpus": str(tmp_path), "val_fraction": 0.3},
                               "tokenizer": {"algorithm": "char", "vocab_size": 64},
                               "model": {"context_length": 16}})
    data = prepare(run, tmp_path / "cache")
    assert data.overlap == 1.0
    flags = audits.audit_flags({**CLEAN, "split_overlap": data.overlap}, run.audit)
    assert set(flags) == {"split_overlap"} and flags["split_overlap"].startswith("100% of long validation lines")


def test_stdlib_split_does_not_overlap():
    split = split_corpus(LMRun().data)
    overlap = audits.split_overlap(split.train, split.val)
    assert overlap < AuditConfig().max_overlap


def test_validation_better_for_the_whole_run_is_caught():
    assert audits.val_always_better([3.0, 2.5, 2.2], [2.9, 2.4, 2.0])
    assert not audits.val_always_better([3.0, 2.5, 2.2], [2.9, 2.6, 2.0])  # once worse: not the whole run
    assert not audits.val_always_better([3.0], [2.0])  # one evaluation is no run
    assert not audits.val_always_better([3.0, 2.5], [2.99, 2.4], margin=0.02)  # within the margin once
    flags = audits.audit_flags({**CLEAN, "val_better": 1.0}, AuditConfig())
    assert set(flags) == {"val_better_than_train"}


def test_clean_measurements_raise_no_flag():
    assert audits.audit_flags(CLEAN, AuditConfig()) == {}
    assert audits.audit_flags({}, AuditConfig()) == {}  # nothing measured: nothing flagged


def test_collapse_with_a_bad_loss_is_not_flagged():
    """A looping model whose loss is no better than a unigram's is bad, not misleading."""
    measured = {**CLEAN, "collapse_rate_sampled": 0.9, "val_bits_per_byte": 5.0}
    assert audits.audit_flags(measured, AuditConfig()) == {}


def test_trivial_text_gives_perplexity_near_one_and_collapsed_generation(tmp_path):
    """Plant a dataset with nothing to learn beyond 'abab': the loss is near zero and sampled
    completions loop over two tokens, so both flags are raised by a real training run."""
    torch.manual_seed(0)
    (tmp_path / "ab.txt").write_text(("ab" * 40 + "\n") * 300)
    run = LMRun.from_sections({
        "data": {"corpus": str(tmp_path / "ab.txt"), "block_chars": 2000},
        "tokenizer": {"algorithm": "char", "vocab_size": 8},
        "model": {"d_model": 32, "n_layer": 1, "n_head": 2, "context_length": 32},
        "train": {"train_steps": 60, "eval_interval": 30, "warmup_steps": 5, "lr": 1e-2, "batch_size": 8,
                  "eval_bytes": 2048, "diagnostics": False},
        "generation": {"num_prompts": 3, "max_new_tokens": 24}})
    result = train(run, data=prepare(run, tmp_path / "cache"))
    final = result.final
    assert final["val/perplexity"] < 1.1
    assert {"perplexity_near_one", "collapsed_generation"} <= set(result.flags)
    assert final["audit/perplexity_near_one"] == 1.0 and final["audit/causal_leak"] == 0.0
    assert "perplexity_near_one: validation perplexity" in final["audit_reasons"]
