"""Run an external training command, stream its metrics as they appear, fail with its output's tail.

No Ray, no MLflow: ``run_command`` calls ``report(metrics, checkpoint_dir)`` for every new step it
reads (the checkpoint folder on the last call), like the addition trainable does.
"""

from __future__ import annotations

import collections
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from trainables.command.metrics import BadMetricRow, FileTail, accepted, where_in_file, where_in_output
from trainables.command.spec import CommandSpec
from trainables.command.template import environment, render_arguments
from trainables.loop import Reporter

TAIL_LINES = 40
"""Lines of output kept for an error message."""
TAIL_LINE_CHARS = 2000
"""Characters kept of one output line (its end): a command printing one 60 MB line fails with a short message."""


class CommandFailed(RuntimeError):
    """The command exited non-zero or timed out; the message has the tail of its output, and its
    first and last lines say why (a trial table shows the last line)."""


class BadMetrics(CommandFailed):
    """A metrics row the command wrote is not usable (NaN, inf, a fraction outside [0, 1], a step
    that is not an increasing integer); the message names the file or output line and the value."""


@dataclass
class CommandResult:
    """What a finished command left."""

    history: list[dict[str, float]] = field(default_factory=list)
    """Every metrics row read, in step order."""
    checkpoint_dir: Optional[Path] = None
    output_tail: str = ""


def run_values(spec: CommandSpec, params: Mapping[str, Any], out_dir: Path, run_name: str) -> dict[str, Any]:
    """Every placeholder's value for one run: the job's defaults, the run's params, ``python``,
    ``out_dir`` and ``run_name``."""
    return {**spec.params, **params, "python": sys.executable, "out_dir": str(out_dir), "run_name": run_name}


def render_command(spec: CommandSpec, params: Mapping[str, Any], out_dir: Path, run_name: str) -> list[str]:
    """The argv of a run: the template split once, each placeholder's value one argument (or a
    literal part of one), never parsed by a shell (``template.render_arguments``).

    Raises:
        KeyError: a placeholder has no value (its name is the message).
        ConfigError: a value holds a NUL byte.
    """
    try:
        return render_arguments(spec.arguments(), run_values(spec, params, out_dir, run_name), spec.flags,
                                spec.free_text)
    except KeyError as error:
        raise KeyError(f"command of job {spec.name!r} {error.args[0]}") from None


def run_command(spec: CommandSpec, params: Mapping[str, Any], out_dir: str | Path, report: Reporter | None = None,
                run_name: str = "run", poll_s: float = 0.5, env: Mapping[str, str] | None = None) -> CommandResult:
    """Run the job's command for one parameter set, reporting each new metrics step.

    Args:
        spec: the job.
        params: placeholder values of this run (seed, lr, ...).
        out_dir: a folder for this run (created), passed as {out_dir}.
        report: called with each new metrics row (namespaced by ``spec.names``, ``step`` as float);
            the call for the last row also gets the checkpoint folder when the job names one.
        poll_s: how often the metrics file is read.
        env: extra environment variables for this run (over the job's, over the ``REPROTUNE_PARAM_<NAME>``
            values of the placeholders).

    Raises:
        CommandFailed: non-zero exit or timeout; the message has the exit code and the output's tail,
            and its last line says why again.
        BadMetrics: a metrics row breaks a rule of ``trainables.command.metrics`` (the command is
            killed; the message names the file or output line and the value).
        KeyError: a placeholder without a value.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    argv = render_command(spec, params, out, run_name)
    values = run_values(spec, params, out, run_name)
    file_tail = _metrics_file(spec, values, out) if spec.metrics_file else None
    result = CommandResult()
    pending = None
    with _Process(argv, spec, {**environment(values), **spec.env, **(env or {})}) as process:
        deadline = time.monotonic() + spec.timeout_s
        while True:
            ended = process.poll_or_kill(deadline)
            try:
                new = _new_rows(process, file_tail, spec, result.history[-1]["step"] if result.history else None)
            except BadMetricRow as error:
                _report_kept(report, pending)
                raise BadMetrics(f"metrics of job {spec.name!r}: {error}") from None
            for metrics in new:
                if pending is not None and report is not None:
                    report(pending, None)  # the newest row waits: the last one goes out with the checkpoint
                result.history.append(metrics)
                pending = metrics
            if ended:
                break
            time.sleep(poll_s)
    result.output_tail = "\n".join(process.tail)
    if process.timed_out or process.returncode != 0:
        _report_kept(report, pending)
        why = f"timed out after {spec.timeout_s:g} s" if process.timed_out else f"exited with code {process.returncode}"
        summary = f"command of job {spec.name!r} {why}"
        raise CommandFailed(f"{summary}: {shlex.join(argv)}\n--- last output ---\n{result.output_tail}\n"
                            f"--- end of output: {summary}")
    if spec.checkpoint_dir:
        folder = Path(spec.checkpoint_dir.format(**values))
        result.checkpoint_dir = folder if folder.is_dir() else None
    if pending is not None and report is not None:
        report(pending, result.checkpoint_dir)
    return result


def _metrics_file(spec: CommandSpec, values: Mapping[str, Any], out: Path) -> FileTail:
    """The run's metrics file, which must lie inside its folder ``out``; rows already in it are not this run's.

    Raises:
        BadMetrics: the file resolves outside ``out`` (an absolute path, ``..``, a parameter steering it).
    """
    path = (spec.workdir / spec.metrics_file.format(**values)).resolve()
    if not path.is_relative_to(out.resolve()):
        raise BadMetrics(f"metrics of job {spec.name!r}: metrics file {str(path)!r} lies outside the run's folder "
                         f"{str(out.resolve())!r}; only what this run writes there counts (use {{out_dir}}/...)")
    tail = FileTail(path)
    tail.skip_existing()
    return tail


def _new_rows(process: "_Process", file_tail: Optional[FileTail], spec: CommandSpec,
              previous_step: Optional[float]) -> list[dict[str, float]]:
    """The checked rows the command wrote since the last call (output lines, then the metrics file)."""
    rows = [(where_in_output(line), row) for line, row in process.take_rows()]
    if file_tail is not None:
        rows += [(where_in_file(file_tail.path, line), row) for line, row in file_tail.new_rows()]
    return accepted(rows, spec.names, spec.step, previous_step)


def _report_kept(report: Reporter | None, pending: Optional[dict[str, float]]) -> None:
    """What the command wrote before failing is kept: its last checked row goes out."""
    if pending is not None and report is not None:
        report(pending, None)


class _Process:
    """The command in its own process group, its output read by a thread (tail kept, regex rows
    collected); killed on exit from the ``with`` block if still running."""

    def __init__(self, argv: list[str], spec: CommandSpec, env: Mapping[str, str] | None) -> None:
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.timed_out, self.returncode = False, None
        self._rows: list[tuple[int, dict[str, Any]]] = []
        self._lines = 0
        self._lock = threading.Lock()
        self._pattern = re.compile(spec.metrics_regex) if spec.metrics_regex else None
        environment = {**os.environ, **{k: str(v) for k, v in (env or {}).items()}, "PYTHONUNBUFFERED": "1"}
        self._popen = subprocess.Popen(argv, cwd=spec.workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, env=environment, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._popen.stdout is not None
        for line in self._popen.stdout:
            self._lines += 1
            text = line.rstrip("\n")
            self.tail.append(text if len(text) <= TAIL_LINE_CHARS
                             else f"[{len(text) - TAIL_LINE_CHARS} characters cut] {text[-TAIL_LINE_CHARS:]}")
            match = self._pattern.search(line) if self._pattern else None
            if match:
                with self._lock:
                    self._rows.append((self._lines, match.groupdict()))

    def poll_or_kill(self, deadline: float) -> bool:
        """True once the command has ended (by itself, or killed at the deadline)."""
        if self._popen.poll() is None and time.monotonic() > deadline:
            self._kill()
            self.timed_out = True
        if self._popen.poll() is None:
            return False
        self._reader.join(timeout=5)
        self.returncode = self._popen.returncode
        return True

    def take_rows(self) -> list[tuple[int, dict[str, Any]]]:
        with self._lock:
            rows, self._rows = self._rows, []
        return rows

    def _kill(self) -> None:
        try:
            os.killpg(self._popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):  # the group is gone already
            pass
        self._popen.wait()

    def __enter__(self) -> "_Process":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._kill()  # the whole process group, also when the command exited and left children running
