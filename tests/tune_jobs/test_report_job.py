"""`make report`'s job around its two fits, with the fits stubbed: what an interruption of the claimed
seeds' fit tells the user to run."""

from __future__ import annotations

import pandas as pd
import pytest

from tune_jobs.report import ReportArgs, run_report
from tune_jobs.runtime.job import Interrupted, Job


def test_an_interrupted_claimed_fit_names_the_report_to_resume_not_its_own_experiment(tmp_path, monkeypatch):
    calls = []

    def fit(self, trial, space, searcher, num_samples, **kwargs):
        calls.append(self.name)
        if len(calls) == 2:  # the claimed seeds' fit: Ctrl-C cut one trial short
            self.interrupted = {"cut-short"}
        return [], pd.DataFrame()

    monkeypatch.setattr(Job, "fit", fit)
    args = ReportArgs(claims=("512p-s42",), name="claims-x", experiment="test",
                      tracking_uri=f"sqlite:///{tmp_path / 'mlruns.db'}", storage_path=str(tmp_path / "ray"),
                      reports_dir=tmp_path / "reports")
    with pytest.raises(Interrupted) as raised:
        run_report(args)
    assert calls == ["claims-x", "claims-x-claimed"]
    assert raised.value.job_name == "claims-x"  # the command line printed resumes the report, both fits
    assert str(raised.value).endswith("make report RESUME=1 NAME=claims-x")
    assert (tmp_path / "reports" / "claims-x" / "report.md").is_file()  # the cells' report stays
