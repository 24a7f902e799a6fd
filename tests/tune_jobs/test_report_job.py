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


def test_a_stopped_claimed_fit_rewrites_the_report_with_the_claimed_seeds_that_finished(tmp_path, monkeypatch):
    from tune_jobs import report
    from tune_jobs.verdicts import claim_report as cr

    cells = cr.cells(report.load_claims(("512p-s42", "582p-s42")))
    fits = []

    def fit(self, trial, space, searcher, num_samples, **kwargs):
        fits.append(self.name)
        if len(fits) == 2:  # the claimed seeds' fit: the 582p run was cut short, the 512p run had finished
            self.interrupted = {"cut-short"}
        return [], pd.DataFrame()

    def seed_rows(grid, trial, cell_of, horizon):
        row = {"seed": 42, "finished": True, "grokking_step": None, "censored_at": 26999, report.TRAINED_SECONDS: 60.0}
        if len(fits) == 1:  # the cells: two seeds each, neither grokked
            return pd.DataFrame([{**row, "cell": c.key, "seed": s, "trial_id": f"{c.key}-{s}", "best_exact_match": 0.1,
                                  "protocol_exact_match": 0.0} for c in cells for s in (0, 1)])
        return pd.DataFrame([{**row, "cell": cells[0].key, "trial_id": "done", "best_exact_match": 1.0,
                              "protocol_exact_match": 1.0},  # the 512p claimed seed met its claim
                             {**row, "cell": cells[1].key, "trial_id": "cut-short", "best_exact_match": 1.0,
                              "protocol_exact_match": 1.0}])  # measured while running: no result

    monkeypatch.setattr(Job, "fit", fit)
    monkeypatch.setattr(report, "seed_rows", seed_rows)
    args = ReportArgs(claims=("512p-s42", "582p-s42"), name="claims-y", experiment="test",
                      tracking_uri=f"sqlite:///{tmp_path / 'mlruns.db'}", storage_path=str(tmp_path / "ray"),
                      reports_dir=tmp_path / "reports")
    with pytest.raises(Interrupted) as raised:
        run_report(args)
    assert raised.value.job_name == "claims-y"
    text = (tmp_path / "reports" / "claims-y" / "report.md").read_text()
    row = {line.split(" | ")[0][2:]: line for line in text.splitlines() if line.startswith("| 5")}
    assert " | CLAIM REPRODUCED | " in row["512p-s42"]  # judged on its finished claimed run
    assert " | NOT REPRODUCED | " in row["582p-s42"]  # the cut-short run is not a value: the cell's 0/2 decides
    assert f"Claimed seeds {report.CLAIMED_STOPPED}: 582p-s42 (seed 42)." in text
    assert "6 seed runs" in text  # the cut-short run's training counts in the cost
