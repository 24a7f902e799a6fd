"""The command line of every job: arguments from a settings dataclass, user errors as one line and exit 2."""

from __future__ import annotations

import sys
from typing import Any, Callable, Sequence, TypeVar

import tyro

from mlflow_utils import TrackingError
from trainables.checks import ConfigError
from tune_jobs.runtime.settings import checked, checks_deferred

Args = TypeVar("Args")

USER_ERRORS = (ConfigError, TrackingError, ConnectionError)
"""Errors that mean the input (arguments, files, addresses) is wrong, not the code: a message, exit 2."""


def run_main(args_type: type[Args], job: Callable[[Args], Any], argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` into ``args_type`` (tyro: every field a flag, its docstring the help) and run ``job``.

    Returns:
        0 when the job returned a result that is not empty, 1 when it returned an empty one (no trial
        reported anything), 2 on a user error (the message goes to stderr, naming what was wrong).
    """
    try:
        with checks_deferred():  # tyro would print its own box for a check's error: ours is one line
            args = tyro.cli(args_type, args=list(argv) if argv is not None else None)
        outcome = job(checked(args))
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    empty = getattr(outcome, "empty", None)
    return 1 if empty is True or outcome is None else 0
