"""A sequential-seeds sweep on a local Ray: seeds per configuration between min and max, the decision
and its confidence sequence in the table and in MLflow, a crashed configuration's seeds not counted."""

from __future__ import annotations

import dataclasses

import pytest

from tests.mlflow_helpers import job_runs
from tests.system.test_sweep_smoke import SPACE
from tune_jobs.sweep_addition import SweepArgs, run_addition_sweep
from tune_jobs.verdicts.sequential import INTERVAL_KIND


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    ray = pytest.importorskip("ray")
    root = tmp_path_factory.mktemp("sequential")
    uri = f"sqlite:///{root / 'mlruns.db'}"
    args = SweepArgs(space="smoke", num_configs=2, name="test-sequential", experiment="test", tracking_uri=uri,
                     storage_path=root / "ray_results", max_concurrent=2, seeds="2..3", max_failures=0)
    try:
        table = run_addition_sweep(args, dataclasses.replace(SPACE, name="sequential"))
    finally:
        ray.shutdown()
    client, parent, children = job_runs(uri, "test")
    return table, client, parent, children


def test_each_configuration_ends_with_a_decision_and_its_interval(sweep):
    table, *_ = sweep
    by_device = table.set_index("train/device")
    assert set(table["verdict"]) == {"UNDECIDED"}  # 3 seeds decide nothing at alpha 0.05
    assert by_device.loc["meta", "errored"] == 3 and by_device.loc["meta", "seeds_run"] == 0
    trained = by_device.loc["cpu"]
    assert trained["seeds_run"] == 3 and trained["seeds"] == "0,1,2" and trained["cs_seeds"] == 3
    assert 0 <= trained["cs_low"] < trained["cs_high"] <= 1 and trained["interval"] == INTERVAL_KIND


def test_mlflow_holds_the_design_the_decisions_and_the_figure(sweep):
    table, client, parent, children = sweep
    assert len(children) == 6 and {c.info.status for c in children} == {"FAILED", "FINISHED"}
    params = parent.data.params
    assert params["space.seed_range"] == "2..3" and params["seeds.alpha"] == "0.05"
    assert params["seeds.reliable_bar"] == "0.8" and params["seeds.interval"] == INTERVAL_KIND
    for name in table["name"]:
        assert parent.data.tags[f"verdict.{name}"].startswith("UNDECIDED ") and " CS [" in parent.data.tags[f"verdict.{name}"]
    figures = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert "figures/confidence_sequences.png" in figures
