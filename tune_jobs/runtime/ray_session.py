"""Joining or starting Ray for a job, the resources its trials ask for, and the node a trial runs on."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any, Iterator

import ray
import ray._private.services as ray_services

from mlflow_utils import resolve_tracking_uri
from trainables.checks import ConfigError
from tune_jobs.runtime.resources import DRIVER_RESOURCE, DRIVER_SLOTS, NODE_LABEL
from tune_jobs.runtime.settings import RunSettings

def trial_resources(settings: RunSettings) -> dict[str, float]:
    """Ray resources of one trial: its CPUs and GPUs, or, for a data-parallel trial, one driver slot
    (its workers take the CPUs and GPUs)."""
    if settings.workers > 1:
        return {"cpu": 0, DRIVER_RESOURCE: 1}
    return {"cpu": settings.threads, "gpu": settings.gpus_per_trial}


def start_ray(settings: RunSettings) -> int:
    """Join ``settings.ray_address`` (or $RAY_ADDRESS), else start a local Ray; returns how many
    trials may run at once.

    Raises:
        ConnectionError: the cluster cannot be joined (names the address and the auth variables).
        ConfigError: a trial could never be placed on this cluster (names the numbers).
    """
    if not ray.is_initialized():
        address = settings.ray_address or os.environ.get("RAY_ADDRESS")
        # every worker sees the job's absolute tracking URI (user code in a trial may log to it)
        runtime_env = {"env_vars": {"MLFLOW_TRACKING_URI": resolve_tracking_uri(settings.tracking_uri)}}
        local = {} if address else {"resources": {DRIVER_RESOURCE: DRIVER_SLOTS}}
        try:
            with _own_session() if not address else contextlib.nullcontext():
                ray.init(address=address, include_dashboard=False, configure_logging=False,
                         runtime_env=runtime_env, **local)
        except ConnectionError as error:
            raise ConnectionError(
                f"ray_address {address!r}: cannot join the Ray cluster ({error}). Ray >= 2.59 clusters use "
                "token authentication: export RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH (or RAY_AUTH_TOKEN) "
                "before starting the job; for `make cluster-up`'s cluster: . .cluster/cluster.env") from error
    sigterm_as_sigint()  # ray.init put its own SIGTERM handler (log and abort) in place of ours
    check_placeable(settings, [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")])
    total = ray.cluster_resources()
    if settings.max_concurrent:
        return settings.max_concurrent
    if settings.gpus_per_trial > 0:
        return max(1, int(total.get("GPU", 0) // (settings.gpus_per_trial * settings.workers)))
    return max(1, int(total.get("CPU", 1) // (settings.threads * settings.workers)))


def check_placeable(settings: RunSettings, nodes: list[dict[str, float]]) -> None:
    """Refuse settings under which no trial (or no worker of one) fits on any node of the cluster.

    Args:
        nodes: each alive node's total resources (``ray.nodes()[i]['Resources']``).

    Raises:
        ConfigError: names the request and what the largest node has.
    """
    def most(key: str) -> float:
        return max((node.get(key, 0.0) for node in nodes), default=0.0)

    if settings.workers > 1 and not most(DRIVER_RESOURCE):
        raise ConfigError(f"workers={settings.workers}: data-parallel trials need the custom resource "
                          f"{DRIVER_RESOURCE!r} on a node of the cluster (e.g. ray start --head "
                          f"--resources='{{\"{DRIVER_RESOURCE}\": {DRIVER_SLOTS}}}')")
    if settings.threads > most("CPU"):
        raise ConfigError(f"threads={settings.threads}: a trial (or worker) needs {settings.threads} CPUs, but the "
                          f"largest node of the cluster has {most('CPU'):g}")
    if settings.gpus_per_trial > most("GPU"):
        raise ConfigError(f"gpus_per_trial={settings.gpus_per_trial:g}: a trial (or worker) needs that many GPUs, "
                          f"but the largest node of the cluster has {most('GPU'):g}")


def node_tags() -> dict[str, Any]:
    """``env/node_id``, ``env/node_ip`` and ``env/node`` (the node's ``reprotune-node`` label, set by
    ``make cluster-up``, else its IP) of the Ray node running this process (empty outside Ray)."""
    if not ray.is_initialized():
        return {}
    context = ray.get_runtime_context()
    labels = context.get_node_labels()
    return {"env/node_id": context.get_node_id(), "env/node_ip": ray.util.get_node_ip_address(),
            "env/node": labels.get(NODE_LABEL) or ray.util.get_node_ip_address()}


@contextlib.contextmanager
def _own_session() -> Iterator[None]:
    """Start the local Ray's processes (GCS, raylet and the workers it forks) in a session of their own,
    so a SIGTERM to the job's process group (``timeout``, systemd, Slurm, a closed terminal) reaches only
    the driver, which then stops like Ctrl-C while Ray still runs; Ray still ends them when the driver
    exits (its fate-sharing). Wraps ``ray._private.services.ConsolePopen`` (ray 2.60, pinned), the one
    place Ray spawns them."""
    popen = ray_services.ConsolePopen

    class SessionPopen(popen):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "start_new_session": True})

    ray_services.ConsolePopen = SessionPopen
    try:
        yield
    finally:
        ray_services.ConsolePopen = popen


def sigterm_as_sigint() -> Any:
    """Handle SIGTERM as Ctrl-C from now on (Tune then stops the trials and keeps their state for a
    resume); returns the handler it replaced."""
    return signal.signal(signal.SIGTERM, _raise_sigint)


def _raise_sigint(signum: int, frame: Any) -> None:
    signal.raise_signal(signal.SIGINT)
