"""Run an external training command, stream its metrics as they appear, fail with its output's tail.

No Ray, no MLflow: ``run_command`` calls ``report(metrics, checkpoint_dir)`` for every new step it
reads (the checkpoint folder on the last call), like the addition trainable does.
"""

from __future__ import annotations

import collections
import csv
import io
import json
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

from trainables.command.spec import CommandSpec
from trainables.loop import Reporter

TAIL_LINES = 40
"""Lines of output kept for an error message."""


class CommandFailed(RuntimeError):
    """The command exited non-zero or timed out; the message ends with the tail of its output."""


@dataclass
class CommandResult:
    """What a finished command left."""

    history: list[dict[str, float]] = field(default_factory=list)
    """Every metrics row read, in step order."""
    checkpoint_dir: Optional[Path] = None
    output_tail: str = ""


def render_command(spec: CommandSpec, params: Mapping[str, Any], out_dir: Path, run_name: str) -> list[str]:
    """The argv of a run: the template with shell-quoted values, split like a shell would.

    Raises:
        KeyError: a placeholder has no value (its name is the message).
    """
    values = {**spec.params, **params, "python": sys.executable, "out_dir": str(out_dir), "run_name": run_name}
    for name, flag in spec.flags.items():
        values[name] = flag if values.get(name) not in (None, False, "", 0, "false", "False") else ""
    missing = sorted(spec.placeholders() - set(values))
    if missing:
        raise KeyError(f"command of job {spec.name!r} needs a value for {', '.join(missing)}")
    quoted = {k: shlex.quote(str(v)) if str(v) else "" for k, v in values.items()}
    return shlex.split(spec.command.format(**quoted))


def _numeric(row: Mapping[str, Any], spec: CommandSpec) -> Optional[dict[str, float]]:
    """A metrics row as floats under their reported names; None without a step."""
    out: dict[str, float] = {}
    for key, value in row.items():
        try:
            out[spec.names.get(key, key)] = float(value)
        except (TypeError, ValueError):
            continue
    step_name = spec.names.get(spec.step, spec.step)
    if step_name not in out:
        return None
    out["step"] = out.pop(step_name) if step_name != "step" else out["step"]
    return out


class _FileTail:
    """Reads the whole rows appended to a CSV (with header) or JSON-lines file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.header = path, 0, None

    def new_rows(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]  # a partly written last line waits for the next call
        self.offset += len(complete)
        lines = [line for line in complete.decode().splitlines() if line.strip()]
        if self.path.suffix in (".jsonl", ".json"):
            return [json.loads(line) for line in lines]
        if self.header is None and lines:
            self.header, lines = next(csv.reader([lines[0]])), lines[1:]
        return [dict(zip(self.header or [], values)) for values in csv.reader(io.StringIO("\n".join(lines)))]


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
        env: extra environment variables for this run (over the job's).

    Raises:
        CommandFailed: non-zero exit or timeout; the message has the exit code and the output's tail.
        KeyError: a placeholder without a value.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    argv = render_command(spec, params, out, run_name)
    values = {**spec.params, **params, "out_dir": str(out), "run_name": run_name}
    file_tail = _FileTail(Path(spec.metrics_file.format(**values))) if spec.metrics_file else None
    result = CommandResult()
    pending = None
    with _Process(argv, spec, env) as process:
        deadline = time.monotonic() + spec.timeout_s
        while True:
            ended = process.poll_or_kill(deadline)
            new = process.take_rows() + (file_tail.new_rows() if file_tail is not None else [])
            for metrics in filter(None, (_numeric(row, spec) for row in new)):
                if pending is not None and report is not None:
                    report(pending, None)  # the newest row waits: the last one goes out with the checkpoint
                result.history.append(metrics)
                pending = metrics
            if ended:
                break
            time.sleep(poll_s)
    result.output_tail = "\n".join(process.tail)
    if process.timed_out or process.returncode != 0:
        if pending is not None and report is not None:
            report(pending, None)  # what the command wrote before failing is kept
        why = f"timed out after {spec.timeout_s:g} s" if process.timed_out else f"exited with code {process.returncode}"
        raise CommandFailed(f"command of job {spec.name!r} {why}: {shlex.join(argv)}\n--- last output ---\n"
                            f"{result.output_tail}")
    if spec.checkpoint_dir:
        folder = Path(spec.checkpoint_dir.format(**values))
        result.checkpoint_dir = folder if folder.is_dir() else None
    if pending is not None and report is not None:
        report(pending, result.checkpoint_dir)
    return result


class _Process:
    """The command in its own process group, its output read by a thread (tail kept, regex rows
    collected); killed on exit from the ``with`` block if still running."""

    def __init__(self, argv: list[str], spec: CommandSpec, env: Mapping[str, str] | None) -> None:
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.timed_out, self.returncode = False, None
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._pattern = re.compile(spec.metrics_regex) if spec.metrics_regex else None
        environment = {**os.environ, **{k: str(v) for k, v in {**spec.env, **(env or {})}.items()},
                       "PYTHONUNBUFFERED": "1"}
        self._popen = subprocess.Popen(argv, cwd=spec.workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, env=environment, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._popen.stdout is not None
        for line in self._popen.stdout:
            self.tail.append(line.rstrip("\n"))
            match = self._pattern.search(line) if self._pattern else None
            if match:
                with self._lock:
                    self._rows.append(match.groupdict())

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

    def take_rows(self) -> list[dict[str, Any]]:
        with self._lock:
            rows, self._rows = self._rows, []
        return rows

    def _kill(self) -> None:
        try:
            os.killpg(self._popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._popen.wait()

    def __enter__(self) -> "_Process":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._popen.poll() is None:
            self._kill()
