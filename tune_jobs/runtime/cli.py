"""The command line of every job: arguments from a settings dataclass, user errors as one line and exit 2."""

from __future__ import annotations

import shlex
import signal
import sys
from typing import Any, Callable, Sequence, TypeVar

import tyro

from mlflow_utils import TrackingError
from trainables.checks import ConfigError
from tune_jobs.runtime.ray_session import sigterm_as_sigint
from tune_jobs.runtime.settings import checked, checks_deferred

Args = TypeVar("Args")

USER_ERRORS = (ConfigError, TrackingError, ConnectionError)
"""Errors that mean the input (arguments, files, addresses) is wrong, not the code: a message, exit 2."""


INTERRUPTED_EXIT = 130
"""Exit status of a job stopped by Ctrl-C or SIGTERM (128 + SIGINT, the shell's convention)."""


def resume_command(name: str, argv: Sequence[str] | None = None) -> str:
    """The command line that resumes job ``name``: this process's module (``python -m``) and arguments
    (``argv``, default ``sys.argv[1:]``) with ``--name name --resume`` in place of any given, quoted for a
    POSIX shell (``shlex.join``), so that the resume starts with the settings the job started with
    (``runtime.job_settings`` refuses others)."""
    args, skip = [], False
    for arg in sys.argv[1:] if argv is None else argv:
        if skip:
            skip = False
        elif arg == "--name":
            skip = True
        elif arg != "--resume" and not arg.startswith("--name="):
            args.append(arg)
    main = sys.modules.get("__main__")
    module = getattr(getattr(main, "__spec__", None), "name", None)
    program = ["python", "-m", module] if module else ["python", sys.argv[0]]
    return shlex.join([*program, *args, "--name", name, "--resume"])


def run_main(args_type: type[Args], job: Callable[[Args], Any], argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` into ``args_type`` (tyro: every field a flag, its docstring the help) and run ``job``.

    SIGTERM is handled as Ctrl-C: Tune stops the trials, keeps their state for ``--resume``, and the
    job's runs end KILLED (a second signal stops at once; what is logged stays).

    Returns:
        0 when the job returned a result that is not empty, 1 when it returned an empty one (no trial
        reported anything) or a verdict table in which no seed finished (every trial failed: the
        reasons are printed above it), 2 on a user error (the message goes to stderr, naming what was
        wrong), 130 when interrupted (the message says how to resume).
    """
    previous = sigterm_as_sigint()
    try:
        with checks_deferred():  # tyro would print its own box for a check's error: ours is one line
            args = tyro.cli(args_type, args=list(argv) if argv is not None else None)
        outcome = job(checked(args))
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:
        print(f"interrupted: {error or 'stopped before any trial was recorded'}", file=sys.stderr)
        name = getattr(error, "job_name", None)
        if name:
            print(f"  the same job from the shell: {resume_command(name, argv)}", file=sys.stderr)
        return INTERRUPTED_EXIT
    finally:
        signal.signal(signal.SIGTERM, previous)
    empty = getattr(outcome, "empty", None)
    if empty is True or outcome is None:
        return 1
    if "seeds_run" in getattr(outcome, "columns", ()) and not outcome["seeds_run"].sum():
        print("error: every trial failed, so nothing was judged; each one's reason is listed above", file=sys.stderr)
        return 1
    return 0
