"""Checks of a job's resources on this machine before Ray starts and before MLflow gets a run (issue 20)."""

from __future__ import annotations

import os
import socket

import torch

from trainables.checks import ConfigError
from tune_jobs.runtime.settings import RunSettings


RAY_ADDRESS_TIMEOUT_S = 10.0
"""How long a job waits for the Ray cluster at ``ray_address`` to accept a connection before refusing."""


def check_local_resources(settings: RunSettings, cpus: int | None = None, gpus: int | None = None) -> None:
    """Refuse a job joining a cluster whose address accepts no connection (``check_ray_address``), or a
    local job (no ``ray_address``, no ``$RAY_ADDRESS``) whose one trial needs more CPUs or GPUs than
    this machine has: Ray would keep it pending (or retry it) forever. A job joining a
    cluster is checked against the cluster's nodes once Ray joins (``ray_session.check_placeable``).

    Args:
        cpus: this machine's usable CPUs (default: the process's CPU affinity).
        gpus: its CUDA GPUs (default: ``torch.cuda.device_count()``).

    Raises:
        ConfigError: names the setting, its value and what this machine has.
    """
    address = settings.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        check_ray_address(address)
        return
    cpus = len(os.sched_getaffinity(0)) if cpus is None else cpus
    gpus = torch.cuda.device_count() if gpus is None else gpus
    need_cpus, need_gpus = settings.threads * settings.workers, settings.gpus_per_trial * settings.workers
    if need_cpus > cpus:
        raise ConfigError(f"threads={settings.threads} x workers={settings.workers}: a trial needs {need_cpus} CPUs "
                          f"but this machine has {cpus}; lower THREADS/WORKERS or give RAY_ADDRESS of a cluster")
    if need_gpus > gpus:
        raise ConfigError(f"gpus_per_trial={settings.gpus_per_trial:g} x workers={settings.workers}: a trial needs "
                          f"{need_gpus:g} GPUs but this machine has {gpus}; give RAY_ADDRESS of a cluster with GPUs")


def check_ray_address(address: str, timeout_s: float = RAY_ADDRESS_TIMEOUT_S) -> None:
    """Refuse a Ray address (``host:port`` or ``ray://host:port``) on which nothing accepts a TCP
    connection within ``timeout_s`` seconds; ``auto``, ``local`` and addresses without a port are left
    to ``ray.init``.

    Raises:
        ConfigError: names the address and what failed.
    """
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise ConfigError(f"ray_address {address!r}: no Ray cluster answers there within {timeout_s:g} s ({error}); "
                          "start it (make cluster-up) or unset RAY_ADDRESS for a local Ray") from None
