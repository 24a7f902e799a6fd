"""What the MLflow UI reads from a job: tables whose JSON and CSV agree, a description, figures,
summary metrics, the parent's name, and the guide `make mlflow-ui` prints."""

from __future__ import annotations

import json

import pandas as pd
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient

from mlflow_utils import figure_link, sweep_run
from mlflow_utils.ui import guide
from mlflow_utils.views import runs_view
from tune_jobs.runtime.results import cell


def test_a_table_logs_the_same_values_to_json_and_csv(tmp_path):
    table = pd.DataFrame({"name": ["d8-ff28-lr0.015"], "model/d_model": [8], "train/curriculum": [cell([[0, 1, 3]])],
                          "train/lr": [0.015]})
    with sweep_run("s1", "exp", {}, {}, f"sqlite:///{tmp_path / 'm.db'}") as tracker:
        tracker.log_table(table, "verdict")
    root = MlflowClient(tracker.client.tracking_uri).download_artifacts(tracker.parent_run_id, "", str(tmp_path))
    logged = json.loads((tmp_path / "verdict.json").read_text())
    assert logged["columns"] == ["name", "model/d_model", "train/curriculum", "train/lr"]
    assert logged["data"] == [["d8-ff28-lr0.015", 8, "[[0, 1, 3]]", 0.015]]
    assert pd.read_csv(f"{root}/verdict.csv").iloc[0].tolist() == logged["data"][0]


def test_a_table_shown_rounded_keeps_full_precision_in_its_csv(tmp_path):
    table = pd.DataFrame({"name": ["a"], "mean_best_exact_match": [0.09699999999999998]})
    with sweep_run("s1", "exp", {}, {}, f"sqlite:///{tmp_path / 'm.db'}") as tracker:
        tracker.log_table(table, "verdict", shown=table.assign(mean_best_exact_match=[0.097]))
    root = MlflowClient(tracker.client.tracking_uri).download_artifacts(tracker.parent_run_id, "", str(tmp_path))
    assert json.loads((tmp_path / "verdict.json").read_text())["data"] == [["a", 0.097]]
    assert pd.read_csv(f"{root}/verdict.csv")["mean_best_exact_match"].tolist() == [0.09699999999999998]


def test_description_figure_summary_metrics_and_parent_name(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    figure = Figure()
    figure.add_subplot().plot([0, 1], [0, 1])
    with sweep_run("addition-smoke-1", "exp", {}, {}, uri, run_name="sweep-addition smoke") as tracker:
        child = tracker.start_trial_run("t1", "c s0", {}, {})
        tracker.log_metrics(child, {"val/exact_match": 0.5}, step=0)
        tracker.log_summary(child, {"config/success_rate": 2 / 3, "ignored": float("nan")})
        path = tracker.log_figure(figure, "figures/curve.png")
        tracker.set_description(tracker.parent_run_id, "**verdict** table")
        tracker.log_params(tracker.parent_run_id, {"job.seeds": [0, 1]})
        tracker.log_new_params(tracker.parent_run_id, {"job.seeds": [5], "job.concurrent_trials": 2})
        tracker.end_run(child)
    client = MlflowClient(uri)
    parent, run = client.get_run(tracker.parent_run_id), client.get_run(child)
    assert parent.info.run_name == "sweep-addition smoke" and parent.data.tags["sweep_id"] == "addition-smoke-1"
    assert parent.data.tags["mlflow.note.content"] == "**verdict** table"
    assert parent.data.params == {"job.seeds": "[0, 1]", "job.concurrent_trials": "2"}  # never changed once logged
    # a summary at step 0 is logged beside a reported step 0 (log_metrics would skip that step)
    assert run.data.metrics == {"val/exact_match": 0.5, "config/success_rate": 2 / 3}
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "figures")] == ["figures/curve.png"]
    assert path == "figures/curve.png"
    link = figure_link(parent.info.run_id, path, "curve")
    assert link == f"![curve](get-artifact?path=figures%2Fcurve.png&run_uuid={parent.info.run_id})"


def test_the_guide_points_at_the_runs_view_of_the_newest_job(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    client = MlflowClient(uri)
    assert "no job logged yet" in guide(client, "http://127.0.0.1:5000")[0]
    with sweep_run("old", "first", {}, {}, uri, run_name="sweep-addition default"):
        pass
    with sweep_run("new", "second", {}, {}, uri, run_name="sweep-vocab smoke") as tracker:
        pass
    lines = guide(client, "http://127.0.0.1:5000/")
    assert lines[0].startswith("newest job: sweep-vocab smoke (experiment 'second'")
    view = f"http://127.0.0.1:5000/#/experiments/{tracker.experiment_id}/runs?workflowType=machine_learning"
    assert lines[1].split() == ["runs", "view:", view]
    assert lines[2].endswith(f"#/experiments/{tracker.experiment_id}/runs/{tracker.parent_run_id}"
                             "?workflowType=machine_learning")
    assert [line[:5] for line in lines[-3:]] == ["  1. ", "  2. ", "  3. "]
    assert runs_view("http://h:1", "7", "k") == "http://h:1/#/experiments/7/runs?workflowType=machine_learning" \
                                                "&viewStateShareKey=k"
    tracker.share_views(["tags.`outcome`"], "config")
    lines = guide(client, "http://127.0.0.1:5000")
    assert lines[1].split()[-1] == f"{view}&viewStateShareKey=reprotune-runs"
    assert lines[3].split()[-1] == f"{view}&viewStateShareKey=by-config-new"


def test_shared_views_name_their_columns_filter_and_grouping(tmp_path):
    with sweep_run("job-1", "exp", {}, {}, f"sqlite:///{tmp_path / 'm.db'}") as tracker:
        keys = tracker.share_views(["tags.`outcome`", "metrics.`config/success_rate`"], "config")
    tags = MlflowClient(tracker.client.tracking_uri).get_experiment(tracker.experiment_id).tags
    runs, grouped = (json.loads(tags[f"mlflow.sharedViewState.{key}"]) for key in keys)
    assert keys == ("reprotune-runs", "by-config-job-1")
    assert runs == {"selectedColumns": ["tags.`outcome`", "metrics.`config/success_rate`"], "searchFilter": "",
                    "runsHiddenMode": "SHOW_ALL",
                    "columnOrder": ["attributes.`Run Name`", "tags.`outcome`", "metrics.`config/success_rate`"],
                    "columnWidths": {"attributes.`Run Name`": 280, "tags.`outcome`": 96,
                                     "metrics.`config/success_rate`": 192}}
    assert grouped["searchFilter"] == "tags.sweep_id = 'job-1' AND tags.role = 'trial'"
    assert grouped["groupBy"] == {"aggregateFunction": "average",
                                  "groupByKeys": [{"mode": "tag", "groupByData": "config"}]}
    # sorted by run name, not creation time: the UI then fetches no parent outside the filter (no
    # 'Additional runs' group); the runs view keeps MLflow's default sort, which nests seeds under parents
    assert (grouped["orderByKey"], grouped["orderByAsc"]) == ("tags.`mlflow.runName`", True)
    assert "orderByKey" not in runs
