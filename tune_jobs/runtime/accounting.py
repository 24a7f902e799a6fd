"""Performance accounting of a job: its wall time, the trials' own time, and what went to no trial."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence


def trial_intervals(grid: Any) -> list[tuple[float, float]]:
    """(start, end) in Unix seconds of each trial of a Tune ResultGrid that reported: its last report's
    ``timestamp`` as the end, that minus its ``time_total_s`` as the start."""
    out = []
    for result in grid:
        metrics = result.metrics or {}
        end, total = metrics.get("timestamp"), metrics.get("time_total_s")
        if isinstance(end, (int, float)) and isinstance(total, (int, float)):
            out.append((float(end) - float(total), float(end)))
    return out


def drain_idle_seconds(intervals: Sequence[tuple[float, float]], slots: int) -> float:
    """Slot-seconds no trial used between the last trial's start and the last trial's end: the cost of
    trials of unequal length on ``slots`` slots, which no scheduling of the remaining work can fill.

    Args:
        intervals: (start, end) seconds of each trial.
        slots: trials that could run at once.
    """
    if not intervals or slots < 1:
        return 0.0
    first, last = max(start for start, _ in intervals), max(end for _, end in intervals)
    used = sum(max(0.0, min(end, last) - max(start, first)) for start, end in intervals)
    return max(0.0, slots * (last - first) - used)


@dataclass
class Accounting:
    """Where a job's capacity (wall time x trial slots) went."""

    started: float = field(default_factory=time.perf_counter)
    """``time.perf_counter()`` when the job opened."""
    opened_at: float = field(default_factory=time.time)
    """Unix seconds when the job opened: a trial's time before it (a resumed sweep's earlier runs) is not
    this job's."""
    slots: int = 0
    """Trials that could run at once (CPU cores / threads per trial, or GPUs / GPUs per trial)."""
    trial_seconds: float = 0.0
    """The trials' own time since the job opened (``trial_intervals`` clipped to ``opened_at``), summed."""
    drain_seconds: float = 0.0
    """Slot-seconds idle after the last trial started, while the last trials finished (``drain_idle_seconds``)."""

    def add_fit(self, grid: Any, slots: int) -> None:
        """Count a fit's trials (a Tune ResultGrid) run on ``slots`` slots: only the time they trained since
        the job opened, so that a resumed sweep does not count its earlier runs' trials against this run's
        wall time (Tune's ``time_total_s`` carries over a restore)."""
        self.slots = slots
        intervals = [(max(start, self.opened_at), end) for start, end in trial_intervals(grid) if end > self.opened_at]
        self.trial_seconds += sum(end - start for start, end in intervals)
        self.drain_seconds += drain_idle_seconds(intervals, slots)

    def seconds(self) -> float:
        """Wall time since the job opened."""
        return time.perf_counter() - self.started

    def overhead_share(self) -> float:
        """What Ray, MLflow and idle slots cost: 1 - (the trials' own time) / (wall time x slots), the
        share of the job's capacity that went to no trial (NaN before a fit)."""
        capacity = self.seconds() * self.slots
        return 1.0 - self.trial_seconds / capacity if capacity > 0 else float("nan")

    def drain_share(self) -> float:
        """The part of ``overhead_share`` that is slots left idle at the end: no trial was left to start
        while the last ones finished (NaN before a fit)."""
        capacity = self.seconds() * self.slots
        return self.drain_seconds / capacity if capacity > 0 else float("nan")

    def metrics(self) -> dict[str, float]:
        """The parent run's ``perf/*`` metrics."""
        return {"perf/job_seconds": self.seconds(), "perf/trial_seconds": self.trial_seconds,
                "perf/overhead_share": self.overhead_share(), "perf/drain_share": self.drain_share()}
