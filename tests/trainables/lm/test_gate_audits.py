"""Gate and ablation audits with each fault planted: a memory in its linear regime that the model
does not use, saturated and dead gates; the plain memory raising none of these flags."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

from trainables import diagnostics
from trainables.lm import ablation, audits
from trainables.lm.config import AuditConfig, ConfigError, LMRun, ModelConfig
from trainables.lm.data import prepare
from trainables.lm.model import GatedMemory, build_model
from trainables.lm.train import train

D_MODEL = 32
SMALL_GAIN = 0.5 / math.sqrt(D_MODEL)
"""The reported regime: 0.5/sqrt(d_model)."""
GATE_FLAGS = {"gates_linear", "gates_dead", "gates_saturated", "component_unused"}


@pytest.mark.parametrize("make, message", [
    (lambda: ModelConfig(gate="memory", gate_input_gain=0.0), "gate_input_gain must be a finite number > 0, got 0.0"),
    (lambda: ModelConfig(gate="memory", gate_input_gain=math.inf), "gate_input_gain must be a finite number.*, got inf"),
    (lambda: ModelConfig(gate="memory", gate_input_gain=math.nan), "gate_input_gain must be a finite number.*, got nan"),
    (lambda: ModelConfig(gate="glu", gate_input_gain=0.1), "gate_input_gain=0.1 acts on the gated memory only, but "
                                                           "gate='glu'"),
    (lambda: AuditConfig(linear_input_abs_mean=-0.1), "linear_input_abs_mean must be a finite number >= 0, got -0.1"),
    (lambda: AuditConfig(max_dead_share=1.5), "max_dead_share must be in \\[0, 1\\], got 1.5"),
    (lambda: AuditConfig(max_saturated_share=-0.2), "max_saturated_share must be in \\[0, 1\\], got -0.2"),
    (lambda: AuditConfig(min_ablation_change=2.0), "min_ablation_change must be in \\[0, 1\\], got 2.0"),
    (lambda: AuditConfig(ablation_reset_every=(4, 0)), "ablation_reset_every must hold positive integers, got \\(4, 0\\)"),
])
def test_invalid_gain_and_thresholds_name_field_and_value(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_reset_list_from_sections_becomes_a_tuple():
    run = LMRun.from_sections({"audit": {"ablation_reset_every": [2, 8]}})
    assert run.audit.ablation_reset_every == (2, 8)


def test_memory_forward_with_gain_and_reset_by_hand():
    """The gain multiplies both pre-activations; reset_every N restarts the causal running mean."""
    config = ModelConfig(d_model=8, n_head=2, context_length=10, gate="memory", gate_input_gain=0.25)
    torch.manual_seed(0)
    memory = GatedMemory(config)
    x = torch.randn(2, 10, 8)
    c, g = 0.25 * memory.candidate(x), 0.25 * memory.gate(x)
    features = torch.tanh(c)
    running = torch.stack([features[:, : t + 1].mean(1) for t in range(10)], dim=1)
    torch.testing.assert_close(memory(x), memory.proj(torch.sigmoid(g) * running))
    memory.reset_every = 4
    restarted = torch.stack([features[:, 4 * (t // 4): t + 1].mean(1) for t in range(10)], dim=1)
    torch.testing.assert_close(memory(x), memory.proj(torch.sigmoid(g) * restarted))
    later = x.clone()
    later[:, :8] = torch.randn(2, 8, 8)  # positions 8, 9 form their own segment: earlier tokens no longer matter
    assert torch.equal(memory(later)[:, 8:], memory(x)[:, 8:])


def test_gain_changes_no_initial_weight_and_one_is_the_plain_memory():
    plain = build_model(ModelConfig(d_model=16, n_head=2, context_length=8, gate="memory"), 30, seed=3)
    small = build_model(ModelConfig(d_model=16, n_head=2, context_length=8, gate="memory", gate_input_gain=0.1), 30, 3)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), small.state_dict().values()))
    x = torch.randint(30, (2, 8))
    assert not torch.equal(plain(x), small(x))
    assert plain.ablatable().keys() == {"memory"} and len(plain.ablatable()["memory"]) == 2
    assert build_model(ModelConfig(d_model=16, n_head=2, context_length=8, gate="glu"), 30, 3).ablatable() == {}


def _gate_measurements(model, vocab=30):
    x = torch.randint(vocab, (4, model.config.context_length), generator=torch.Generator().manual_seed(0))
    return diagnostics.gate_health(model, lambda: model(x))


def _memory_model(**model):
    return build_model(ModelConfig(d_model=64, n_layer=2, n_head=2, context_length=16, gate="memory", **model), 30, 0)


def test_small_gain_is_linear_from_initialization():
    measured = _gate_measurements(_memory_model(gate_input_gain=0.5 / 8))
    flags = audits.audit_flags(measured, AuditConfig())
    assert "gates_linear" in flags
    assert "blocks.*.memory.tanh" in flags["gates_linear"] and "(layers 0, 1)" in flags["gates_linear"]
    assert audits.audit_flags(measured, AuditConfig(linear_input_abs_mean=0.0)).keys() == flags.keys() - {
        "gates_linear"}
    layers = audits.gate_layers(measured)
    assert set(layers) == {"blocks.*.memory.tanh", "blocks.*.memory.sigmoid"}
    assert set(layers["blocks.*.memory.tanh"]) == {"0", "1"}


@pytest.mark.parametrize("bias, flag, other", [(30.0, "gates_saturated", "gates_dead"),
                                               (-30.0, "gates_dead", "gates_saturated")])
def test_a_huge_gate_bias_saturates_or_kills_the_gate(bias, flag, other):
    model = _memory_model()
    assert not GATE_FLAGS & set(audits.audit_flags(_gate_measurements(model), AuditConfig()))
    with torch.no_grad():
        model.blocks[1].memory.gate.bias.fill_(bias)  # plant the fault in one layer
    flags = audits.audit_flags(_gate_measurements(model), AuditConfig())
    assert flag in flags and other not in flags and "gates_linear" not in flags
    assert "blocks.1.memory.sigmoid 100%" in flags[flag] and "blocks.0" not in flags[flag]


def test_unused_needs_every_variant_below_the_share():
    key = "diag/ablation/memory/{}/relative_change"
    small = {key.format("zeroed"): 0.004, key.format("mean"): -0.009, key.format("reset1"): 0.0}
    flags = audits.audit_flags(small, AuditConfig())
    assert set(flags) == {"component_unused"}
    assert "memory (zeroed +0.40%, mean -0.90%, reset1 +0.00%)" in flags["component_unused"]
    assert audits.audit_flags({**small, key.format("reset1"): -0.012}, AuditConfig()) == {}  # one variant matters
    assert audits.audit_flags(small, AuditConfig(min_ablation_change=0.001)) == {}


def test_ablation_variants_remove_what_they_say():
    model = _memory_model()
    modules = model.ablatable()["memory"]
    x = torch.randint(30, (2, 16))
    with ablation.ablated(modules, "zeroed"):
        zeroed = model(x)
    with torch.no_grad():
        for m in modules:
            m.proj.weight.zero_()
            m.proj.bias.zero_()
    assert torch.equal(zeroed, model(x))  # the blocks add nothing: as if the memory were absent
    model = _memory_model()
    modules = model.ablatable()["memory"]
    means = ablation.output_means(modules, lambda: model(x))
    seen = ablation.output_means(modules, lambda: model(x[:1]))  # another text: another mean
    assert not torch.equal(means[modules[0]], seen[modules[0]])
    with ablation.ablated(modules, "mean", means):
        handle = modules[0].register_forward_hook(lambda m, _inputs, output: seen.update({m: output.clone()}))
        model(x)
        handle.remove()
    assert torch.equal(seen[modules[0]], means[modules[0]].expand(2, 16, 64))
    with ablation.ablated(modules, "reset4"):
        assert [m.reset_every for m in modules] == [4, 4]
    assert [m.reset_every for m in modules] == [0, 0] and not any(m._forward_hooks for m in modules)
    with pytest.raises(ValueError, match="got 'reset0'"), ablation.ablated(modules, "reset0"):
        pass
    assert ablation.variants(modules, (1, 16, 4), context_length=16) == ["zeroed", "mean", "reset1", "reset4"]


def _pairs_corpus(path):
    """200 documents of 30 lines, each document drawing its characters from its own 2 of 8 letters:
    which two, the running mean of the window says (what the memory computes)."""
    rng = random.Random(0)
    docs = []
    for _ in range(200):
        pair = rng.sample("abcdefgh", 2)
        docs.append("".join("".join(rng.choice(pair) for _ in range(31)) + "\n" for _ in range(30)))
    path.write_text("".join(docs))
    return path


def _memory_run(corpus, gain):
    return LMRun.from_sections({
        "data": {"corpus": str(corpus), "block_chars": 960}, "tokenizer": {"algorithm": "char", "vocab_size": 12},
        "model": {"d_model": D_MODEL, "n_layer": 1, "n_head": 2, "context_length": 32, "gate": "memory",
                  "gate_input_gain": gain},
        "train": {"train_steps": 200, "eval_interval": 100, "warmup_steps": 2, "batch_size": 8, "lr": 1e-2,
                  "eval_bytes": 4096},
        "generation": {"num_prompts": 2, "max_new_tokens": 6}})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The memory LM at gain 1 and at 0.5/sqrt(d_model), 200 steps on the pairs corpus (about 2 s each)."""
    root = tmp_path_factory.mktemp("memory")
    corpus = _pairs_corpus(root / "pairs.txt")
    runs = {gain: _memory_run(corpus, gain) for gain in (1.0, SMALL_GAIN)}
    return root, {gain: train(run, root / f"out{gain:.3f}", data=prepare(run, root / "cache"))
                  for gain, run in runs.items()}


def test_small_gain_memory_is_linear_and_unused_after_training(trained):
    root, results = trained
    result = results[SMALL_GAIN]
    final = result.final
    assert {"gates_linear", "component_unused"} <= set(result.flags)
    assert final["audit/gates_linear"] == 1.0 and final["audit/component_unused"] == 1.0
    assert final["diag/gate/blocks.0.memory.tanh/input_abs_mean"] < 0.1
    assert set(result.ablations) == {"memory/zeroed", "memory/mean", "memory/reset1", "memory/reset16"}
    assert all(abs(v["relative_change"]) < 0.01 for v in result.ablations.values())
    zeroed = result.ablations["memory/zeroed"]
    assert zeroed["delta_bits_per_byte"] == pytest.approx(zeroed["bits_per_byte"] - final["val/bits_per_byte"])
    assert "component_unused: no ablation of memory (zeroed" in final["audit_reasons"]
    out = root / f"out{SMALL_GAIN:.3f}"
    rows = json.loads((out / "completions.json").read_text())
    assert [r["ablation"] for r in rows] == ["none"] * 4 + [f"memory/{v}" for v in ("zeroed", "mean", "reset1",
                                                                                      "reset16") for _ in range(4)]
    assert list(rows[0])[:3] == ["prompt", "mode", "ablation"]
    assert json.loads((out / "run.json").read_text())["ablations"] == result.ablations
    assert final["gen/completions_sampled"] == 2.0  # the generation metrics are the full model's only


def test_plain_memory_is_used_and_raises_no_gate_flag(trained):
    _, results = trained
    result = results[1.0]
    assert not GATE_FLAGS & set(result.flags), result.flags
    assert result.final["diag/gate/blocks.0.memory.tanh/input_abs_mean"] > 0.1
    assert max(abs(v["relative_change"]) for v in result.ablations.values()) >= 0.01
    assert result.final["audit/component_unused"] == 0.0 and result.final["audit/gates_linear"] == 0.0


def test_trial_table_carries_the_flags_and_deltas_to_the_verdict(trained):
    pytest.importorskip("ray")
    from types import SimpleNamespace

    from tune_jobs.runtime.results import trial_table
    from tune_jobs.trials.lm import LM
    from tune_jobs.verdicts.lm import SUSPECT, verdict_table
    _, results = trained
    config = _memory_run("pairs.txt", SMALL_GAIN).to_sections()
    config["train"].pop("seed")  # a trial config holds its seed once, beside the sections
    trials = [SimpleNamespace(config={**config, "seed": seed}, error=None, path=f"/x/t{seed}", checkpoint=None,
                              metrics_dataframe=None,
                              metrics={**results[SMALL_GAIN].final, "trial_id": f"t{seed}"}) for seed in (0, 1, 2)]
    table = trial_table(trials, LM)
    assert all("gates_linear" in flags and "component_unused" in flags for flags in table["flags"])
    key = "diag/ablation/memory/zeroed/delta_bits_per_byte"
    assert table[key].tolist() == [results[SMALL_GAIN].ablations["memory/zeroed"]["delta_bits_per_byte"]] * 3
    verdict = verdict_table(table).iloc[0]
    assert verdict["verdict"] == SUSPECT and "gates_linear (seeds 0,1,2)" in verdict["audit_flags"]
