"""One job per name at a time: an exclusive lock beside the job's Tune folder, held while it runs (issue 20)."""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from trainables.checks import ConfigError
from tune_jobs.runtime.settings import RunSettings, is_uri


@contextmanager
def job_lock(settings: RunSettings, name: str) -> Iterator[None]:
    """Hold ``fcntl.flock`` on ``<storage_path>/<name>.lock`` for the ``with`` block (released by the
    kernel if the process dies), so that a second job of the same name, new or ``--resume``, cannot share
    (and overwrite) the first's Tune folder and Optuna study while it runs. Storage given as a URI
    (s3://...) has no local lock.

    Raises:
        ConfigError: another process holds the lock (names the job and the lock file).
    """
    storage = settings.storage()
    if is_uri(storage):
        yield
        return
    lock = Path(storage) / f"{name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"name {name!r}: another job of that name is running ({lock} is locked); wait for "
                              f"it, or give another --name") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
