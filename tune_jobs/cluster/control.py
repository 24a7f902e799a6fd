"""Starting, checking and stopping the local cluster: ``up``, ``status``, ``down``."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from tune_jobs.cluster.nodes import (DEFAULT_PORT, DEFAULT_ROOT, MARKER_VAR, NODES, ClusterError, ClusterInfo,
                                     driver_env, env_file_text, start_command, temp_base, write_private)
from tune_jobs.cluster.processes import node_processes, stop_processes

def _state_path(root: Path) -> Path:
    return Path(root).resolve() / "cluster.json"


def read_state(root: Path) -> dict | None:
    """The state file of the cluster started from ``root`` (root, port, temp dirs, env), else None."""
    path = _state_path(root)
    return json.loads(path.read_text()) if path.is_file() else None


def _info(state: dict) -> ClusterInfo:
    return ClusterInfo(root=Path(state["root"]), address=state["env"]["RAY_ADDRESS"],
                       temp_dirs={node: Path(p) for node, p in state["temp_dirs"].items()}, env=state["env"])


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def up(root: Path = DEFAULT_ROOT, head_cpus: int = 1, worker_cpus: int = 1, port: int = DEFAULT_PORT,
       object_store_bytes: int = 256 * 2**20, timeout_s: float = 120) -> ClusterInfo:
    """Start the head and worker nodes, write ``root/cluster.env`` and wait until both are alive.

    Raises:
        ClusterError: a cluster from ``root`` is already running, ``port`` is taken, a ``ray start``
            fails, or the nodes are not alive within ``timeout_s`` seconds (the cluster is then stopped).
    """
    root = Path(root).resolve()
    state = read_state(root)
    if state:
        running = [p for d in state["temp_dirs"].values() for p in node_processes(Path(d))]
        if running:
            raise ClusterError(f"a cluster from {root} is already running (pids {running}); "
                               f"`python -m tune_jobs.cluster down --root {root}` stops it")
        down(root)
    if _port_in_use(port):
        raise ClusterError(f"port {port} on 127.0.0.1 is in use; choose another with --port")
    root.mkdir(parents=True, exist_ok=True)
    base = temp_base(root)
    temp_dirs = {node: base / node for node in NODES}
    env = driver_env(root, port)
    write_private(root / "auth_token", secrets.token_hex(32))
    state = {"root": str(root), "port": port, "temp_dirs": {n: str(p) for n, p in temp_dirs.items()}, "env": env}
    _state_path(root).write_text(json.dumps(state, indent=1) + "\n")
    (root / "cluster.env").write_text(env_file_text(env))
    for node, cpus in (("head", head_cpus), ("worker", worker_cpus)):
        node_env = {**os.environ, **env, MARKER_VAR: str(temp_dirs[node])}
        node_env.pop("RAY_ADDRESS")
        node_env.pop("RAY_AUTH_TOKEN", None)
        log = root / f"ray-start-{node}.log"
        with log.open("w") as out:
            done = subprocess.run(start_command(node, port, temp_dirs[node], cpus, object_store_bytes),
                                  env=node_env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
        if done.returncode:
            down(root)
            raise ClusterError(f"`ray start` of the {node} node exited {done.returncode}; see {log}")
    info = _info(state)
    try:
        _wait_alive(info, timeout_s)
    except ClusterError:
        down(root)
        raise
    return info


def _wait_alive(info: ClusterInfo, timeout_s: float) -> None:
    deadline, nodes = time.monotonic() + timeout_s, []
    while time.monotonic() < deadline:
        try:
            nodes = _alive_nodes(info, timeout_s=max(10.0, deadline - time.monotonic()))
        except ClusterError:
            nodes = []
        if {n["node"] for n in nodes} == set(NODES):
            return
        time.sleep(2)
    raise ClusterError(f"nodes alive after {timeout_s:.0f} s: {[n['node'] for n in nodes]}, expected {NODES}")


_NODES_SCRIPT = """
import json, ray
ray.init(configure_logging=False, log_to_driver=False)
print("REPROTUNE_NODES", json.dumps([{"id": n["NodeID"], "resources": n["Resources"]} for n in ray.nodes() if n["Alive"]]))
"""


def _alive_nodes(info: ClusterInfo, timeout_s: float = 60) -> list[dict]:
    """Alive nodes seen by a driver in a subprocess that joins with ``info.env`` only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | info.env
    try:
        done = subprocess.run([sys.executable, "-c", _NODES_SCRIPT], env=env, capture_output=True, text=True,
                              timeout=timeout_s, cwd=info.root)
    except subprocess.TimeoutExpired as error:
        raise ClusterError(f"no answer from {info.address} within {timeout_s:.0f} s") from error
    if done.returncode:
        raise ClusterError(f"cannot join {info.address}: {done.stderr.strip().splitlines()[-1:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPROTUNE_NODES ")]
    if not lines:
        raise ClusterError(f"no node list from the driver joining {info.address}: {done.stdout[-500:]!r}")
    nodes = json.loads(lines[-1].split(" ", 1)[1])
    for node in nodes:
        node["node"] = next((n for n in NODES if f"reprotune_{n}" in node["resources"]), "?")
    return nodes


def status(root: Path = DEFAULT_ROOT) -> list[dict]:
    """Alive nodes of the cluster from ``root``: ``[{"node": "head", "id": ..., "resources": {...}}, ...]``.

    Raises:
        ClusterError: no cluster was started from ``root``, or it does not answer.
    """
    state = read_state(root)
    if state is None:
        raise ClusterError(f"no cluster state in {Path(root).resolve()}; `python -m tune_jobs.cluster up` starts one")
    return _alive_nodes(_info(state))


def down(root: Path = DEFAULT_ROOT, grace_s: float = 10) -> list[int]:
    """Stop the processes of the cluster from ``root`` (SIGTERM, SIGKILL after ``grace_s`` s), worker
    first, and remove its temp dirs, state, token and env file. Returns the pids signalled."""
    root = Path(root).resolve()
    state = read_state(root)
    if state is None:
        return []
    pids = []
    for node in reversed(NODES):
        temp_dir = Path(state["temp_dirs"][node])
        node_pids = node_processes(temp_dir)
        stop_processes(node_pids, grace_s)
        pids += node_pids
        shutil.rmtree(temp_dir, ignore_errors=True)
    base = Path(state["temp_dirs"]["head"]).parent
    if base.is_dir() and not any(base.iterdir()):
        base.rmdir()
    for name in ("cluster.env", "auth_token", "cluster.json"):
        (root / name).unlink(missing_ok=True)
    return pids
