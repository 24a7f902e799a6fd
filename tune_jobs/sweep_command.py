"""`make sweep-command JOB=<file.toml>`: sweep another repository's training command like any trainable.

    python -m tune_jobs.sweep_command --job command_jobs/reference_repo.toml --num-configs 2

Arguments -> space (the job file's ``[search]`` table, section ``params``, with the ``--set``
overrides) -> the command trial (``trials.command``) -> ``runtime.job.run_sweep``. Each trial runs
the command once; it is judged like an addition trial: a seed succeeds when its best
``val/exact_match`` reaches the threshold. A command that fails or times out ends its trial FAILED
with the tail of its output, and the sweep goes on. No data-parallel version (``--workers`` > 1 is refused).
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from search_spaces import SearchSpace, SearchSpaceError, space_from_table, validate, with_sets
from search_spaces.seeds import with_seed_option
from trainables.command import CommandSpec, load_command_spec, render_command
from tune_jobs.runtime.cli import run_main
from tune_jobs.runtime.job import run_sweep
from tune_jobs.runtime.settings import SweepSettings
from tune_jobs.trials.command import COMMAND, params_name


@dataclass(frozen=True, kw_only=True)
class SweepCommandArgs(SweepSettings):
    """A command job file and the sweep's budgets."""

    job: Path = field()
    """Job file (TOML) with command, metrics, checkpoints and [search]."""
    set: tuple[str, ...] = ()
    """Fix or re-range placeholders of the job's [search]: params.name=value (a TOML value); repeatable."""
    experiment: str = "command-sweep"
    """MLflow experiment name."""


def job_space(spec: CommandSpec, args: SweepCommandArgs) -> SearchSpace:
    """The job's [search] table as a validated two-section space: ``command`` (the job file and the
    thread count, constants) and ``params`` (the placeholders).

    Raises:
        SearchSpaceError: no [search] table, malformed dimension, or a point the command cannot render.
    """
    if not spec.search:
        raise SearchSpaceError(f"job {spec.name!r} has no [search] table (seeds and dimensions)")
    space = space_from_table(spec.name, f"command job {spec.name}", spec.search, "params")
    space = with_sets(space, args.set, {"params": _renders(spec, space)})
    space = with_seed_option(space, args.seed_option())
    space = space.with_overrides(command={"job": str(Path(args.job).resolve()), "threads": args.threads})
    validate(space, {"params": _renders(spec, space), "command": lambda **fields: None})
    return space


def _renders(spec: CommandSpec, space: SearchSpace) -> Any:
    def renders(**params: Any) -> None:
        try:
            render_command(spec, {**params, "seed": space.seeds[0]}, Path(tempfile.gettempdir()), "check")
        except KeyError as error:
            raise ValueError(str(error).strip("'\"")) from error
    return renders


def run_command_sweep(args: SweepCommandArgs) -> pd.DataFrame:
    """Validate the job, run its sweep, return the verdict table.

    Raises:
        CommandSpecError, SearchSpaceError: bad job file (nothing started).
        TrackingError: MLflow unreachable (nothing run).
    """
    spec = load_command_spec(args.job)
    space = job_space(spec, args)
    searched = [name.split(".", 1)[1] for name in space.dimensions()]
    trial = dataclasses.replace(COMMAND.with_columns(tuple(f"params/{key}" for key in searched)),
                                readable_name=params_name(searched))
    return run_sweep(args, space, trial, "sweep-command", f"command-{spec.name}-{space.name}")


def main(argv: list[str] | None = None) -> int:
    return run_main(SweepCommandArgs, run_command_sweep, argv)


if __name__ == "__main__":
    sys.exit(main())
