"""Values shown as text are rounded for reading; the integer part and non-floats are never touched."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tune_jobs.verdicts.readable import readable, readable_table, readable_text


def test_floats_keep_three_significant_digits():
    assert [readable(v) for v in (0.09699999999999998, 0.6666666667, 0.00009699999999999997, -2 / 3)] == \
        [0.097, 0.667, 9.7e-05, -0.667]
    assert readable(1234.5678) == 1235.0 and readable(0.99990, 4) == 0.9999  # the integer part stays whole
    assert readable(np.float64(0.10000000000000002)) == 0.1


def test_other_values_pass_through():
    assert readable(0.0) == 0.0 and readable(3) == 3 and readable(True) is True and readable("0.123456") == "0.123456"
    assert math.isnan(readable(math.nan)) and readable(math.inf) == math.inf


def test_text_reads_without_float_noise():
    assert [readable_text(v) for v in (0.09699999999999998, 0.00009699999999999997, 1234.5678, 12.0, 7, "a")] == \
        ["0.097", "9.7e-05", "1235", "12", "7", "a"]


def test_a_table_rounds_its_float_columns_only():
    table = pd.DataFrame({"mean": [0.09699999999999998, math.nan], "n": [3, 4], "s": ["a", "b"]})
    shown = readable_table(table)
    assert shown["mean"].tolist()[0] == 0.097 and math.isnan(shown["mean"].tolist()[1])
    assert shown["n"].tolist() == [3, 4] and shown["s"].tolist() == ["a", "b"]
    assert table["mean"].tolist()[0] == 0.09699999999999998  # the original is not changed
