"""The command trial's body: a refused metrics row fails the trial once, with no retry (issue 20, item 9)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
from ray.tune.search import Repeater

from tune_jobs.runtime.replicates import replicate_results
from tune_jobs.runtime.searcher import OBJECTIVE, TRIAL_ERROR, SeedReplicates
from tune_jobs.runtime.trial import TrialContext
from tune_jobs.trials.command import body

BAD_ROW = ("{python} -c 'import sys; open(sys.argv[1], \"a\").write(\"ran\\n\"); "
           "print(\"step=1 acc=0.5\"); print(\"step=2 acc=7.5\", flush=True)' {attempts}")


def test_a_refused_row_ends_the_trial_with_its_error_reported_not_raised(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(f"name = 'garbage'\nworkdir = {json.dumps(str(tmp_path))}\ncommand = {json.dumps(BAD_ROW)}\n"
                   f"timeout_s = 30\n[metrics]\nregex = 'step=(?P<step>\\d+) acc=(?P<val_exact_match>\\S+)'\n"
                   f"names = {{ val_exact_match = 'val/exact_match' }}\n"
                   f"[params]\nattempts = {json.dumps(str(tmp_path / 'attempts'))}\n")
    reports = []
    context = TrialContext(lambda result, checkpoint: reports.append(result), lambda: None, None)
    body({"command": {"job": str(job), "threads": 1}, "params": {}, "seeds": [3], "seeds_per_trial": 1}, context)
    assert (tmp_path / "attempts").read_text() == "ran\n"
    assert reports[-1]["step"] in (0.0, 1.0) and not any(TRIAL_ERROR in r for r in reports[:-1])  # the good row
    assert reports[-1][OBJECTIVE] == 0.0 and reports[-1]["success"] == 0.0  # if read in time, then the error
    error = reports[-1][TRIAL_ERROR]
    assert "metrics of job 'garbage': output line 2: val_exact_match='7.5' (reported as val/exact_match) must be in" \
           in error, error
    result = SimpleNamespace(metrics={**reports[-1], "trial_id": "t1"}, config={"seeds": [3], "seeds_per_trial": 1},
                             metrics_dataframe=pd.DataFrame(reports), error=None, path=str(tmp_path / "t1"),
                             checkpoint=None)
    assert [r.error for r in replicate_results(result)] == [error]  # the trial table and MLflow count it failed


def test_the_searcher_scores_a_trial_that_reported_its_error_as_a_failure(monkeypatch):
    replicates = SeedReplicates.__new__(SeedReplicates)
    replicates.searcher, replicates.failure_score = SimpleNamespace(metric=OBJECTIVE), -1.0
    seen = []  # what reaches Ray's Repeater (its own averaging is Ray's)
    monkeypatch.setattr(Repeater, "on_trial_complete", lambda self, trial_id, result=None, **kw: seen.append(result))
    replicates.on_trial_complete("t", {OBJECTIVE: 0.9, TRIAL_ERROR: "refused"})
    replicates.on_trial_complete("u", {OBJECTIVE: 0.9})
    assert seen == [{OBJECTIVE: -1.0}, {OBJECTIVE: 0.9}]
