"""A local two-node Ray cluster (head + one worker) on this machine, so cluster mode is testable here.

    python -m tune_jobs.cluster up        # or: make cluster-up
    python -m tune_jobs.cluster status
    python -m tune_jobs.cluster down

Each node has its own temp dir, its own ports (none of Ray's defaults, so other users' Ray on the same
machine is untouched), one CPU and a custom resource naming it (``reprotune_head``/``reprotune_worker``).
Token authentication (Ray >= 2.59) is on with a token of our own in ``<root>/auth_token``, never
``~/.ray/auth_token``: ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN_PATH`` go to both ``ray start``
processes and, through ``<root>/cluster.env``, to every driver. ``down`` and ``kill_node`` signal only
the processes whose environment carries this cluster's marker variable, or Ray programs whose command
line names one of its temp dirs; ``ray stop`` is never used (it stops every Ray on the machine).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from trainables.paths import PROJECT_ROOT
from tune_jobs.runtime.resources import DRIVER_RESOURCE, DRIVER_SLOTS, NODE_LABEL

DEFAULT_ROOT = PROJECT_ROOT / ".cluster"
DEFAULT_PORT = 6390
NODES = ("head", "worker")
MARKER_VAR = "REPROTUNE_CLUSTER_NODE"
"""Environment variable set on each ``ray start``; every process of the node inherits it."""
MAX_TEMP_DIR_CHARS = 40
"""Ray puts unix sockets at <temp dir>/session_<date>_<time>_<us>_<pid>/sockets/<name> (about 65 chars
after the temp dir) and a socket path has at most 107 characters (sun_path)."""
PORTS_PER_NODE = 20
WORKER_PORTS = 100
"""Worker port range per node: <port> + 100 + 100 * node index, 100 ports wide."""


class ClusterError(RuntimeError):
    """The local cluster cannot be started, reached or stopped as asked."""


@dataclass(frozen=True)
class ClusterInfo:
    """Where a running local cluster lives and what a driver needs to join it."""

    root: Path
    """Directory of the state file, token and ``cluster.env``."""
    address: str
    """GCS address, host:port (what ``ray.init(address=...)`` and ``RAY_ADDRESS`` take)."""
    temp_dirs: dict[str, Path]
    """Ray temp dir of each node, ``{"head": ..., "worker": ...}``."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment a driver needs: RAY_ADDRESS, RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH, REPROTUNE_CLUSTER_ROOT."""


def temp_base(root: Path) -> Path:
    """Parent of the nodes' temp dirs: ``root/ray`` if short enough for Ray's unix sockets, else
    ``/tmp/rt-<first 10 hex of sha1(root)>`` (stable for a given root, recorded in the state file)."""
    root = Path(root).resolve()
    base = root / "ray"
    if len(str(base / "worker")) <= MAX_TEMP_DIR_CHARS:
        return base
    return Path("/tmp") / f"rt-{hashlib.sha1(str(root).encode()).hexdigest()[:10]}"


def node_ports(port: int, node: str) -> dict[str, int]:
    """Every port of ``node`` as ``ray start`` option -> value; the head's GCS is on ``port`` itself.

    Raises:
        ValueError: ``port`` leaves no room for the 300 ports the cluster spans, or ``node`` is unknown.
    """
    if not 1024 <= port <= 65535 - 100 - WORKER_PORTS * len(NODES):
        raise ValueError(f"port {port} must be in [1024, {65535 - 100 - WORKER_PORTS * len(NODES)}]")
    index = NODES.index(node)
    names = ("node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
             "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port")
    ports = {name: port + 1 + PORTS_PER_NODE * index + i for i, name in enumerate(names)}
    if node == "head":
        ports |= {"port": port, "ray-client-server-port": port + 10, "dashboard-port": port + 11}
    ports["min-worker-port"] = port + 100 + WORKER_PORTS * index
    ports["max-worker-port"] = ports["min-worker-port"] + WORKER_PORTS - 1
    return ports


def node_resources(node: str) -> dict[str, int]:
    """Custom resources of a node: its name, and on the head the driver slots of data-parallel trials."""
    return {f"reprotune_{node}": 1, **({DRIVER_RESOURCE: DRIVER_SLOTS} if node == "head" else {})}


def start_command(node: str, port: int, temp_dir: Path, cpus: int, object_store_bytes: int) -> list[str]:
    """The ``ray start`` command line of ``node`` (own temp dir and ports, one named resource and label).

    No ``--node-ip-address=127.0.0.1``: Ray 2.60 rewrites a loopback address to the host's
    (``ray._private.services.resolve_ip_for_localhost``), and its GCS and raylet gRPC servers listen
    on every interface whatever they are given (measured by ``tests/system/test_cluster.py``: ``ss``
    shows ``*:<port>`` with and without the option). What guards those ports is token authentication:
    a driver without this cluster's token is refused (the same test)."""
    ray = str(Path(sys.executable).with_name("ray"))
    command = [ray, "start", "--head" if node == "head" else f"--address=127.0.0.1:{port}",
               f"--temp-dir={temp_dir}", f"--num-cpus={cpus}", "--num-gpus=0",
               f"--resources={json.dumps(node_resources(node))}", f"--labels={NODE_LABEL}={node}",
               f"--object-store-memory={object_store_bytes}", "--disable-usage-stats"]
    ports = node_ports(port, node)
    if node == "head":
        command.append("--include-dashboard=false")
        if not _has_ray_client():
            ports.pop("ray-client-server-port")  # ray start refuses the option without ray[client]
    return command + [f"--{name}={value}" for name, value in ports.items()]


def _has_ray_client() -> bool:
    """Whether ray[client] is installed (``ray start --head`` then serves Ray Client, on 10001 by default)."""
    return importlib.util.find_spec("grpc") is not None  # what ray._private.utils.get_ray_client_dependency_error checks


def driver_env(root: Path, port: int) -> dict[str, str]:
    """What a driver on this machine needs to join the cluster (token by path, never by value)."""
    root = Path(root).resolve()
    return {"RAY_ADDRESS": f"127.0.0.1:{port}", "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(root / "auth_token"), "REPROTUNE_CLUSTER_ROOT": str(root)}


def env_file_text(env: dict[str, str]) -> str:
    """``env`` as shell ``export`` lines, each value quoted for ``sh``."""
    return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in env.items())


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file that only its owner can read, mode 0600 from its creation (a file
    already there is removed first: ``O_CREAT`` would keep its mode)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def _state_path(root: Path) -> Path:
    return Path(root).resolve() / "cluster.json"


def _read_state(root: Path) -> dict | None:
    path = _state_path(root)
    return json.loads(path.read_text()) if path.is_file() else None


def _info(state: dict) -> ClusterInfo:
    return ClusterInfo(root=Path(state["root"]), address=state["env"]["RAY_ADDRESS"],
                       temp_dirs={node: Path(p) for node, p in state["temp_dirs"].items()}, env=state["env"])


def _proc_text(pid: int, name: str) -> str:
    """``/proc/<pid>/<name>`` with NULs as spaces; "" when the process is gone or unreadable."""
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, reaped or not, counts as dead)."""
    stat = _proc_text(pid, "stat")
    return bool(stat) and stat.rsplit(")", 1)[-1].split()[0] != "Z"


def node_processes(temp_dir: Path, marker_var: str = MARKER_VAR) -> list[int]:
    """Pids of the live processes of the Ray whose temp dir is ``temp_dir``: those whose environment sets
    ``marker_var`` to it (everything ``ray start`` and the raylet spawn inherits our marker; a driver's
    local Ray inherits its ``RAY_TMPDIR``), and Ray processes (``ray::*`` or a program under the ray
    package) whose command line names ``temp_dir``. Linux ``/proc``."""
    marker, found = f" {marker_var}={temp_dir} ", []
    for pid in (int(d) for d in os.listdir("/proc") if d.isdigit()):
        if pid == os.getpid() or not _alive(pid):
            continue
        argv = _proc_text(pid, "cmdline").split(" ")
        ray_program = argv[0].startswith("ray::") or any(f"{os.sep}ray{os.sep}" in arg for arg in argv[:2])
        if marker in " " + _proc_text(pid, "environ") or (ray_program and str(temp_dir) in " ".join(argv)):
            found.append(pid)
    return found


def stop_processes(pids: list[int], grace_s: float) -> None:
    """SIGTERM ``pids``, then SIGKILL what is left after ``grace_s`` seconds (``grace_s`` 0: SIGKILL now)."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5)) if grace_s else ((signal.SIGKILL, 5),):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while (pids := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not pids:
            return


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
    state = _read_state(root)
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
    state = _read_state(root)
    if state is None:
        raise ClusterError(f"no cluster state in {Path(root).resolve()}; `python -m tune_jobs.cluster up` starts one")
    return _alive_nodes(_info(state))


def kill_node(root: Path, node: str) -> list[int]:
    """SIGKILL every process of ``node`` ("head" or "worker"): raylet, its workers and agents (fault
    injection). Returns the pids killed. Raises ClusterError when no cluster was started from ``root``."""
    state = _read_state(root)
    if state is None or node not in state["temp_dirs"]:
        raise ClusterError(f"no {node!r} node recorded in {Path(root).resolve()}")
    pids = node_processes(Path(state["temp_dirs"][node]))
    stop_processes(pids, grace_s=0)
    return pids


def down(root: Path = DEFAULT_ROOT, grace_s: float = 10) -> list[int]:
    """Stop the processes of the cluster from ``root`` (SIGTERM, SIGKILL after ``grace_s`` s), worker
    first, and remove its temp dirs, state, token and env file. Returns the pids signalled."""
    root = Path(root).resolve()
    state = _read_state(root)
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


def main(argv: list[str] | None = None) -> int:
    """CLI: ``up``, ``down``, ``status`` (``--root``, ``--port``, ``--head-cpus``, ``--worker-cpus``)."""
    parser = argparse.ArgumentParser(prog="python -m tune_jobs.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="state, token and cluster.env (default %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="head GCS port; the cluster spans port..port+299")
    parser.add_argument("--head-cpus", type=int, default=1)
    parser.add_argument("--worker-cpus", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            info = up(args.root, args.head_cpus, args.worker_cpus, args.port)
            print(f"cluster up at {info.address}; a driver needs: . {info.root / 'cluster.env'}")
        elif args.command == "down":
            print(f"stopped {len(down(args.root))} processes")
        for node in status(args.root) if args.command != "down" else ():
            print(f"{node['node']:<7} alive  {node['id'][:12]}  {json.dumps(node['resources'], sort_keys=True)}")
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
