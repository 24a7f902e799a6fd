"""Checkpoint and resume of the addition trainable: a resumed run ends bit-identical to one never stopped."""

import pytest
import torch

from trainables.addition.config import ModelConfig, TrainConfig
from trainables.addition.train import train

MODEL = ModelConfig(d_model=6, d_ff=12)
TRAIN = TrainConfig(seed=5, train_steps=60, warmup_steps=5, eval_interval=10, val_size=64, test_size=64,
                    batch_size=32, mode="fast")


class Interrupted(Exception):
    pass


def _without_timing(history):
    return [{k: v for k, v in metrics.items() if not k.startswith("perf/")} for metrics in history]


def _interrupt_at(step):
    def report(metrics, folder):
        if metrics["step"] == step:
            raise Interrupted
    return report


@pytest.mark.parametrize("mode, compile", [("fast", False), ("faithful", False), ("fast", True)])
def test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one(tmp_path, mode, compile):
    """Fast with compile: the whole step compiled (trainables/addition/compiled_step.py), compiled again
    after the resume."""
    cfg = TrainConfig(**{**TRAIN.__dict__, "mode": mode, "compile": compile})
    whole = train(MODEL, cfg, tmp_path / "whole", checkpoint_interval=20)
    with pytest.raises(Interrupted):  # dies after the checkpoint at step 40, before step 41
        train(MODEL, cfg, tmp_path / "cut", checkpoint_interval=20, report=_interrupt_at(40))
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["step"] == 40
    calls = []
    resumed = train(MODEL, cfg, tmp_path / "cut", checkpoint_interval=20, resume_from=tmp_path / "cut",
                    report=lambda metrics, folder: calls.append((metrics["step"], folder)))
    assert [step for step, _ in calls] == [50, 59]  # only the steps after the checkpoint are trained again
    assert resumed.loss_trace == whole.loss_trace and len(resumed.loss_trace) == 60
    assert _without_timing(resumed.history) == _without_timing(whole.history)
    final_whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    final_resumed = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    for name, tensor in final_whole["model_state"].items():
        assert torch.equal(tensor, final_resumed["model_state"][name]), name
    assert torch.equal(final_whole["data_generator_state"], final_resumed["data_generator_state"])


def test_checkpoints_are_written_every_interval_and_reported_with_their_folder(tmp_path):
    calls = []
    train(MODEL, TRAIN, tmp_path, checkpoint_interval=20, report=lambda m, folder: calls.append((m["step"], folder)))
    assert calls == [(0, tmp_path), (10, None), (20, tmp_path), (30, None), (40, tmp_path), (50, None), (59, tmp_path)]


def test_resuming_from_a_final_checkpoint_reports_the_final_result_again(tmp_path):
    whole = train(MODEL, TRAIN, tmp_path)
    calls = []
    again = train(MODEL, TRAIN, tmp_path, resume_from=tmp_path, report=lambda m, folder: calls.append(m))
    assert [m["step"] for m in calls] == [59] and calls[0]["test/exact_match"] == whole.test_exact_match
    assert again.loss_trace == whole.loss_trace


def test_resuming_with_other_configs_names_the_difference(tmp_path):
    train(MODEL, TRAIN, tmp_path)
    other = TrainConfig(**{**TRAIN.__dict__, "lr": 0.03})
    with pytest.raises(ValueError, match=r"other configs.*'lr': \(0\.02, 0\.03\)"):
        train(MODEL, other, tmp_path, resume_from=tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(MODEL, TRAIN, tmp_path / "empty", resume_from=tmp_path / "empty")


@pytest.mark.parametrize("interval, match", [(15, "multiple of eval_interval"), (-10, "non-negative")])
def test_bad_checkpoint_interval_is_refused_before_training(tmp_path, interval, match):
    with pytest.raises(ValueError, match=match):
        train(MODEL, TRAIN, tmp_path, checkpoint_interval=interval)
    assert not list(tmp_path.iterdir())


def test_the_command_line_checkpoints_and_resumes(tmp_path, capsys):
    import json

    from trainables.addition.__main__ import main

    argv = ["train", "--model.d-model", "6", "--model.d-ff", "12", "--train.seed", "5", "--train.train-steps", "30",
            "--train.eval-interval", "10", "--train.warmup-steps", "5", "--train.val-size", "64",
            "--train.test-size", "64", "--train.batch-size", "32", "--train.mode", "fast", "--out-dir", str(tmp_path),
            "--checkpoint-interval", "10"]
    assert main(argv) == 0
    first = capsys.readouterr().out.splitlines()
    assert main([*argv, "--resume"]) == 0  # the run is complete: only its final result is printed again
    again = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["step"] for line in again[:-1]] == [29] and again[-1] == first[-1]
    assert main(argv[:-4] + ["--resume"]) == 2
    assert "--resume needs --out-dir" in capsys.readouterr().err
    assert main([*argv[:-1], "15"]) == 2
    assert "multiple of eval_interval" in capsys.readouterr().err


def test_a_stop_rule_ends_the_run_at_that_evaluation_and_its_resume_trains_nothing_more(tmp_path):
    """``stop``: the evaluation it accepts is the run's last (test score, last.pt at that step, the
    schedule unchanged), the trace up to it is the unstopped run's, and a resume of it trains nothing."""
    whole = train(MODEL, TRAIN, tmp_path / "whole")
    at_30 = lambda history: history[-1]["step"] >= 30  # noqa: E731
    stopped = train(MODEL, TRAIN, tmp_path / "stop", stop=at_30)
    assert [m["step"] for m in stopped.history] == [0, 10, 20, 30]
    assert "test/exact_match" in stopped.history[-1] and "test/exact_match" not in stopped.history[-2]
    assert stopped.loss_trace == whole.loss_trace[:31]
    assert _without_timing(stopped.history[:-1]) == _without_timing(whole.history[:3])
    assert stopped.history[-1]["lr"] == TRAIN.lr_at(30)  # the 60-step cosine, not one over 31 steps
    assert torch.load(tmp_path / "stop" / "last.pt", weights_only=True)["step"] == 30
    calls = []
    again = train(MODEL, TRAIN, tmp_path / "stop", resume_from=tmp_path / "stop", stop=at_30,
                  report=lambda metrics, folder: calls.append(metrics["step"]))
    assert calls == [30] and again.loss_trace == stopped.loss_trace  # the final result goes out again, nothing trained


def test_stop_when_solved_needs_the_threshold_at_that_many_evaluations_in_a_row():
    from trainables.addition.train import stop_when_solved

    rule = stop_when_solved(0.99, 2)
    history = [{"val/exact_match": v} for v in (0.0, 0.995, 0.98, 0.99)]
    assert [rule(history[:n]) for n in range(1, 5)] == [False, False, False, False]
    assert rule([*history, {"val/exact_match": 1.0}])
    assert stop_when_solved(0.5, 1)([{"val/exact_match": 0.5}])
    for threshold, evaluations, message in ((0.99, 0, "evaluations must be an integer >= 1, got 0"),
                                            (1.5, 2, r"threshold must be in \(0, 1\], got 1.5")):
        with pytest.raises(ValueError, match=message):
            stop_when_solved(threshold, evaluations)
