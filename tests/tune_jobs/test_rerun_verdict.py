"""The rerun's one-line verdict: bit for bit on the same kind of machine, outcomes across kinds."""

import pandas as pd

from mlflow_utils.records import RunRecord
from tune_jobs.rerun import RerunArgs, verdict

TAGS = {"device": "cpu", "device_name": "AMD EPYC", "threads": "1", "device_kind": "AuthenticAMD 25/1 AVX2"}
HISTORY = pd.DataFrame({"key": ["train/loss", "val/exact_match"] * 2, "step": [0, 0, 100, 100],
                        "value": [2.0, 0.0, 1.0, 1.0]})
METRICS = {"success": 1.0, "val/best_exact_match": 1.0}


def judged(record_tags, env, rerun_history):
    record = RunRecord("0" * 32, "1", "d8 s0", "FINISHED", {}, record_tags, METRICS)
    return verdict(record, env, HISTORY, rerun_history, METRICS, RerunArgs(run="0" * 32))


def test_the_same_kind_is_compared_bit_for_bit():
    assert judged(TAGS, TAGS, HISTORY).startswith("BIT-IDENTICAL (2 metrics at 2 steps)")
    moved = HISTORY.assign(value=[2.0, 0.0, 1.5, 1.0])
    assert judged(TAGS, TAGS, moved).startswith("DIFFERS from step 100 (train/loss): train/loss 1.0 (original) vs 1.5")


def test_cpus_sharing_a_model_name_but_not_a_kind_compare_outcomes():
    older_epyc = {**TAGS, "device_kind": "AuthenticAMD 23/49 AVX2"}  # another EPYC generation, same model name
    line = judged(TAGS, older_epyc, HISTORY.assign(value=[2.0, 0.0, 1.5, 1.0]))
    assert line.startswith("other machine kind (AMD EPYC (AuthenticAMD 25/1 AVX2) x1 -> "
                           "AMD EPYC (AuthenticAMD 23/49 AVX2) x1): OUTCOME AGREES")


def test_a_run_logged_before_device_kind_was_recorded_is_judged_on_the_other_fields():
    old = {k: v for k, v in TAGS.items() if k != "device_kind"}
    assert judged(old, TAGS, HISTORY).startswith("BIT-IDENTICAL")
