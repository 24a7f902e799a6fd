"""The shared resume checks: a missing checkpoint, one written with other configs (each difference
named as (saved, now)) and one without resume state are refused before any work."""

import pytest
import torch

from trainables.loop import config_diff, load_resumable, resumed_at_end


def _flat(payload):
    return payload["config"]


def test_config_diff_names_every_difference_on_either_side():
    assert config_diff({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 5, "d": 4}) == {
        "b": (2, 5), "c": (3, None), "d": (None, 4)}
    assert config_diff({"a": (1, 2)}, {"a": (1, 2)}) == {}


def test_load_resumable_refuses_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"resume_from: no checkpoint at .*last\.pt"):
        load_resumable(tmp_path / "last.pt", {}, _flat)


def test_load_resumable_refuses_other_configs_and_names_them(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"config": {"lr": 0.02, "seed": 1}, "resume": {}}, path)
    with pytest.raises(ValueError, match=r"other configs \(saved, now\): \{'lr': \(0\.02, 0\.03\)\}"):
        load_resumable(path, {"lr": 0.03, "seed": 1}, _flat)
    with pytest.raises(ValueError, match=r"other configs or seeds"):
        load_resumable(path, {"lr": 0.03, "seed": 1}, _flat, what="configs or seeds")
    assert load_resumable(path, {"lr": 0.02, "seed": 1}, _flat)["config"]["lr"] == 0.02


def test_load_resumable_refuses_a_checkpoint_without_resume_state(tmp_path):
    path = tmp_path / "best.pt"
    torch.save({"config": {"lr": 0.02}}, path)
    with pytest.raises(ValueError, match="holds no resume state"):
        load_resumable(path, {"lr": 0.02}, _flat)
    assert load_resumable(path, {"lr": 0.02}, _flat, state_key="config")["config"] == {"lr": 0.02}


def test_only_a_resumed_run_with_nothing_left_reports_again():
    assert resumed_at_end("folder", 60, 60)
    assert not resumed_at_end("folder", 40, 60)
    assert not resumed_at_end(None, 0, 0)
