"""Checkpoint and resume of the LM trainable: a resumed run ends bit-identical to one never stopped."""

from __future__ import annotations

import pytest
import torch

from trainables.lm.config import LMRun
from trainables.lm.data import prepare
from trainables.lm.train import MODEL_FILE, train

TINY = {"data": {"corpus": "stdlib", "max_bytes": 60_000},
        "tokenizer": {"vocab_size": 300},
        "model": {"d_model": 16, "n_layer": 1, "n_head": 2, "context_length": 16, "gate": "glu", "dropout": 0.1},
        "train": {"train_steps": 24, "eval_interval": 4, "warmup_steps": 2, "batch_size": 4, "eval_bytes": 1024,
                  "eval_pieces": 4},
        "generation": {"num_prompts": 2, "max_new_tokens": 6}}
RUN = LMRun.from_sections(TINY)


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return prepare(RUN, tmp_path_factory.mktemp("cache"))


def _without_timing(history):
    """The history minus wall-clock timings, as exact text (repr round-trips floats; nan == nan)."""
    return repr([{k: v for k, v in metrics.items() if not k.startswith("perf/")} for metrics in history])


def _interrupt_at(step):
    def report(metrics, folder):
        if metrics["step"] == step:
            raise Interrupted
    return report


def test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one(tmp_path, data):
    whole = train(RUN, tmp_path / "whole", data=data, checkpoint_interval=8)
    with pytest.raises(Interrupted):  # dies after the checkpoint at step 16, before step 17
        train(RUN, tmp_path / "cut", _interrupt_at(16), data=data, checkpoint_interval=8)
    assert torch.load(tmp_path / "cut" / MODEL_FILE, weights_only=True)["step"] == 16
    calls = []
    resumed = train(RUN, tmp_path / "cut", lambda metrics, folder: calls.append((metrics["step"], folder)),
                    data=data, checkpoint_interval=8, resume_from=tmp_path / "cut")
    assert calls == [(20, None), (23, tmp_path / "cut")]  # only the steps after the checkpoint are trained again
    assert [m["step"] for m in resumed.history] == [0, 4, 8, 12, 16, 20, 23]
    assert _without_timing(resumed.history) == _without_timing(whole.history)  # losses, bits per byte, audits
    assert resumed.completions == whole.completions and resumed.flags == whole.flags
    final_whole = torch.load(tmp_path / "whole" / MODEL_FILE, weights_only=True)
    final_resumed = torch.load(tmp_path / "cut" / MODEL_FILE, weights_only=True)
    assert final_whole["model_state"].keys() == final_resumed["model_state"].keys()
    for name, tensor in final_whole["model_state"].items():
        assert torch.equal(tensor, final_resumed["model_state"][name]), name
    assert {p.name for p in (tmp_path / "cut").iterdir()} == {"model.pt", "tokenizer.json", "completions.json",
                                                               "run.json"}


def test_without_restoring_the_global_rng_dropout_would_diverge(tmp_path, data, monkeypatch):
    """Guards the test above: with dropout the global RNG state is what makes the resume exact."""
    whole = train(RUN, data=data)
    with pytest.raises(Interrupted):
        train(RUN, tmp_path, _interrupt_at(8), data=data, checkpoint_interval=8)
    import trainables.lm.train as lm_train
    monkeypatch.setattr(lm_train, "set_rng_state", lambda resume, device: None)
    resumed = train(RUN, tmp_path, data=data, resume_from=tmp_path)
    assert [m["train/loss"] for m in resumed.history[:3]] == [m["train/loss"] for m in whole.history[:3]]
    assert [m["train/loss"] for m in resumed.history[3:]] != [m["train/loss"] for m in whole.history[3:]]


def test_checkpoints_are_written_every_interval_and_reported_with_their_folder(tmp_path, data):
    calls, steps = [], []

    def report(metrics, folder):
        calls.append((metrics["step"], folder))
        if folder is not None:
            steps.append(torch.load(folder / MODEL_FILE, weights_only=True)["step"])
    train(RUN, tmp_path, report, data=data, checkpoint_interval=8)
    assert calls == [(0, tmp_path), (4, None), (8, tmp_path), (12, None), (16, tmp_path), (20, None), (23, tmp_path)]
    assert steps == [0, 8, 16, 23]
    final = torch.load(tmp_path / MODEL_FILE, weights_only=True)["resume"]
    assert "optimizer_state" not in final and [m["step"] for m in final["history"]][-1] == 23
    calls.clear()
    train(RUN, tmp_path / "end", report, data=data)  # 0: only after the last step
    assert calls == [(s, None) for s in (0, 4, 8, 12, 16, 20)] + [(23, tmp_path / "end")]


def test_resuming_from_a_final_checkpoint_reports_the_final_result_again(tmp_path, data):
    whole = train(RUN, tmp_path, data=data)
    calls = []
    again = train(RUN, tmp_path / "copy", lambda m, folder: calls.append((m, folder)), data=data,
                  resume_from=tmp_path)
    assert [(m["step"], folder) for m, folder in calls] == [(23, tmp_path / "copy")]
    assert calls[0][0]["val/bits_per_byte"] == whole.final["val/bits_per_byte"]
    assert repr(again.history) == repr(whole.history) and again.completions == whole.completions
    assert {p.name for p in (tmp_path / "copy").iterdir()} == {p.name for p in tmp_path.iterdir() if p.is_file()}


def test_resuming_with_other_configs_names_the_difference(tmp_path):
    # a missing corpus: these errors come before any data is prepared
    run = LMRun.from_sections({**TINY, "data": {"corpus": "/nonexistent/corpus.txt"}})
    tmp_path.mkdir(exist_ok=True)
    torch.save({"run": run.to_sections(), "resume": {}}, tmp_path / MODEL_FILE)
    other = LMRun.from_sections({**TINY, "data": {"corpus": "/nonexistent/corpus.txt"}}, train={"lr": 0.01})
    with pytest.raises(ValueError, match=r"other configs.*'train\.lr': \(0\.003, 0\.01\)"):
        train(other, tmp_path, resume_from=tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(run, tmp_path / "empty", resume_from=tmp_path / "empty")


def test_resuming_on_other_data_is_refused(tmp_path, data):
    with pytest.raises(Interrupted):
        train(RUN, tmp_path, _interrupt_at(0), data=data, checkpoint_interval=4)
    saved = torch.load(tmp_path / MODEL_FILE, weights_only=True)
    saved["data"]["data/train_sha256"] = "0" * 64
    torch.save(saved, tmp_path / MODEL_FILE)
    with pytest.raises(ValueError, match="trained on other data"):
        train(RUN, tmp_path, data=data, resume_from=tmp_path)


@pytest.mark.parametrize("interval, out, match", [(6, "out", "multiple of eval_interval"),
                                                  (-4, "out", "non-negative"),
                                                  (4, None, "checkpoints need a folder")])
def test_bad_checkpoint_interval_is_refused_before_any_work(tmp_path, interval, out, match):
    # the missing corpus would raise FileNotFoundError if any data were prepared first
    run = LMRun.from_sections({**TINY, "data": {"corpus": "/nonexistent/corpus.txt"}})
    with pytest.raises(ValueError, match=match):
        train(run, tmp_path / out if out else None, checkpoint_interval=interval)
    assert not list(tmp_path.iterdir())


class _Checkpoint:
    """Stands in for ``ray.tune.Checkpoint``: a folder, copied when reported (as Tune persists it)."""

    def __init__(self, path):
        self.path = path

    @classmethod
    def from_directory(cls, path):
        return cls(path)

    def as_directory(self):
        from contextlib import nullcontext
        return nullcontext(self.path)


def test_run_lm_hands_over_checkpoints_and_a_retried_trial_resumes_from_the_latest(tmp_path, monkeypatch):
    import shutil

    from trainables.lm.tokenizer import CACHE_ENV
    from tune_jobs.runtime.searcher import OBJECTIVE
    from tune_jobs.runtime.trial import TrialContext
    from tune_jobs.trials.lm import body

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    config = {**TINY, "seed": 0, "run": {"checkpoint_interval": 5}}  # rounded up to 8
    stored = []

    def report_to(result, checkpoint=None):
        if checkpoint is not None:  # persist it like Tune, then die once after the checkpoint at step 16
            stored.append(shutil.copytree(checkpoint.path, tmp_path / f"stored{len(stored)}"))
        if result["step"] == 16 and not resumed:
            raise Interrupted
        results.append(result)

    results, resumed = [], False
    body(config, TrialContext(lambda result, checkpoint=None: results.append(result), lambda: None, _Checkpoint))
    whole, results = results, []
    with pytest.raises(Interrupted):
        body(config, TrialContext(report_to, lambda: None, _Checkpoint))
    assert [torch.load(folder / MODEL_FILE, weights_only=True)["step"] for folder in stored] == [0, 8, 16]
    resumed = True
    body(config, TrialContext(report_to, lambda: _Checkpoint(stored[-1]), _Checkpoint))
    assert [r["step"] for r in results] == [0, 4, 8, 12, 20, 23]
    assert all(r["resumed_from_step"] == 16.0 for r in results[4:])
    assert results[-1]["val/bits_per_byte"] == whole[-1]["val/bits_per_byte"]
    assert results[-1][OBJECTIVE] == whole[-1][OBJECTIVE]
    assert {p.name for p in stored[-1].iterdir()} == {"model.pt", "tokenizer.json", "completions.json", "run.json"}
