"""`make sweep-command JOB=<file.toml>`: sweep another repository's training command like any trainable.

    python -m tune_jobs.sweep_command --job command_jobs/example_fake_repo.toml --num-configs 2

The job file (``trainables.command.spec``) gives the command, how its metrics are read, and a
``[search]`` table (seeds and placeholder dimensions). Each trial runs the command once; it is
judged like an addition trial: a seed succeeds when its best ``val/exact_match`` reaches the
threshold. A command that fails or times out ends its trial FAILED with the tail of its output,
and the sweep goes on.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import tyro

from mlflow_utils import TrackingError
from search_spaces import SearchSpace, SearchSpaceError, space_from_table, validate
from trainables.command import CommandSpec, CommandSpecError, load_command_spec, render_command
from tune_jobs.sweep import SweepSettings, run_sweep


@dataclass(frozen=True, kw_only=True)
class SweepCommandArgs(SweepSettings):
    """A command job file and the sweep's budgets."""

    job: Path = field()
    """Job file (TOML) with command, metrics, checkpoints and [search]."""
    seeds: Optional[int] = None
    """Seed replicates per configuration (the job's first N, extended by consecutive integers)."""
    experiment: str = "command-sweep"
    """MLflow experiment name."""


def job_space(spec: CommandSpec, seeds: Optional[int] = None) -> SearchSpace:
    """The job's [search] table as a validated one-section space ('params').

    Raises:
        SearchSpaceError: no [search] table, malformed dimension, or a point the command cannot render.
    """
    if not spec.search:
        raise SearchSpaceError(f"job {spec.name!r} has no [search] table (seeds and dimensions)")
    space = space_from_table(spec.name, f"command job {spec.name}", spec.search, "params")
    if seeds is not None:
        space = space.with_seed_count(seeds)

    def renders(**params: Any) -> None:
        try:
            render_command(spec, {**params, "seed": space.seeds[0]}, Path(tempfile.gettempdir()), "check")
        except KeyError as error:
            raise ValueError(str(error).strip("'\"")) from error

    validate(space, {"params": renders})
    return space


def run_command_sweep(args: SweepCommandArgs) -> pd.DataFrame:
    """Validate the job, run its sweep, return the verdict table.

    Raises:
        CommandSpecError, SearchSpaceError: bad job file (nothing started).
        TrackingError: MLflow unreachable (nothing run).
    """
    from tune_jobs.command_trial import command_trial

    spec = load_command_spec(args.job)
    space = job_space(spec, args.seeds)
    columns = tuple(f"params.{name.split('.', 1)[1]}" for name in space.dimensions())
    return run_sweep(args, space, command_trial, f"command-{spec.name}", constants={"job": str(Path(args.job).resolve()), "threads": args.threads}, columns=columns)


def main(argv: list[str] | None = None) -> int:
    try:
        table = run_command_sweep(tyro.cli(SweepCommandArgs, args=argv))
    except (CommandSpecError, SearchSpaceError, TrackingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if not table.empty else 1


if __name__ == "__main__":
    sys.exit(main())
