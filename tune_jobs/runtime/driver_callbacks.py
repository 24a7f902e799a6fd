"""Tune callbacks whose state stays in this driver through ``Tuner.restore``, bound for one fit only.

Tune pickles its callbacks into the experiment's ``tuner.pkl``; ``Tuner.restore`` unpickles them in
the new driver, where a copy must write through this driver's state (its live MLflow tracker, the
statuses it records), not a stale one. A ``DriverCallback`` pickles as its key alone; inside
``bound(callbacks)`` an unpickled copy adopts the state of the bound callback of its class and key.
The binding ends with the fit: nothing outlives the job.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from ray import tune

_BOUND: dict[tuple[str, str], "DriverCallback"] = {}
"""The callbacks of the fit in progress, by (class name, key); emptied when the fit ends."""


class DriverCallback(tune.Callback):
    """A callback that pickles as ``key`` and, unpickled, shares the bound live callback's state."""

    def __init__(self, key: str) -> None:
        self.key = key
        """What names this callback across a restore (e.g. the sweep id or the experiment's name)."""

    def __getstate__(self) -> dict[str, Any]:
        return {"key": self.key}

    def __setstate__(self, state: dict[str, Any]) -> None:
        live = _BOUND.get((type(self).__name__, state["key"]))
        if live is None:
            raise RuntimeError(f"{type(self).__name__} {state['key']!r} is restored outside its fit; "
                               "restore it through tune_jobs.runtime.tuner.fit")
        self.__dict__ = live.__dict__


@contextmanager
def bound(callbacks: Sequence[DriverCallback]) -> Iterator[None]:
    """Make ``callbacks`` the state their unpickled copies adopt, for the length of the block."""
    keys = [(type(callback).__name__, callback.key) for callback in callbacks]
    _BOUND.update(zip(keys, callbacks))
    try:
        yield
    finally:
        for key in keys:
            _BOUND.pop(key, None)
