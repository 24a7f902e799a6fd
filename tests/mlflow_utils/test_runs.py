"""Run lifecycle in mlflow_utils: nothing left RUNNING whatever ends the block."""

import pytest
from mlflow.tracking import MlflowClient

from mlflow_utils import TrackingError, metric_step, resolve_tracking_uri, sweep_run


@pytest.mark.parametrize("exit_with, parent_status", [(None, "FINISHED"), (RuntimeError("boom"), "FAILED"),
                                                       (KeyboardInterrupt(), "KILLED"), (SystemExit(143), "KILLED")])
def test_parent_and_children_are_closed(tmp_path, exit_with, parent_status):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    try:
        with sweep_run("s1", "exp", {"a": 1}, {"t": "x"}, uri) as tracker:
            child = tracker.start_trial_run("trial-1", "c1", {"p": 2}, {"seed": 0})
            tracker.log_metrics(child, {"val/exact_match": 0.5, "note": "text"}, step=10)
            if exit_with is not None:
                raise exit_with
    except (RuntimeError, KeyboardInterrupt, SystemExit):
        pass
    client = MlflowClient(uri)
    runs = {r.data.tags["role"]: r for r in client.search_runs([tracker.experiment_id])}
    assert runs["sweep"].info.status == parent_status
    assert runs["trial"].info.status == "KILLED"  # left open by the block: closed on exit
    assert runs["trial"].data.metrics == {"val/exact_match": 0.5}


def test_a_trial_run_is_found_again_not_duplicated(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    with sweep_run("s1", "exp", {}, {}, uri) as tracker:
        first = tracker.start_trial_run("trial-1", "c1", {"p": 2}, {})
        tracker.log_metrics(first, {"val/exact_match": 0.5}, step=10)
        tracker.end_run(first)
    with sweep_run("s1", "exp", {}, {}, uri) as again:  # a resumed sweep
        assert again.parent_run_id == tracker.parent_run_id
        second = again.start_trial_run("trial-1", "c1", {"p": 2}, {})
        again.log_metrics(second, {"val/exact_match": 0.7}, step=10)  # a step logged before: skipped
        again.log_metrics(second, {"val/exact_match": 0.9}, step=20)
        again.end_run(second)
    client = MlflowClient(uri)
    assert second == first
    assert [(m.step, m.value) for m in client.get_metric_history(first, "val/exact_match")] == [(10, 0.5), (20, 0.9)]


def test_a_replicate_forgotten_with_a_killed_driver_keeps_one_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    replicate = {"config_id": "c1", "seed": 3}
    with sweep_run("s1", "exp", {}, {}, uri) as tracker:
        orphan = tracker.start_trial_run("old", "c1-seed3", {}, replicate)
        tracker.log_metrics(orphan, {"train/loss": 2.0}, step=0)
        tracker.client.update_run(orphan, status="RUNNING")  # the driver died: nothing closed it
        # a new trial of the same replicate while the old one is still live is another run
        twin = tracker.start_trial_run("twin", "c1-seed3", {}, replicate, live_trial_ids={"old", "twin"})
        assert twin != orphan
        tracker.end_run(twin)
        tracker.client.update_run(orphan, status="RUNNING")
        # the restored searcher suggests the replicate again under a new id: the orphan is adopted
        adopted = tracker.start_trial_run("new", "c1-seed3", {}, replicate, live_trial_ids={"new"})
        tracker.log_metrics(adopted, {"train/loss": 2.0}, step=0)  # re-trained from scratch: skipped
        tracker.log_metrics(adopted, {"train/loss": 1.0}, step=100)
        tracker.end_run(adopted)
    client = MlflowClient(uri)
    run = client.get_run(adopted)
    assert adopted == orphan and run.data.tags["trial_id"] == "new" and run.data.tags["previous_trial_ids"] == "old"
    assert [(m.step, m.value) for m in client.get_metric_history(adopted, "train/loss")] == [(0, 2.0), (100, 1.0)]
    assert tracker.find_trial_run("old") is None and tracker.find_trial_run("new") == adopted


def test_relative_uris_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri("sqlite:///rel.db") == f"sqlite:///{tmp_path / 'rel.db'}"
    assert resolve_tracking_uri("runs") == (tmp_path / "runs").as_uri()
    assert resolve_tracking_uri("http://host:5000") == "http://host:5000"
    with pytest.raises(TrackingError, match="in-memory SQLite store cannot be shared"):
        resolve_tracking_uri("sqlite:///:memory:")


def test_unreachable_server_fails_fast(tmp_path):
    with pytest.raises(TrackingError, match="http://127.0.0.1:9 .*is not reachable|not reachable"):
        with sweep_run("s", "e", {}, {}, "http://127.0.0.1:9"):
            pass


def test_a_step_mlflow_cannot_store_is_refused_before_any_write(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    with sweep_run("s1", "exp", {}, {}, uri) as tracker:
        child = tracker.start_trial_run("trial-1", "c1", {}, {})
        for step in (float("nan"), float("inf"), 1e400, 10**30, -1, 2.5, "3", None, True):
            with pytest.raises(ValueError, match=r"step .* cannot be logged: MLflow takes an integer in \[0, 2\*\*63\)"):
                tracker.log_metrics(child, {"val/exact_match": 0.5}, step=step)
        assert metric_step(2**63 - 1) == 2**63 - 1 and metric_step(10.0) == 10
        tracker.log_metrics(child, {"a": float("inf"), "b": 10**400, "c": float("nan"), "d": 0.25}, step=10)
    assert MlflowClient(uri).get_run(child).data.metrics == {"d": 0.25}  # what MLflow cannot store is left out
