"""Every job refuses bad input before Ray starts: exit 2 and one line naming what was wrong."""

from __future__ import annotations

import re

import pytest
import ray

from tune_jobs import crosslingual, reproduce, sweep_addition, sweep_command, sweep_vocab

JOB = "command_jobs/reference_repo.toml"


@pytest.mark.parametrize("main, argv, message", [
    (sweep_addition.main, ["--space", "nope"], "search space 'nope' not found"),
    (sweep_addition.main, ["--set", "train.lr=-1"], "--set train.lr=-1: .*lr must be > 0, got -1"),
    (sweep_addition.main, ["--set", "model.qkv_rank=16"], "qkv_rank=16 must be smaller than d_model=7"),
    (sweep_addition.main, ["--threads", "0"], "threads has an impossible value: 0"),
    (sweep_addition.main, ["--name", "../../x"], "name '../../x' must be letters, digits"),
    (sweep_addition.main, ["--gpus-per-trial", "nan"], "gpus_per_trial must be a finite number, got nan"),
    (sweep_vocab.main, ["--set", "tokenizer.vocab_size=3"], "--set tokenizer.vocab_size=3: .*vocab_size"),
    (sweep_command.main, ["--job", JOB, "--workers", "2"], "workers=2: the command trial has no data-parallel version"),
    (reproduce.main, ["--claim", "nope"], "claim 'nope' not found"),
    (reproduce.main, ["--claim", "512p-s42", "--command-job", JOB, "--workers", "2"],
     "workers=2: the command trial has no data-parallel version"),
    (crosslingual.main, ["--lr", "0"], "lr has an impossible value: 0"),
])
def test_bad_input_is_one_line_and_exit_2_before_ray_starts(main, argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("REFERENCE_REPO", str(tmp_path))
    assert main(argv + ["--tracking-uri", f"sqlite:///{tmp_path / 'mlruns.db'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert re.search(message, err), err
    assert not ray.is_initialized()
    assert not (tmp_path / "mlruns.db").exists()
