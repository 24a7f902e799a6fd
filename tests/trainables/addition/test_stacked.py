"""Seed-batched training: K stacked seeds against K single runs with the same counter stream."""

import dataclasses

import pytest
import torch
from torch.nn.utils import parameters_to_vector

from tests.trainables.addition import counter_oracle
from trainables.addition.checkpoint import load_checkpoint
from trainables.addition.config import TIE_MODES, ConfigError, ModelConfig, TrainConfig
from trainables.addition.counter_stream import CounterStream, HoldoutTable, draw_operands, seed_keys, training_stream
from trainables.addition.data import PROMPT_LEN, build_holdout, encode
from trainables.addition.evaluate import score_pairs
from trainables.addition.model import build_model
from trainables.addition.stacked import DIVERGED_KEY, train_stacked
from trainables.addition.stacked_checkpoint import seed_folder
from trainables.addition.stacked_engine import StackedEngine
from trainables.addition.stacked_model import Layout, load_row, seed_losses, stack_models, stacked_logits
from trainables.addition.stacked_model import stacked_scores, template_model
from trainables.addition.train import train

MODEL = ModelConfig(d_model=4, d_ff=8)
TRAIN = TrainConfig(train_steps=300, warmup_steps=10, eval_interval=100, val_size=32, test_size=32, batch_size=16,
                    mode="fast", stream="counter")
SHORT = dataclasses.replace(TRAIN, train_steps=60, eval_interval=10)
SEEDS = (11, 12, 13, 14)
ONE_HOLDOUT = torch.zeros((0, 2), dtype=torch.int64)


def _without_timing(history):
    return [{k: v for k, v in metrics.items() if not k.startswith("perf/")} for metrics in history]


def _configs():
    """Every ModelConfig option: each tie mode with full/low ranks, RMSNorm, two layers, two heads."""
    for mode in TIE_MODES:
        qkv = 3 if mode.startswith("share") else 0
        yield ModelConfig(d_model=8, d_ff=12, tie_qkv=mode, qkv_rank=qkv)
        yield ModelConfig(d_model=8, d_ff=12, tie_qkv=mode, qkv_rank=3, pos_rank=2, attn_out_rank=3, ffn_rank=2,
                          use_rmsnorm=True, n_layer=2, n_head=2)


@pytest.mark.parametrize("config", list(_configs()), ids=lambda c: f"{c.tie_qkv}-r{c.qkv_rank}-L{c.n_layer}")
def test_initial_weights_and_logits_are_each_seeds_single_model(config):
    seeds = (3, 4, 5)
    layout, flat = Layout.of(config), stack_models(config, seeds)
    idx = torch.randint(0, 14, (3, 4, 33), generator=torch.Generator().manual_seed(0))
    for i, seed in enumerate(seeds):
        single = build_model(config, seed)
        assert torch.equal(flat[i], parameters_to_vector(single.parameters()).detach())
        sliced = load_row(template_model(config), flat[i]).state_dict()
        assert all(torch.equal(v, sliced[k]) for k, v in single.state_dict().items())  # lm_head tie included
        for first in (0, PROMPT_LEN - 1):
            expected = single(idx[i], first)
            assert torch.allclose(stacked_logits(layout, flat, idx, first)[i], expected, rtol=1e-5, atol=1e-6)
        last = stacked_logits(layout, flat, idx, 32)[i]  # evaluation: the last position only
        assert torch.allclose(last, single(idx[i])[:, 32:], rtol=1e-5, atol=1e-6)


def test_every_training_batch_is_bit_identical_to_the_single_runs():
    engine = StackedEngine(MODEL, TRAIN, SEEDS)
    streams = []
    for seed in SEEDS:  # as train() builds its stream
        val, test = build_holdout(seed, TRAIN.val_size, TRAIN.test_size)
        streams.append(training_stream(dataclasses.replace(TRAIN, seed=seed), set(map(tuple, torch.cat([val, test]).tolist()))))
    for step in range(TRAIN.train_steps):
        stacked_a, stacked_b, held = engine.batch(torch.tensor([step]))
        assert not held.any()
        for i, stream in enumerate(streams):
            a, b = stream.sample(TRAIN.batch_size, *TRAIN.digits_at(step))
            assert torch.equal(stacked_a[i], a) and torch.equal(stacked_b[i], b), (SEEDS[i], step)


def test_the_counter_stream_is_its_documented_construction_and_the_same_alone_or_among_k():
    seeds = [7, 2**40 + 3, 0, 123456789]
    table = HoldoutTable([ONE_HOLDOUT] * len(seeds))
    for step, (lo, hi) in [(0, (1, 3)), (5, (10, 10)), (2**31 + 9, (1, 10))]:
        args = (torch.tensor([step]), 64, torch.tensor([lo]), torch.tensor([hi]))
        a, b, _ = draw_operands(seed_keys(seeds), *args, table)
        for i, seed in enumerate(seeds):
            alone_a, alone_b, _ = draw_operands(seed_keys([seed]), *args, HoldoutTable([ONE_HOLDOUT]))
            assert torch.equal(alone_a[0], a[i]) and torch.equal(alone_b[0], b[i])
            expected = [counter_oracle.example(seed, step, row, lo, hi, set()) for row in range(64)]
            assert list(zip(a[i].tolist(), b[i].tolist())) == expected
    digits = torch.tensor([len(str(x)) for x in CounterStream(1, ONE_HOLDOUT).sample_at(3, 4000, 10, 10)[0].tolist()])
    assert digits.max() == 10 and (digits == 10).float().mean() > 0.85  # A uniform in [0, 10^10)


def test_the_counter_stream_redraws_planted_holdout_pairs_exactly():
    planted = {(a, b) for a in range(10) for b in range(10) if (a + b) % 10}  # 90 of the 100 one-digit pairs
    seeds = [5, 6]
    holdouts = [torch.tensor(sorted(planted)), ONE_HOLDOUT]  # seed 5 holds them out, seed 6 does not
    args = (torch.tensor([2]), 256, torch.tensor([1]), torch.tensor([1]))
    a, b, held = draw_operands(seed_keys(seeds), *args, HoldoutTable(holdouts))
    assert not held.any()
    assert all(((x + y) % 10 == 0) for x, y in zip(a[0].tolist(), b[0].tolist()))
    assert list(zip(a[0].tolist(), b[0].tolist())) == [counter_oracle.example(5, 2, r, 1, 1, planted) for r in range(256)]
    free = list(zip(a[1].tolist(), b[1].tolist()))
    assert free == [counter_oracle.example(6, 2, r, 1, 1, set()) for r in range(256)]
    assert any(pair in planted for pair in free)  # the same draws for seed 6 would have been held out
    ga, gb, unresolved = draw_operands(seed_keys(seeds), *args, HoldoutTable(holdouts), redraws=1)  # graph mode
    done = ~unresolved
    assert unresolved[0].any() and not unresolved[1].any()
    assert torch.equal(ga[done], a[done]) and torch.equal(gb[done], b[done])


def test_one_seeds_loss_leaves_exactly_zero_gradient_on_the_others():
    layout = Layout.of(MODEL)
    flat = torch.nn.Parameter(stack_models(MODEL, SEEDS))
    full = encode(*(torch.randint(0, 10**10, (2, 4 * 8), generator=torch.Generator().manual_seed(1)))).view(4, 8, -1)
    losses = seed_losses(layout, flat, full[:, :, :-1], full[:, :, PROMPT_LEN:])
    (alone,) = torch.autograd.grad(losses[2], flat, retain_graph=True)
    assert torch.count_nonzero(alone[[0, 1, 3]]) == 0 and torch.count_nonzero(alone[2]) > 0
    (summed,) = torch.autograd.grad(losses.sum(), flat)
    assert torch.equal(summed[2], alone[2])  # the summed loss gives each seed its own gradient


def test_loss_traces_match_four_single_runs_with_the_counter_stream():
    runs = train_stacked(MODEL, TRAIN, SEEDS)
    for run in runs:
        single = train(MODEL, dataclasses.replace(TRAIN, seed=run.seed))
        stacked, alone = torch.tensor(run.loss_trace), torch.tensor(single.loss_trace)
        assert stacked.shape == alone.shape == (300,)
        assert torch.allclose(stacked[:1], alone[:1], rtol=1e-6, atol=0)  # same weights and batch: a few roundings
        assert torch.allclose(stacked, alone, rtol=1e-4, atol=0)  # rounding grown over 300 steps (seen: <= 1.4e-5)
        assert [m["step"] for m in run.history] == [m["step"] for m in single.history] == [0, 100, 200, 299]
        assert set(run.history[-1]) == set(single.history[-1])
        assert abs(run.history[-1]["val/token_accuracy"] - single.history[-1]["val/token_accuracy"]) < 0.02


def test_sliced_checkpoints_load_and_score_as_the_single_evaluator(tmp_path):
    calls = []
    runs = train_stacked(MODEL, SHORT, SEEDS[:2], tmp_path, report=lambda i, m, f: calls.append((i, m["step"], f)))
    assert calls[:2] == [(0, 0, None), (1, 0, None)] and calls[-1] == (1, 59, seed_folder(tmp_path, SEEDS[1]))
    for run in runs:
        best, last = load_checkpoint(run.checkpoint_dir / "best.pt"), load_checkpoint(run.checkpoint_dir / "last.pt")
        assert best.train_config == dataclasses.replace(SHORT, seed=run.seed) and best.step == run.best_step
        val, _ = build_holdout(run.seed, SHORT.val_size, SHORT.test_size)
        scored = score_pairs(best.model, val)
        at_best = next(m for m in run.history if m["step"] == run.best_step)
        assert (scored.exact_match, scored.token_accuracy) == (run.best_val_exact_match, at_best["val/token_accuracy"])
        final = score_pairs(last.model, val)
        assert (final.exact_match, final.token_accuracy) == (run.history[-1]["val/exact_match"],
                                                             run.history[-1]["val/token_accuracy"])
        assert torch.load(run.checkpoint_dir / "last.pt", weights_only=True)["loss_trace"].shape == (60,)


@pytest.mark.reference
def test_the_batched_evaluator_gives_the_published_per_seed_errors(reference_checkpoint):
    name, path = reference_checkpoint
    published = {"456p_s43": [0, 0], "512p": [2, 0]}[name]  # test seeds 41 and 100 (reference section 5)
    loaded = load_checkpoint(path)
    row = parameters_to_vector(loaded.model.parameters()).detach()
    pairs = torch.stack([build_holdout(seed)[1] for seed in (41, 100)])
    scores = stacked_scores(Layout.of(loaded.model_config), torch.stack([row, row]), pairs)
    assert [score.errors for score in scores] == published and scores[0].n == 10_000


def test_a_diverging_seed_fails_alone_and_the_others_go_on(tmp_path, monkeypatch):
    clean = train_stacked(MODEL, SHORT, SEEDS[:3])
    engine_run = StackedEngine.run

    def poisoned(self, stop):  # seed 1 gets an infinite weight before step 25
        if self.next_step <= 25 < stop:
            head = engine_run(self, 25)
            with torch.no_grad():
                self.flat[1, 0] = float("inf")
            return torch.cat([head, engine_run(self, stop)])
        return engine_run(self, stop)

    monkeypatch.setattr(StackedEngine, "run", poisoned)
    calls = []
    runs = train_stacked(MODEL, SHORT, SEEDS[:3], tmp_path, report=lambda i, m, f: calls.append((i, m, f)))
    seed_one = [(m, f) for i, m, f in calls if i == 1]
    assert [m["step"] for m, _ in seed_one] == [0, 10, 20, 30]  # reported once after diverging, then no more
    assert [m.get(DIVERGED_KEY) for m, _ in seed_one] == [None, None, None, 25] and seed_one[-1][1] is not None
    assert [m["step"] for i, m, _ in calls if i == 2][-1] == 59 and "test/exact_match" in calls[-1][1]
    assert runs[1].diverged_step == 25 and len(runs[1].loss_trace) == 26
    assert runs[1].loss_trace[:25] == clean[1].loss_trace[:25] and not torch.isfinite(torch.tensor(runs[1].loss_trace[25]))
    for i in (0, 2):  # bit-identical to the run without the diverging seed's failure
        assert runs[i].loss_trace == clean[i].loss_trace and runs[i].diverged_step is None
        assert _without_timing(runs[i].history) == _without_timing(clean[i].history)
    frozen = torch.load(seed_folder(tmp_path, SEEDS[1]) / "last.pt", weights_only=True)
    assert frozen["step"] == 30 and frozen["model_state"]["token_emb.weight"][0, 0] == float("inf")


def test_the_sync_free_step_that_cuda_graphs_capture_trains_as_the_eager_step():
    engines = [StackedEngine(MODEL, SHORT, SEEDS, mode) for mode in ("eager", "sync_free")]
    for stop in (1, 11, 21, 31, 41, 51, 60):
        traces = [engine.run(stop) for engine in engines]  # lr from a float32 device table vs from the host
        assert torch.allclose(traces[0], traces[1], rtol=1e-4, atol=0, equal_nan=True)
        if stop == 21:
            for engine in engines:
                with torch.no_grad():
                    engine.flat[2, 5] = float("nan")
            poisoned = [engine.flat[2].detach().clone() for engine in engines]
    assert [engine.diverged_step.tolist() for engine in engines] == [[-1, -1, 21, -1]] * 2
    for engine, row in zip(engines, poisoned):  # frozen where it diverged
        assert torch.equal(engine.flat[2].detach().nan_to_num(), row.nan_to_num())
    with pytest.raises(ValueError, match="step_mode='graph' needs a CUDA device, got device='cpu'"):
        StackedEngine(MODEL, SHORT, SEEDS, "graph")


class Interrupted(Exception):
    pass


def test_a_resumed_stacked_run_is_bit_identical_to_an_uninterrupted_one(tmp_path):
    whole = train_stacked(MODEL, SHORT, SEEDS[:2], tmp_path / "whole", checkpoint_interval=20)

    def stop_at_40(i, metrics, folder):
        if metrics["step"] == 40 and i == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_stacked(MODEL, SHORT, SEEDS[:2], tmp_path / "cut", report=stop_at_40, checkpoint_interval=20)
    assert torch.load(tmp_path / "cut" / "stacked_last.pt", weights_only=True)["step"] == 40
    calls, evaluations = [], []
    resumed = train_stacked(MODEL, SHORT, SEEDS[:2], tmp_path / "cut", checkpoint_interval=20,
                            resume_from=tmp_path / "cut", report=lambda i, m, f: calls.append((i, m["step"])),
                            report_evaluation=lambda step, entries, folder: evaluations.append(
                                (step, [(i, m["step"]) for i, m, _ in entries], folder)))
    assert calls == [(0, 50), (1, 50), (0, 59), (1, 59)]
    assert evaluations == [(50, [(0, 50), (1, 50)], None), (59, [(0, 59), (1, 59)], tmp_path / "cut")]
    for a, b in zip(whole, resumed):
        assert a.loss_trace == b.loss_trace and len(a.loss_trace) == 60
        assert _without_timing(a.history) == _without_timing(b.history)
        final_a = torch.load(a.checkpoint_dir / "last.pt", weights_only=True)["model_state"]
        final_b = torch.load(b.checkpoint_dir / "last.pt", weights_only=True)["model_state"]
        assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
    with pytest.raises(ValueError, match=r"other configs or seeds.*'seeds': \(\[11, 12\], \[11, 13\]\)"):
        train_stacked(MODEL, SHORT, (11, 13), tmp_path / "x", resume_from=tmp_path / "cut")


def test_a_seed_folder_continues_as_a_single_run(tmp_path):
    stacked = train_stacked(MODEL, SHORT, SEEDS[:2], tmp_path, max_steps=40)
    folder = stacked[1].checkpoint_dir
    alone = train(MODEL, dataclasses.replace(SHORT, seed=SEEDS[1]), folder, resume_from=folder)
    whole = train_stacked(MODEL, SHORT, SEEDS[:2])[1]
    assert alone.loss_trace[:40] == whole.loss_trace[:40]
    assert torch.allclose(torch.tensor(alone.loss_trace), torch.tensor(whole.loss_trace), rtol=1e-5, atol=0)


def test_the_counter_stream_single_run_resumes_bit_identically(tmp_path):
    whole = train(MODEL, SHORT, tmp_path / "whole")
    train(MODEL, SHORT, tmp_path / "cut", max_steps=30)
    resumed = train(MODEL, SHORT, tmp_path / "cut", resume_from=tmp_path / "cut")
    assert resumed.loss_trace == whole.loss_trace


def test_bad_inputs_are_refused_with_the_field_and_value():
    with pytest.raises(ValueError, match="stream='counter'.*got stream='default'"):
        train_stacked(MODEL, dataclasses.replace(SHORT, stream="default"), SEEDS)
    with pytest.raises(ValueError, match=r"distinct integers >= 0.*\[1, 1\]"):
        train_stacked(MODEL, SHORT, (1, 1))
    with pytest.raises(ValueError, match="compile=True"):
        train_stacked(MODEL, dataclasses.replace(SHORT, compile=True), SEEDS)
    with pytest.raises(ConfigError, match="stream='counter' needs mode='fast'.*mode='faithful'"):
        TrainConfig(stream="counter")
    with pytest.raises(ConfigError, match="stream must be 'default' or 'counter', got 'philox'"):
        TrainConfig(stream="philox", mode="fast")
    assert TrainConfig().stream == "default"


def test_the_benchmark_path_imports_only_torch_and_the_standard_library():
    import subprocess
    import sys
    from pathlib import Path

    root = next(p for p in Path(__file__).resolve().parents if (p / "benchmarks" / "seed_batching.py").is_file())
    code = ("import sys; sys.argv = ['seed_batching', '--help']; sys.path.insert(0, 'benchmarks'); import seed_batching; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'mlflow', 'optuna', 'tyro', 'pandas', "
            "'scipy', 'tokenizers', 'trainables'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['trainables']"
