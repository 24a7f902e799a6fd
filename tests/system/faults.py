"""Harness of the fault-injection suite: sweeps run as real driver processes, each with its own Ray
temp dir (so killing "our" Ray never touches another user's), and readers of what they left in
Tune's storage and in MLflow."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from trainables.paths import PROJECT_ROOT
from tune_jobs import cluster


def kill_node(root: Path, node: str) -> list[int]:
    """SIGKILL every process of the local cluster's ``node`` ("head" or "worker"): raylet, its workers
    and agents (a preempted node). Returns the pids killed.

    Raises:
        ClusterError: no cluster was started from ``root``, or it has no such node.
    """
    state = cluster.read_state(root)
    if state is None or node not in state["temp_dirs"]:
        raise cluster.ClusterError(f"no {node!r} node recorded in {Path(root).resolve()}")
    pids = cluster.node_processes(Path(state["temp_dirs"][node]))
    cluster.stop_processes(pids, grace_s=0)
    return pids


@dataclass
class Sweep:
    """One sweep job of the suite: its CLI arguments, storage, store and Ray temp dir."""

    root: Path
    name: str
    args: list[str]
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rf-", dir="/tmp")))
    """RAY_TMPDIR of the driver's local Ray: short (Ray's socket paths are limited to 107 bytes)."""
    server: str | None = None
    """Tracking server URI; default a SQLite file in ``root``."""

    @property
    def storage(self) -> Path:
        return self.root / "ray_results"

    @property
    def tracking_uri(self) -> str:
        return self.server or f"sqlite:///{self.root / 'mlruns.db'}"

    def command(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", "tune_jobs.sweep_addition", *self.args, "--name", self.name,
                "--experiment", "faults", "--tracking-uri", self.tracking_uri, "--storage-path", str(self.storage),
                *extra]

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
        return {**env, "RAY_TMPDIR": str(self.tmp), "PYTHONUNBUFFERED": "1", **extra}

    def start(self, *extra: str, **env: str) -> subprocess.Popen:
        """The driver, in its own session so the whole job (its local Ray included) can be killed."""
        log_path = self.root / f"driver-{time.monotonic_ns()}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(self.command(*extra), cwd=PROJECT_ROOT, env=self.env(**env), stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        process.log_path = log_path
        return process

    def run(self, *extra: str, timeout_s: float = 900, **env: str) -> str:
        """Run the driver to the end; returns its output. Raises AssertionError on a non-zero exit."""
        process = self.start(*extra, **env)
        try:
            process.wait(timeout_s)
        finally:
            self.kill_ray()
        output = self.output(process)
        assert process.returncode == 0, output[-4000:]
        return output

    @staticmethod
    def output(process: subprocess.Popen) -> str:
        return process.log_path.read_text()

    def kill_ray(self) -> int:
        """SIGKILL every process of this sweep's Ray (found by its temp dir); returns how many."""
        pids = cluster.node_processes(self.tmp, marker_var="RAY_TMPDIR")
        cluster.stop_processes(pids, grace_s=0)
        return len(pids)

    def cleanup(self) -> None:
        self.kill_ray()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- what Tune stored -----------------------------------------------------------------------------
    def results(self) -> dict[str, list[dict]]:
        """trial id -> the results Tune stored for it so far (result.json lines)."""
        found = {}
        for path in self.storage.glob(f"{self.name}/*/result.json"):
            rows = []
            for line in path.read_text().splitlines():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:  # a line being written
                    break
            found[path.parent.name] = rows
        return found

    def wait_for(self, condition: Callable[[dict[str, list[dict]]], object], process: subprocess.Popen,
                 timeout_s: float = 600, what: str = "") -> object:
        """Poll the stored results until ``condition`` returns something truthy (returned)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = condition(self.results())
            if value:
                return value
            if process.poll() is not None:
                raise AssertionError(f"the driver exited ({process.returncode}) before {what}")
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")


def kill_process_group(process: subprocess.Popen) -> None:
    """SIGKILL a driver and everything in its session (a closed laptop)."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


def mlflow_trials(tracking_uri: str, experiment: str = "faults") -> list[dict]:
    """Every trial run of the experiment with its status, tags and full metric histories."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], "tags.role = 'trial'", max_results=1000)
    out = []
    for run in runs:
        histories = {key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
                     for key in run.data.metrics}
        out.append({"run_id": run.info.run_id, "status": run.info.status, "tags": run.data.tags,
                    "params": run.data.params, "histories": histories})
    return out


def by_replicate(trials: list[dict]) -> dict[tuple[str, str], dict]:
    """(config id, seed) -> trial run; asserts each replicate has exactly one run."""
    keyed = {}
    for trial in trials:
        key = (trial["tags"]["config_id"], trial["tags"]["seed"])
        assert key not in keyed, f"replicate {key} has two MLflow runs"
        keyed[key] = trial
    return keyed


DETERMINISTIC = ("train/loss", "val/exact_match", "val/token_accuracy", "val/best_exact_match", "test/exact_match",
                 "lr", "success", "objective")
"""Metrics a resumed trial must reproduce exactly (timing metrics are not)."""


def assert_sound(trials: list[dict]) -> None:
    """No run RUNNING, every run FINISHED, no metric logged twice at a step."""
    assert trials, "no trial runs in MLflow"
    for trial in trials:
        assert trial["status"] == "FINISHED", (trial["tags"].get("trial_id"), trial["status"])
        for key, history in trial["histories"].items():
            steps = [step for step, _ in history]
            assert len(steps) == len(set(steps)), f"{key} logged twice at a step in {trial['tags']['trial_id']}"


def assert_same_results(faulted: list[dict], baseline: list[dict]) -> None:
    """The same replicates as the uninterrupted baseline, with bit-identical deterministic metrics."""
    got, want = by_replicate(faulted), by_replicate(baseline)
    assert sorted(got) == sorted(want)
    for key, run in want.items():
        for metric in DETERMINISTIC:
            if metric in run["histories"]:
                assert sorted(got[key]["histories"][metric]) == sorted(run["histories"][metric]), (key, metric)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """A light tracking server (one worker, no job execution) on ``port`` over a SQLite file in ``root``;
    ``stop`` kills its whole process group, ``start`` brings it back on the same store."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root, self.port = root, port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60) -> "MlflowServer":
        import urllib.request

        command = [str(Path(sys.executable).parent / "mlflow"), "server", "--workers", "1", "--host", "127.0.0.1",
                   "--port", str(self.port), "--backend-store-uri", f"sqlite:///{self.root / 'server.db'}",
                   "--artifacts-destination", str(self.root / "server-artifacts"), "--serve-artifacts"]
        with open(self.root / "server.log", "a") as log:
            self.process = subprocess.Popen(command, env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.uri}/health", timeout=2)
                return self
            except OSError:
                assert self.process.poll() is None, (self.root / "server.log").read_text()[-2000:]
                time.sleep(0.5)
        raise AssertionError(f"mlflow server on {self.uri} did not answer in {timeout_s} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)


def record(scenario: str, **figures: object) -> None:
    """Append a scenario's measured figures to $REPROTUNE_FAULT_FIGURES (JSON lines) when it is set
    (``make test-faults`` sets it; the README's table quotes them)."""
    path = os.environ.get("REPROTUNE_FAULT_FIGURES")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({"scenario": scenario, "at": time.strftime("%Y-%m-%d %H:%M:%S"), **figures}) + "\n")


def failed_calls(output: str) -> int:
    """The driver's count of MLflow calls that failed (and were retried), from its last line about it."""
    import re

    counts = re.findall(r"MLflow calls that failed: (\d+)", output)
    return int(counts[-1]) if counts else -1
