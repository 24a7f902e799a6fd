"""Metrics read back from a command, checked row by row: every number is a number we can use.

A row comes from a CSV file (with a header), a JSON-lines file, or a regular expression's named
groups on one output line. Rules (each broken rule names the file or output, the line and the value):

- ``step`` is a finite integer >= 0 below 2**63 (MLflow's int64), larger than the previous row's;
- every other number is finite (no NaN, no inf, no overflow such as ``1e400``);
- a metric whose reported name contains ``exact_match`` or ``accuracy`` lies in [0, 1].

A value that is not a number (empty CSV cell, text, JSON null or list) is not a metric and is left
out; a row with no step at all is skipped; a step that is not a number is an error.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

MAX_STEP = 2**63 - 1
"""Largest step MLflow stores (a signed 64-bit integer)."""
FRACTIONS = ("exact_match", "accuracy")
"""A reported metric whose name contains one of these is a fraction in [0, 1]."""


class BadMetricRow(ValueError):
    """A metrics row breaks a rule of the module doc; the message names where, the line and the value."""


def _number(value: Any, where: str, column: str) -> Optional[float]:
    """``value`` as a float; None when it is no number at all (text, empty, null, a list).

    Raises:
        BadMetricRow: an integer too large for a float.
    """
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)):  # a JSON number (bool included: 1.0 / 0.0)
        try:
            return float(value)
        except OverflowError:
            raise BadMetricRow(f"{where}: {column}={_shown(value)} is too large for a number") from None
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def checked_row(row: Mapping[str, Any], names: Mapping[str, str], step_column: str, where: str,
                previous_step: Optional[float]) -> Optional[dict[str, float]]:
    """A raw row as floats under their reported names (``names``: column -> name; others keep
    theirs), with the step under ``step``; None when the row has no step.

    Args:
        where: how messages name the row, e.g. "metrics file /run/metrics.csv, line 3".
        previous_step: the step of the previous accepted row (None before the first).

    Raises:
        BadMetricRow: a rule of the module doc is broken (names ``where``, the column and the value).
    """
    raw_step = row.get(step_column)
    if raw_step is None or (isinstance(raw_step, str) and not raw_step.strip()):
        return None
    out: dict[str, float] = {}
    for column, value in row.items():
        number = _number(value, where, column)
        if number is None:
            if column == step_column:
                raise BadMetricRow(f"{where}: step column {column}={_shown(value)} is not a number")
            continue
        name = "step" if column == step_column else names.get(column, column)
        if name == "step" and column != step_column:
            continue  # only the step column is the step
        reported = "" if name == column else f" (reported as {name})"
        if not math.isfinite(number):
            raise BadMetricRow(f"{where}: {column}={_shown(value)}{reported} is not a finite number")
        if any(part in name for part in FRACTIONS) and not 0 <= number <= 1:
            raise BadMetricRow(f"{where}: {column}={_shown(value)}{reported} must be in [0, 1]")
        out[name] = number
    step = out["step"]
    if step != int(step) or not 0 <= step <= MAX_STEP:
        raise BadMetricRow(f"{where}: step {step_column}={_shown(raw_step)} must be an integer in [0, 2**63)")
    if previous_step is not None and step <= previous_step:
        raise BadMetricRow(f"{where}: step {step_column}={_shown(raw_step)} must be larger than the previous "
                           f"row's step {previous_step:g}")
    return out


class FileTail:
    """The whole lines appended to a CSV (with header) or JSON-lines file since the last call, as
    (line number, raw row) pairs; a partly written last line waits for the next call."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.header, self.lines_read = path, 0, None, 0

    def skip_existing(self) -> None:
        """Count only what is written from now on: rows already in the file (an old run's) are skipped,
        its CSV header kept."""
        old = self.new_rows()
        del old

    def new_rows(self) -> list[tuple[int, dict[str, Any]]]:
        """Rows added since the last call.

        Raises:
            BadMetricRow: a JSON line that does not parse or is not an object.
        """
        if not self.path.is_file():
            return []
        if self.path.stat().st_size < self.offset:  # rewritten from the start by the command
            self.offset, self.header, self.lines_read = 0, None, 0
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        lines = list(enumerate(complete.decode(errors="replace").splitlines(), start=self.lines_read + 1))
        self.lines_read += len(lines)
        lines = [(number, line) for number, line in lines if line.strip()]
        if self.path.suffix in (".jsonl", ".json"):
            return [(number, self._json(number, line)) for number, line in lines]
        if self.header is None and lines:
            self.header, lines = next(csv.reader([lines[0][1]])), lines[1:]
        return [(number, dict(zip(self.header or [], values)))
                for number, values in zip((n for n, _ in lines), csv.reader(io.StringIO("\n".join(l for _, l in lines))))]

    def _json(self, number: int, line: str) -> dict[str, Any]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise BadMetricRow(f"metrics file {self.path}, line {number}: not JSON ({error.msg}): {_shown(line)}") from None
        if not isinstance(row, dict):
            raise BadMetricRow(f"metrics file {self.path}, line {number}: a JSON object is expected, got {_shown(row)}")
        return row


def where_in_file(path: Path, line: int) -> str:
    return f"metrics file {path}, line {line}"


def where_in_output(line: int) -> str:
    return f"output line {line}"


def accepted(rows: Iterable[tuple[str, Mapping[str, Any]]], names: Mapping[str, str], step_column: str,
             previous_step: Optional[float]) -> list[dict[str, float]]:
    """The checked rows (``checked_row``) of (where, raw row) pairs in order, rows without a step left out.

    Raises:
        BadMetricRow: the first row that breaks a rule.
    """
    out = []
    for where, row in rows:
        metrics = checked_row(row, names, step_column, where, previous_step)
        if metrics is not None:
            out.append(metrics)
            previous_step = metrics["step"]
    return out
