"""The local two-node cluster (tune_jobs/cluster/): pure choices (ports, temp dirs, env file) fast, and
a real head + worker (marker `cluster`, `make test-cluster`): a driver joins with cluster.env only, runs
a task on each node, the worker is killed, and `down` leaves no process behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.system.faults import kill_node
from tune_jobs import cluster

RAY_DEFAULT_PORTS = {6379, 8265, 10001, 52365, 8076}
"""GCS, dashboard, Ray Client, dashboard agent, object manager in the launcher's examples."""


def test_short_root_keeps_temp_dirs_inside_it(tmp_path):
    root = Path("/tmp/r")
    assert cluster.temp_base(root) == root / "ray"


def test_long_root_gets_a_short_stable_temp_dir_that_fits_unix_sockets():
    root = Path("/tmp") / ("x" * 80) / ".cluster"
    base = cluster.temp_base(root)
    assert base == cluster.temp_base(root) and base.parent == Path("/tmp") and base.name.startswith("rt-")
    assert base != cluster.temp_base(root.parent / "other")
    socket = base / "worker" / "session_2026-11-21_15-04-50_579170_32552" / "sockets" / "plasma_store"
    assert len(str(socket)) <= 107


def test_ports_avoid_ray_defaults_and_never_collide():
    ports = {node: cluster.node_ports(cluster.DEFAULT_PORT, node) for node in cluster.NODES}
    assert ports["head"]["port"] == cluster.DEFAULT_PORT
    single = [p for node in ports.values() for name, p in node.items() if not name.endswith("worker-port")]
    assert len(single) == len(set(single)) and not RAY_DEFAULT_PORTS & set(single)
    ranges = sorted((n["min-worker-port"], n["max-worker-port"]) for n in ports.values())
    assert ranges[0][1] < ranges[1][0] and all(not lo <= p <= hi for lo, hi in ranges for p in single)
    assert ranges[1][1] < 10002, "Ray's default worker ports are 10002-19999"
    with pytest.raises(ValueError, match="port 65500"):
        cluster.node_ports(65500, "head")


def test_start_commands_carry_temp_dir_resources_and_every_port():
    head = cluster.start_command("head", 6390, Path("/tmp/rt/head"), 1, 2**28)
    worker = cluster.start_command("worker", 6390, Path("/tmp/rt/worker"), 1, 2**28)
    assert "--head" in head and "--address=127.0.0.1:6390" in worker
    assert "--temp-dir=/tmp/rt/worker" in worker and "--num-cpus=1" in worker
    assert '--resources={"reprotune_worker": 1}' in worker
    assert "--port=6390" in head and "--include-dashboard=false" in head
    for name, value in cluster.node_ports(6390, "worker").items():
        assert f"--{name}={value}" in worker


def test_env_file_sourced_by_sh_gives_the_driver_env(tmp_path):
    root = tmp_path / "with space"
    env = cluster.driver_env(root, 6390)
    assert env["RAY_ADDRESS"] == "127.0.0.1:6390" and env["RAY_AUTH_MODE"] == "token"
    assert env["RAY_AUTH_TOKEN_PATH"] == str(root.resolve() / "auth_token")
    path = tmp_path / "cluster.env"
    path.write_text(cluster.env_file_text(env))
    out = subprocess.run(["sh", "-c", f'. "{path}"; env'], capture_output=True, text=True, check=True).stdout
    sourced = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert {key: sourced[key] for key in env} == env


def test_node_processes_selects_by_marker_not_by_mention(tmp_path):
    temp_dir = tmp_path / "node"
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    ours = subprocess.Popen(sleep, env={**os.environ, cluster.MARKER_VAR: str(temp_dir)})
    bystander = subprocess.Popen(sleep + [str(temp_dir)])  # names the dir, but is no Ray process of ours
    try:
        assert cluster.node_processes(temp_dir) == [ours.pid]
        cluster.stop_processes([ours.pid], grace_s=5)
        assert ours.wait(timeout=5) == -15 and bystander.poll() is None
    finally:
        for proc in (ours, bystander):
            proc.kill()
            proc.wait()


def test_the_token_file_is_private_from_its_creation(tmp_path):
    path = tmp_path / "auth_token"
    path.write_text("old")
    path.chmod(0o644)
    before = os.umask(0)  # even with no umask to narrow it
    try:
        cluster.write_private(path, "secret")
    finally:
        os.umask(before)
    assert path.read_text() == "secret" and path.stat().st_mode & 0o777 == 0o600


def test_status_without_a_cluster_says_how_to_start_one(tmp_path):
    with pytest.raises(cluster.ClusterError, match="tune_jobs.cluster up"):
        cluster.status(tmp_path)


DRIVER = """
import json, ray
ray.init(configure_logging=False, log_to_driver=False)

@ray.remote(num_cpus=1)
def node_id():
    return ray.get_runtime_context().get_node_id()

alive = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
ran_on = {node: ray.get(node_id.options(resources={f"reprotune_{node}": 0.01}).remote())
          for node in ("head", "worker")}
print("RESULT", json.dumps({"alive": alive, "ran_on": ran_on}))
"""


def _listeners(pids: set[int]) -> list[str]:
    """Local addresses (``ss``'s ``addr:port``) of the TCP sockets the processes ``pids`` listen on."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split()[3] for line in out.splitlines() if any(f"pid={pid}," in line for pid in pids))


@pytest.mark.cluster
def test_local_cluster_up_join_kill_worker_down(tmp_path):
    port = int(os.environ.get("REPROTUNE_TEST_CLUSTER_PORT", 6790))
    info = cluster.up(tmp_path / ".cluster", port=port)
    try:
        assert info.address == f"127.0.0.1:{port}" and all(len(str(d)) <= 40 for d in info.temp_dirs.values())
        with pytest.raises(cluster.ClusterError, match="already running"):
            cluster.up(tmp_path / ".cluster", port=port)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env_file = info.root / "cluster.env"
        done = subprocess.run(["sh", "-c", f'. "{env_file}"; exec "{sys.executable}" -c "$0"', DRIVER], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads(next(l for l in done.stdout.splitlines() if l.startswith("RESULT ")).split(" ", 1)[1])
        by_node = {n: i for i, r in result["alive"].items() for n in ("head", "worker") if f"reprotune_{n}" in r}
        assert set(by_node) == {"head", "worker"} and len(result["alive"]) == 2
        assert all(result["alive"][i]["CPU"] == 1 for i in by_node.values())
        assert result["ran_on"] == by_node
        assert (info.root / "auth_token").stat().st_mode & 0o777 == 0o600

        # Ray 2.60's GCS and raylets listen on every interface (a loopback --node-ip-address is rewritten
        # to the host's): what guards them is the token. A driver without it, or with another, is refused.
        listening = _listeners({pid for d in info.temp_dirs.values() for pid in cluster.node_processes(d)})
        assert f"*:{port}" in listening or f"0.0.0.0:{port}" in listening, listening
        for extra in ({}, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}):
            stranger = subprocess.run([sys.executable, "-c", f"import ray; ray.init(address='127.0.0.1:{port}')"],
                                      env={**env, "HOME": str(tmp_path), **extra}, capture_output=True, text=True,
                                      timeout=120)
            assert stranger.returncode != 0 and "Authentication token is missing or incorrect" in stranger.stderr

        assert kill_node(info.root, "worker")
        assert not cluster.node_processes(info.temp_dirs["worker"])
        deadline = time.monotonic() + 60
        while [n["node"] for n in cluster.status(info.root)] != ["head"]:
            assert time.monotonic() < deadline, "the killed worker is still alive for the GCS after 60 s"
            time.sleep(2)
    finally:
        cluster.down(info.root)
    for temp_dir in info.temp_dirs.values():
        assert not cluster.node_processes(temp_dir) and not temp_dir.exists()
    left = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(info.temp_dirs["head"].parent) not in left
    assert not (info.root / "cluster.env").exists()
