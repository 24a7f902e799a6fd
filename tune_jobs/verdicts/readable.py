"""Numbers rounded for reading wherever they are shown as text: MLflow tags, the parent run's
description and its verdict table, the table viewer's cells (``verdict.json``, ``trials.json``).

Metrics and the CSV tables keep full precision: ``readable`` is for what a person reads, never for
what a program sorts, charts or compares. 0.09699999999999998 reads 0.097, 0.6666666667 reads 0.667,
0.00009699999999999997 reads 9.7e-05; the integer part is never rounded away (1234.5678 reads 1235).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

DIGITS = 3
"""Significant digits of a value shown for reading."""


def readable(value: Any, digits: int = DIGITS) -> Any:
    """A finite non-zero float rounded to ``digits`` significant digits (its integer part kept whole);
    any other value (an int, a bool, a string, NaN, infinity, 0.0) as it is."""
    if isinstance(value, bool) or not isinstance(value, float) or not math.isfinite(value) or value == 0.0:
        return value
    return round(value, max(digits - 1 - math.floor(math.log10(abs(value))), 0))


def readable_text(value: Any, digits: int = DIGITS) -> str:
    """A value as text for reading: a float ``readable`` without a trailing '.0' (0.097, 9.7e-05,
    1235), anything else ``str``."""
    shown = readable(value, digits)
    if isinstance(shown, float) and shown.is_integer() and abs(shown) < 1e15:
        return str(int(shown))
    return str(shown)


def readable_table(table: pd.DataFrame, digits: int = DIGITS) -> pd.DataFrame:
    """A copy of ``table`` whose float cells are ``readable`` (other columns as they are)."""
    shown = table.copy()
    for name in shown.columns:
        if pd.api.types.is_float_dtype(shown[name]):
            shown[name] = [readable(float(v), digits) for v in shown[name]]
    return shown
