"""Checks of the storage path before any trial runs: writable here, and seen by every node of a cluster."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from trainables.checks import ConfigError
from tune_jobs.runtime.settings import is_uri


class StorageError(ConfigError):
    """The storage path cannot hold the job's results and checkpoints; the message names it."""


KEEP_CHECKPOINTS = 5
"""Checkpoints kept per trial, by Tune and by a data-parallel trial's Ray Train run. The experiment state
that ``--resume`` restores names one of them and is saved only every so often: with 2 kept, a driver
killed on a loaded box (2 cores, three jobs) restored a state whose checkpoint the trial had already
deleted ("does not exist on storage anymore"), and the trial failed on every retry. A checkpoint of the
addition models is about 70 KB."""


def check_writable(storage: str) -> None:
    """A local storage folder can be created and written (a URI is left to its filesystem).

    Raises:
        StorageError: names the folder and the operating system's reason.
    """
    if is_uri(storage):
        return
    try:
        Path(storage).mkdir(parents=True, exist_ok=True)
        probe = Path(storage) / f".reprotune-write-{uuid.uuid4().hex}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise StorageError(f"storage_path {storage!r} is not writable: {error.strerror or error}; "
                           f"give --storage-path (STORAGE=) a folder you can write") from error


def check_shared_storage(storage: str, probe: Callable[[str, str], bool] | None = None) -> None:
    """Fail before any trial runs when a multi-node Ray cluster is given a folder not every node sees.

    A URI passes (its filesystem is shared by construction). For a folder, the driver writes a marker
    file there and a zero-CPU task pinned to each alive node looks for it (``probe(node_id, marker)``
    replaces the task in tests). One alive node: nothing to check.

    Raises:
        StorageError: names the folder and the nodes that do not see it.
    """
    nodes = [node["NodeID"] for node in ray.nodes() if node["Alive"]]
    if is_uri(storage) or len(nodes) < 2:
        return
    marker = Path(storage) / f".reprotune-shared-{uuid.uuid4().hex}"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("written by the driver to check that every node sees this folder\n")
    try:
        blind = [node for node in nodes if not (probe or _probe_on_node)(node, str(marker))]
    finally:
        marker.unlink(missing_ok=True)
    if blind:
        raise StorageError(
            f"storage_path {storage!r} is not shared: node(s) {', '.join(n[:12] for n in blind)} of this "
            f"{len(nodes)}-node cluster cannot see it, and Ray cannot keep checkpoints saved on several nodes "
            f"there. Give --storage-path a folder every node mounts (NFS) or a URI (s3://bucket/ray_results).")


@ray.remote(num_cpus=0)
def _exists(path: str) -> bool:
    return os.path.exists(path)


def _probe_on_node(node_id: str, marker: str) -> bool:
    strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
    return ray.get(_exists.options(scheduling_strategy=strategy).remote(marker), timeout=120)
