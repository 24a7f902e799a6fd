"""The local cluster's command line: ``python -m tune_jobs.cluster up|down|status`` (``make cluster-up``...)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from tune_jobs.cluster.control import down, status, up
from tune_jobs.cluster.nodes import DEFAULT_PORT, DEFAULT_ROOT, ClusterError


@dataclass(frozen=True)
class ClusterArgs:
    """Start, check or stop the local two-node Ray cluster (docs/cluster.md)."""

    command: tyro.conf.Positional[Literal["up", "down", "status"]]
    """up: start head and worker; status: the alive nodes; down: stop them and remove their state."""
    root: Path = DEFAULT_ROOT
    """Folder of the cluster's state, token and cluster.env."""
    port: int = DEFAULT_PORT
    """Head GCS port; the cluster spans port..port+299."""
    head_cpus: int = 1
    """CPUs of the head node."""
    worker_cpus: int = 1
    """CPUs of the worker node."""


def main(argv: list[str] | None = None) -> int:
    """Run ``up``, ``down`` or ``status``; an error is one line on stderr and exit 1."""
    args = tyro.cli(ClusterArgs, args=argv, prog="python -m tune_jobs.cluster")
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
