"""Which trials a fit left cut short: each trial's status at Tune's last step, kept by a callback.

A Ctrl-C (or SIGTERM) makes Tune's clean-up mark the running trials TERMINATED before the fit returns,
so the status a ``ResultGrid`` holds cannot tell a cut-short trial from a finished one; the status at
the end of Tune's latest step can.
"""

from __future__ import annotations

from typing import Any, Iterable

from ray.tune.experiment import Trial

from tune_jobs.runtime.driver_callbacks import DriverCallback


class TrialStatuses(DriverCallback):
    """Each trial's status at the end of Tune's latest step (a trial never stepped in this run of the
    job, e.g. restored already finished, keeps the status it was restored with)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.statuses: dict[str, str] = {}
        """Trial id -> Tune status (``Trial.RUNNING``, ``Trial.TERMINATED``, ``Trial.ERROR``...)."""

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.statuses = {t.trial_id: t.status for t in trials}

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        for trial in trials:
            self.statuses.setdefault(trial.trial_id, trial.status)

    def interrupted(self, trial_ids: Iterable[str]) -> set[str]:
        """Those of ``trial_ids`` that had not ended (neither TERMINATED nor ERROR) when Tune last
        stepped: after a fit, the trials a Ctrl-C (or SIGTERM) cut short."""
        return {t for t in trial_ids if self.statuses.get(t) not in (Trial.TERMINATED, Trial.ERROR)}
