""".pt files from outside: a truncated, corrupt or malicious file is a message naming it, and never runs code."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from trainables.addition.checkpoint import load_checkpoint
from trainables.torch_checks import CheckpointError, read_torch_file


class _Payload:
    """A pickle that would create a file when unpickled without weights_only."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_bad_files_are_refused_naming_the_file_and_nothing_runs(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"step": 3, "weights": torch.ones(2)}, good)
    (tmp_path / "truncated.pt").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    (tmp_path / "random.pt").write_bytes(bytes(range(256)) * 8)
    marker = tmp_path / "code-ran"
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"model_config": _Payload(marker)}))
    torch.save([1, 2], tmp_path / "list.pt")
    assert read_torch_file(good)["step"] == 3
    for name, reason in (("truncated.pt", r"PytorchStreamReader failed reading zip archive"),
                         ("random.pt", r"refused by weights_only=True: Unsupported operand"),
                         ("evil.pt", r"refused by weights_only=True")):
        path = tmp_path / name
        with pytest.raises(CheckpointError, match=rf"^checkpoint {path} cannot be loaded \({reason}.*\): the file is "
                                                  r"truncated, corrupt"):
            read_torch_file(path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="holds a list, not a checkpoint dict"):
        read_torch_file(tmp_path / "list.pt")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        read_torch_file(tmp_path / "absent.pt")


def test_a_dict_that_is_no_addition_checkpoint_names_what_is_missing(tmp_path):
    torch.save({"step": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"other.pt has no 'model_config': it is not an addition checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"model_config": {"d_model": 8, "d_ff": 28}, "model_state": {"nope": torch.zeros(1)}},
               tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match=r"mismatch.pt does not rebuild a model: Error\(s\) in loading state_dict"):
        load_checkpoint(tmp_path / "mismatch.pt")
