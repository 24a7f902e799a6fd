"""A local two-node Ray cluster (head + one worker) on this machine, so cluster mode is testable here.

    python -m tune_jobs.cluster up        # or: make cluster-up
    python -m tune_jobs.cluster status
    python -m tune_jobs.cluster down

Each node has its own temp dir, its own ports (none of Ray's defaults, so other users' Ray on the same
machine is untouched), one CPU and a custom resource naming it (``reprotune_head``/``reprotune_worker``).
Token authentication (Ray >= 2.59) is on with a token of our own in ``<root>/auth_token``, never
``~/.ray/auth_token``: ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN_PATH`` go to both ``ray start``
processes and, through ``<root>/cluster.env``, to every driver. ``down`` (and the fault tests' ``kill_node``) signal only
the processes whose environment carries this cluster's marker variable, or Ray programs whose command
line names one of its temp dirs; ``ray stop`` is never used (it stops every Ray on the machine).
"""

from __future__ import annotations

from tune_jobs.cluster.control import down, read_state, status, up
from tune_jobs.cluster.nodes import (DEFAULT_PORT, DEFAULT_ROOT, MARKER_VAR, NODES, ClusterError, ClusterInfo,
                                     driver_env, env_file_text, node_ports, node_resources, start_command, temp_base,
                                     write_private)
from tune_jobs.cluster.processes import node_processes, stop_processes

__all__ = ["DEFAULT_PORT", "DEFAULT_ROOT", "MARKER_VAR", "NODES", "ClusterError", "ClusterInfo", "down", "driver_env",
           "env_file_text", "node_ports", "node_processes", "node_resources", "read_state", "start_command", "status",
           "stop_processes", "temp_base", "up", "write_private"]
