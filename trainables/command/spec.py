"""A job file that wraps another repository's training command (TOML), and its validation.

    name = "reference-512p"
    workdir = "${REFERENCE_REPO}"            # environment variables expand; relative to the job file
    command = "{python} -m src.train --seed {seed} --lr {lr} --run-dir {out_dir}"
    timeout_s = 3600

    [metrics]
    file = "{out_dir}/metrics.csv"           # CSV with a header, or JSON lines (.jsonl / .json)
    # regex = 'step=(?P<step>\\d+) loss=(?P<train_loss>[0-9.]+)'   # or: named groups on the output
    step = "step"                            # the step column / group
    names = { train_loss = "train/loss", val_exact = "val/exact_match" }

    [checkpoints]
    dir = "{out_dir}/checkpoints"

    [params]                                 # default values of the placeholders
    lr = 0.02

    [flags]                                  # booleans that render as a flag or as nothing
    use_rmsnorm = "--use-rmsnorm"

    free_text = ["note"]                     # optional: params whose values may hold any text

    [search]                                 # for make sweep-command: seeds are replicates
    seeds = [0, 1, 2]
    lr = { loguniform = [0.005, 0.03] }

Placeholders: ``{python}`` (this interpreter), ``{out_dir}`` (a fresh folder per run),
``{run_name}`` (``<config id>-seed<n>`` under a sweep), ``{seed}``, and any parameter of the run.

No shell runs the command, and no value is ever parsed by one (``trainables.command.template``): the
template is split into arguments once, before any value is filled in; a placeholder is a whole
argument (its value is exactly one argument, whatever characters it holds) or a literal part of
one (``--tag={tag}``); a ``[flags]`` placeholder is a whole argument. A value is a number, a
boolean or text of letters, digits and ``._-/+=:,`` unless its parameter is listed in ``free_text``,
whose placeholders may only follow a long option. A template that needs a shell
(``sh -c``, ``bash -c``; also ``python -c``, ``perl -e``, ...) must not put a placeholder inside
the script text: such a file is refused, naming the placeholder. Pass the value as a positional
parameter, ``sh -c 'train --tag "$1" | tee log' sh {tag}``, or read it from the environment:
every placeholder's value is also set as ``REPROTUNE_PARAM_<NAME>`` (``$REPROTUNE_PARAM_TAG``).

Numbers are checked: ``timeout_s`` finite and > 0; metrics read back are checked row by row
(``trainables.command.runner``).
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from trainables.checks import ConfigError, safe_name
from trainables.command.template import Argument, parse_template, placeholder_names


class CommandSpecError(ConfigError):
    """A job file is missing or malformed; the message names the file and the field."""


@dataclass(frozen=True)
class CommandSpec:
    """How to run an external training command and read its results."""

    name: str
    """Job name (run names and MLflow)."""
    workdir: Path
    """Folder the command runs in (absolute after loading)."""
    command: str
    """Command template: a shell-like line with {placeholders}."""
    step: str = "step"
    """Column (or regex group) holding the training step."""
    metrics_file: Optional[str] = None
    """Template of a CSV (with header) or JSON-lines file the command appends metrics to."""
    metrics_regex: Optional[str] = None
    """Regular expression with named groups, matched against each output line."""
    names: Mapping[str, str] = field(default_factory=dict)
    """Column -> reported metric name (e.g. val_exact -> val/exact_match); others keep their names."""
    checkpoint_dir: Optional[str] = None
    """Template of the folder the command leaves checkpoints in (reported with the last result)."""
    timeout_s: float = 3600.0
    """Wall-clock limit; the process group is killed past it."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """Default placeholder values."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables for the command."""
    search: Mapping[str, Any] = field(default_factory=dict)
    """Search space of ``make sweep-command`` as data: ``seeds`` and placeholder dimensions."""
    flags: Mapping[str, str] = field(default_factory=dict)
    """Boolean parameter -> the flag it renders as when true (nothing when false), e.g.
    use_rmsnorm -> --use-rmsnorm."""
    free_text: frozenset[str] = frozenset()
    """Parameters whose values may hold any text (spaces, quotes, ``;``); each only as the whole argument
    after a long option (``template``). Every other value is a number, a boolean or safe-alphabet text."""

    def __post_init__(self) -> None:
        try:
            safe_name(self.name, "name")
        except ConfigError as error:
            raise CommandSpecError(str(error)) from error
        if (self.metrics_file is None) == (self.metrics_regex is None):
            raise CommandSpecError(f"job {self.name!r}: give exactly one of metrics.file and metrics.regex")
        if self.metrics_regex is not None:
            try:
                pattern = re.compile(self.metrics_regex)
            except re.error as error:
                raise CommandSpecError(f"job {self.name!r}: metrics.regex does not compile: {error}") from error
            if self.step not in pattern.groupindex:
                raise CommandSpecError(f"job {self.name!r}: metrics.regex has no named group {self.step!r} (metrics.step)")
        number = isinstance(self.timeout_s, (int, float)) and not isinstance(self.timeout_s, bool)
        if not (number and math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise CommandSpecError(f"job {self.name!r}: timeout_s must be a finite number > 0, got {self.timeout_s!r}")
        if not all(isinstance(name, str) and name not in self.flags for name in self.free_text):
            raise CommandSpecError(f"job {self.name!r}: free_text lists parameter names (not flags), "
                                   f"got {sorted(map(str, self.free_text))!r}")
        if not all(isinstance(v, str) for v in self.flags.values()):
            raise CommandSpecError(f"job {self.name!r}: each [flags] value is the flag's text, got {dict(self.flags)!r}")
        for what, text in (("metrics.file", self.metrics_file), ("checkpoints.dir", self.checkpoint_dir)):
            if text is not None:
                placeholder_names(text, f"job {self.name!r}: {what}")
        self.arguments()  # the template splits, and no placeholder reaches a script's text
        if not self.workdir.is_dir():
            raise CommandSpecError(f"job {self.name!r}: workdir {str(self.workdir)!r} is not a folder")
        if self.metrics_file and "{out_dir}" in self.metrics_file and "out_dir" not in self.placeholders():
            raise CommandSpecError(f"job {self.name!r}: metrics.file uses {{out_dir}} but the command never receives it")

    def arguments(self) -> tuple[Argument, ...]:
        """The command template as arguments, split once (``template.parse_template``).

        Raises:
            TemplateError: see ``parse_template``.
        """
        return parse_template(self.command, self.flags, f"job {self.name!r}", self.free_text)

    def placeholders(self) -> set[str]:
        """Names the command template needs."""
        return {name for argument in self.arguments() for name in argument.names}


def load_command_spec(path: str | Path, overrides: Mapping[str, Any] | None = None) -> CommandSpec:
    """Read a job file; ``${VAR}`` in workdir expands, and a relative workdir is taken from the file's folder.

    Raises:
        CommandSpecError: missing file, bad TOML, unknown or impossible field (a NaN timeout, a name
            outside the safe alphabet, a placeholder in a script's text), an unset variable; the message
            starts with the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CommandSpecError(f"job file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise CommandSpecError(f"{path}: not valid TOML: {error}") from error
    data.update(overrides or {})
    _finite_numbers(data, path)
    metrics = data.pop("metrics", {})
    checkpoints = data.pop("checkpoints", {})
    raw_workdir = str(data.pop("workdir", "."))
    workdir = os.path.expandvars(raw_workdir)
    if "$" in workdir:
        raise CommandSpecError(f"{path}: workdir {raw_workdir!r} names an unset environment variable")
    workdir_path = Path(workdir) if Path(workdir).is_absolute() else (path.parent / workdir)
    known = {"name", "command", "timeout_s", "params", "env", "flags", "search", "free_text"}
    if "free_text" in data:
        if not isinstance(data["free_text"], list):
            raise CommandSpecError(f"{path}: free_text must be a list of parameter names, got {data['free_text']!r}")
        data["free_text"] = frozenset(data["free_text"])
    unknown = sorted(set(data) - known)
    if unknown:
        raise CommandSpecError(f"{path}: unknown field(s) {', '.join(unknown)}")
    try:
        return CommandSpec(workdir=workdir_path.resolve(), metrics_file=metrics.get("file"),
                           metrics_regex=metrics.get("regex"), step=metrics.get("step", "step"),
                           names=metrics.get("names", {}), checkpoint_dir=checkpoints.get("dir"), **data)
    except (TypeError, ConfigError) as error:
        raise CommandSpecError(f"{path}: {error}") from error


def _finite_numbers(table: Mapping[str, Any], path: Path, prefix: str = "") -> None:
    """Every number of a job file's tables is finite (TOML writes nan and inf).

    Raises:
        CommandSpecError: names the file, the field and the value.
    """
    for key, value in table.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, Mapping):
                _finite_numbers(item, path, f"{prefix}{key}.")
            elif isinstance(item, float) and not math.isfinite(item):
                raise CommandSpecError(f"{path}: {prefix}{key} must be a finite number, got {value!r}")
