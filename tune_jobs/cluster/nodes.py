"""The local cluster's pure choices: its nodes' ports, temp dirs, resources, ``ray start`` lines and driver env."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shlex
import sys
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
