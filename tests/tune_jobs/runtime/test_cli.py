"""Exit statuses of every job's command line."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from trainables.checks import ConfigError
from tune_jobs.runtime.cli import run_main


@dataclass(frozen=True)
class Args:
    """A job without settings."""

    x: int = 0

    def check(self) -> None:
        """Nothing to check."""


@pytest.mark.parametrize("outcome, status, error", [
    (pd.DataFrame({"config_id": ["a", "b"], "seeds_run": [1, 0]}), 0, ""),
    (pd.DataFrame({"config_id": ["a", "b"], "seeds_run": [0, 0], "errored": [3, 3]}), 1,
     "error: every trial failed, so nothing was judged; each one's reason is listed above\n"),
    (pd.DataFrame(), 1, ""),
    (None, 1, ""),
])
def test_a_sweep_in_which_no_seed_finished_exits_1(outcome, status, error, capsys):
    assert run_main(Args, lambda args: outcome, []) == status
    assert capsys.readouterr().err == error


def test_a_user_error_is_one_line_and_exit_2(capsys):
    def job(args):
        raise ConfigError("x must be 1, got 0")
    assert run_main(Args, job, []) == 2
    assert capsys.readouterr().err == "error: x must be 1, got 0\n"


def test_an_interrupted_job_prints_the_command_that_resumes_it_with_its_own_settings(capsys):
    from tune_jobs.runtime.job import Interrupted

    def job(args):
        raise Interrupted("2 trial(s) of seq were cut short", "seq")

    assert run_main(Args, job, ["--x", "3"]) == 130
    err = capsys.readouterr().err
    assert "interrupted: 2 trial(s) of seq were cut short" in err
    line = err.splitlines()[-1]
    assert line.startswith("  the same job from the shell: python ") and line.endswith(" --x 3 --name seq --resume")


def test_the_resume_command_quotes_each_argument_for_the_shell():
    from tune_jobs.runtime.cli import resume_command

    command = resume_command("a b", ["--set", "train.lr={loguniform=[0.005,0.03]}", "--name=x", "--resume",
                                      "--name", "y"])
    assert command.endswith("--set 'train.lr={loguniform=[0.005,0.03]}' --name 'a b' --resume")
