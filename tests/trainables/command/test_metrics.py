"""Metrics read back from a command are checked: a bad row fails the run, naming the file, the line and the value."""

from __future__ import annotations

import json
import time

import pytest

from trainables.command import BadMetrics, load_command_spec, run_command
from trainables.command.metrics import BadMetricRow, FileTail, checked_row

NAMES = {"val_exact": "val/exact_match", "acc": "val/token_accuracy", "train_loss": "train/loss"}
WHERE = "metrics file m.csv, line 3"


@pytest.mark.parametrize("row, previous, message", [
    ({"step": "1e400"}, None, r"step='1e400' is not a finite number"),
    ({"step": "nan"}, None, r"step='nan' is not a finite number"),
    ({"step": 10**400}, None, r"step=1000000000000000000000000000000000000\.\.\. is too large for a number"),
    ({"step": 10**30}, None, r"step step=1000000000000000000000000000000 must be an integer in \[0, 2\*\*63\)"),
    ({"step": "2.5"}, None, r"step step='2.5' must be an integer"),
    ({"step": "-3"}, None, r"step step='-3' must be an integer in \[0, 2\*\*63\)"),
    ({"step": "10"}, 10.0, r"step step='10' must be larger than the previous row's step 10"),
    ({"step": "abc"}, None, r"step column step='abc' is not a number"),
    ({"step": "1", "val_exact": "inf"}, None, r"val_exact='inf' \(reported as val/exact_match\) is not a finite number"),
    ({"step": "1", "val_exact": "7.5"}, None, r"val_exact='7.5' \(reported as val/exact_match\) must be in \[0, 1\]"),
    ({"step": "1", "val_exact": "-3"}, None, r"val_exact='-3' \(reported as val/exact_match\) must be in \[0, 1\]"),
    ({"step": "1", "val_exact": "NaN"}, None, r"val_exact='NaN' .* is not a finite number"),
    ({"step": "1", "acc": "1.0001"}, None, r"acc='1.0001' \(reported as val/token_accuracy\) must be in \[0, 1\]"),
    ({"step": "1", "train_loss": "-inf"}, None, r"train_loss='-inf' \(reported as train/loss\) is not a finite"),
    ({"step": "1", "lr": "1e999"}, None, r"lr='1e999' is not a finite number"),
])
def test_a_bad_row_names_where_the_column_and_the_value(row, previous, message):
    with pytest.raises(BadMetricRow, match=f"^{WHERE}: {message}"):
        checked_row(row, NAMES, "step", WHERE, previous)


def test_good_rows_keep_their_numbers_and_drop_what_is_no_number():
    row = {"step": "20", "val_exact": "1", "acc": "0", "train_loss": "12.5", "note": "warmup", "lr": ""}
    assert checked_row(row, NAMES, "step", WHERE, 10.0) == {
        "step": 20.0, "val/exact_match": 1.0, "val/token_accuracy": 0.0, "train/loss": 12.5}
    assert checked_row({"step": "", "train_loss": "1"}, NAMES, "step", WHERE, None) is None
    assert checked_row({"train_loss": "1"}, NAMES, "step", WHERE, None) is None
    assert checked_row({"it": 3, "step": "99"}, {}, "it", WHERE, None) == {"step": 3.0}  # the step column wins


def test_file_tail_numbers_lines_and_refuses_a_line_that_is_not_json(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 0}\n\n{"step": 1}\n{"step": 2')
    tail = FileTail(path)
    assert tail.new_rows() == [(1, {"step": 0}), (3, {"step": 1})]
    with path.open("a") as handle:
        handle.write("}\n[1, 2]\n")
    with pytest.raises(BadMetricRow, match=rf"^metrics file {path}, line 5: a JSON object is expected, got \[1, 2\]"):
        tail.new_rows()


WRITER = """import sys, time
rows = sys.argv[2:]
with open(sys.argv[1] + '/metrics.csv', 'w') as f:
    f.write('step,val_exact,train_loss\\n')
    for row in rows:
        f.write(row + '\\n'); f.flush(); time.sleep(0.2)
time.sleep(60)
"""


@pytest.mark.parametrize("bad, message", [
    ("1e400,0.5,1.0", r"step='1e400' is not a finite number"),
    ("10,inf,1.0", r"val_exact='inf' \(reported as val/exact_match\) is not a finite number"),
    ("10,7.5,1.0", r"val_exact='7.5' \(reported as val/exact_match\) must be in \[0, 1\]"),
    ("10,0.5,nan", r"train_loss='nan' \(reported as train/loss\) is not a finite number"),
    ("0,0.5,1.0", r"step step='0' must be larger than the previous row's step 0"),
])
def test_a_command_writing_a_bad_row_is_killed_and_fails_naming_file_line_and_value(tmp_path, bad, message):
    (tmp_path / "writer.py").write_text(WRITER)
    job = tmp_path / "job.toml"
    command = json.dumps(f"{{python}} writer.py {{out_dir}} 0,0.25,2.0 {bad}")
    job.write_text(f"name = 'bad-rows'\nworkdir = {json.dumps(str(tmp_path))}\ncommand = {command}\ntimeout_s = 120\n"
                   "[metrics]\nfile = '{out_dir}/metrics.csv'\n"
                   "names = { val_exact = 'val/exact_match', train_loss = 'train/loss' }\n")
    calls = []
    started = time.monotonic()
    with pytest.raises(BadMetrics) as error:
        run_command(load_command_spec(job), {}, tmp_path / "run", lambda m, c: calls.append(m), poll_s=0.05)
    assert time.monotonic() - started < 30  # killed at the bad row, not left to its 60 s sleep
    path = tmp_path / "run" / "metrics.csv"
    assert error.match(f"^metrics of job 'bad-rows': metrics file {path}, line 3: ({message})")
    assert calls == [{"step": 0.0, "val/exact_match": 0.25, "train/loss": 2.0}]  # the good row is kept
