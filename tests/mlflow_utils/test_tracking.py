"""A new SQLite store is created once: jobs starting at the same moment on it do not race on its schema."""

from __future__ import annotations

import subprocess
import sys
import time

from mlflow.tracking import MlflowClient

from trainables.paths import PROJECT_ROOT

JOB = """
import pathlib, sys, time
from mlflow_utils import sweep_run
go = pathlib.Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.01)
with sweep_run(sys.argv[3], "shared", {}, {}, sys.argv[1]) as tracker:
    tracker.end_run(tracker.start_trial_run("t", "t", {}, {}))
print("ok", flush=True)
"""
"""What a job does first: open its parent run (store created and migrated on first use) and one child."""


def test_three_jobs_starting_at_once_on_a_new_sqlite_store_all_succeed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'new' / 'mlruns.db'}"
    go = tmp_path / "go"
    jobs = [subprocess.Popen([sys.executable, "-c", JOB, uri, str(go), f"job-{i}"], cwd=PROJECT_ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(3)]
    for job in jobs:
        assert job.stdout.readline() == "ready\n"  # every process has imported MLflow: they start together
    go.touch()
    outputs = [job.communicate(timeout=300) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    assert all(out.endswith("ok\n") for out, _ in outputs)
    client = MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "shared"]
    parents = client.search_runs([experiment.experiment_id], "tags.role = 'sweep'")
    assert sorted(run.info.run_name for run in parents) == ["job-0", "job-1", "job-2"]
    assert (tmp_path / "new" / "mlruns.db.lock").is_file()
