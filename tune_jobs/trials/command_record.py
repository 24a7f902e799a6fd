"""The command trial's resolved run as it reports it (``runtime.run_record``): the argument list, the job file."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping

from trainables.command import render_command
from trainables.command.spec import CommandSpec
from tune_jobs.runtime.run_record import resolved_report

OUT_DIR = Path("{out_dir}")
"""Stands for the run's temporary output folder in the recorded argument list."""


def command_params(config: Mapping[str, Any], spec: CommandSpec, seed: int, run_name: str) -> dict[str, str]:
    """``param/command.argv`` (the rendered argument list, JSON, its output folder written ``{out_dir}``)
    and ``param/command.job_sha256`` (the job file's sha256); the job's own fields are the trial
    config's ``command.*`` and ``params.*`` params."""
    argv = render_command(spec, {**config.get("params", {}), "seed": seed}, OUT_DIR, run_name)
    checksum = hashlib.sha256(Path(config["command"]["job"]).read_bytes()).hexdigest()
    return resolved_report({}, {"command.argv": argv, "command.job_sha256": checksum})
