"""`make report` end to end on a small claim set with a stand-in trainable whose seeds grok at known
rates: two claims sharing a cell and one alone; the labels checked against the planted outcomes, the
Markdown, the HTML and the MLflow run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mlflow import MlflowClient
from tune_jobs.report import ReportArgs, run_report
from tune_jobs.runtime.trial_config import OBJECTIVE, seed_of
from tune_jobs.trials.addition import ADDITION

CLAIM = """name = "{name}"
description = "planted"
source_repository = "x/y"
source_commit = "abc"
source_device = "{device}"
protocol = "{protocol}"
comparison = "{comparison}"
claimed_value = {value}
tolerance = {tolerance}

[model]
d_model = {d_model}
d_ff = 28

[train]
seed = {seed}
train_steps = 300
eval_interval = 100
warmup_steps = 10
"""


def planted_body(config, context):
    """A stand-in addition run: a d_model-8 seed groks (exact match 1.0 from step 200) when it is even,
    a d_model-16 seed always; the others stay at 0.1. The protocol score is the final exact match."""
    seed, d_model = seed_of(config), config["model"]["d_model"]
    grokks = d_model == 16 or seed % 2 == 0
    best = 0.0
    for step in (100, 200, 300):
        value = 1.0 if grokks and step >= 200 else 0.1
        best = max(best, value)
        result = {"step": step, "val/exact_match": value, "val/best_exact_match": best, "success": float(best >= 0.99),
                  OBJECTIVE: float(best >= 0.99), "env/device": "cpu", "env/threads": "1"}
        if step == 300:
            result.update({"test/exact_match": value, "protocol/exact_match": value})
        context.report(result, None)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    ray = pytest.importorskip("ray")
    root = tmp_path_factory.mktemp("report")
    claims = root / "claims"
    claims.mkdir()
    for name, d_model, seed, protocol, comparison, value, tolerance in (
            ("d8-s4", 8, 4, "100k", "at_least", 1.0, 0.0001),          # shares its cell with d8-s5
            ("d8-s5-nogrok", 8, 5, "validation", "at_most", 0.0, 0.5),
            ("d16-s1", 16, 1, "100k", "at_least", 1.0, 0.0001)):       # alone
        (claims / f"{name}.toml").write_text(CLAIM.format(name=name, d_model=d_model, seed=seed, protocol=protocol,
                                                          comparison=comparison, value=value, device="GPU",
                                                          tolerance=tolerance))
    uri = f"sqlite:///{root / 'mlruns.db'}"
    args = ReportArgs(claims=(str(claims),), seeds="4", name="test-report", experiment="test", tracking_uri=uri,
                      storage_path=str(root / "ray"), reports_dir=root / "reports", max_concurrent=2)
    try:
        rows = run_report(args, dataclasses.replace(ADDITION, body=planted_body))
    finally:
        ray.shutdown()
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("test").experiment_id], max_results=100)
    parent = next(r for r in runs if r.data.tags.get("role") == "report")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return rows.set_index("claim"), root / "reports" / "test-report", client, parent, children


def test_labels_follow_the_planted_outcomes(report):
    rows, *_ = report
    assert rows.loc["d8-s4", "cell"] == rows.loc["d8-s5-nogrok", "cell"] != rows.loc["d16-s1", "cell"]
    assert rows.loc["d8-s4", "rate"] == 0.5 and rows.loc["d8-s4", "label"] == "CLAIM REPRODUCED"  # seed 4 even
    nogrok = rows.loc["d8-s5-nogrok"]  # seed 5 odd: did not grok here either; half the cell's seeds did not
    assert nogrok["rate"] == 0.5 and nogrok["claimed_seed_value"] == 0.1 and nogrok["label"] == "CLAIM REPRODUCED"
    alone = rows.loc["d16-s1"]
    assert alone["rate"] == 1.0 and alone["seeds_run"] == 4 and alone["median_grokking_step"] == 200.0
    assert (rows.loc["d8-s4", "record_k"], rows.loc["d8-s4", "record_n"]) == (1, 2)


def test_the_report_files_and_the_mlflow_run(report):
    rows, folder, client, parent, children = report
    text = (folder / "report.md").read_text()
    assert "d8-s5-nogrok" in text and "core-hours" in text and "## Environment" in text
    assert "Every claimed seed ran in its claim's own mode." in text  # rewritten after the claimed seeds
    assert "11 seed runs" in text  # the cost counts the claimed seeds' runs beside the cells' 8
    page = (folder / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "d16-s1" in page
    assert parent.data.tags["role"] == "report" and parent.data.tags["claim.d16-s1"] == "CLAIM REPRODUCED"
    assert parent.data.tags["claim_labels"] == "3 CLAIM REPRODUCED"  # the counts, under a name without a dot
    assert len(children) == 4 + 4 + 3  # two cells x 4 seeds, three claimed seeds
    assert {c.info.run_name for c in children if "claimed" in c.info.run_name} == {  # beside their cells' runs
        "d8 300 steps s4 claimed (100k)", "d8 300 steps s5 claimed (validation)", "d16 300 steps s1 claimed (100k)"}
    grokked = {c.info.run_name: c.data.metrics.get("grokking_step") for c in children}
    assert grokked["d16 300 steps s0"] == grokked["d8 300 steps s2"] == 200.0  # as make compare reads it
    assert grokked["d8 300 steps s1"] is None  # an odd seed never grokked: no metric, as on a sweep's runs
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"claims.json", "figures"}
    table = client.load_table(parent.info.experiment_id, "claims.json", run_ids=[parent.info.run_id])
    assert sorted(table["claim"]) == sorted(rows.index)  # logged once, after the claimed seeds (log_table appends)
