"""What decides a job's trials, saved when it starts and compared when it is resumed (issue 20, item 4).

``Tuner.restore`` continues the trials a job started with: settings given with ``--resume`` that would
change them (``--set``, another space, seeds, budget, trial mode...) used to be ignored in silence, or
failed after Ray started. The job's record (its parent-run params: every setting as it ran, the space's
summary or the claim's fields; and each field of its space, dimensions included) is written to
``<storage_path>/<name>/job_settings.json`` when the job starts; a resume compares its own record with
it and is refused, before Ray starts and before MLflow gets a run, naming each changed field with its
old and new value. The settings in ``MAY_CHANGE`` say where and how robustly the trials run, not what
they are, and may change on resume. A job started before this file existed resumes unchecked (and gets
one). Storage given as a URI (s3://...) keeps no record here: its resumes are not checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from search_spaces import SearchSpace
from trainables.checks import ConfigError
from trainables.loop import config_diff
from tune_jobs.runtime.settings import RunSettings, is_uri

RECORD_FILE = "job_settings.json"
"""The record's file name inside the job's Tune folder."""
MAY_CHANGE = frozenset({"job.name", "job.resume", "job.max_failures", "job.max_concurrent", "job.ray_address",
                        "job.tracking_uri", "job.storage_path"})
"""Parent-run params left out of the record: the job's name (how a resume finds it), the resume flag, the
retries, the trials at once, the Ray cluster, the MLflow store (it may move: the runs are reconciled from
Tune's storage into the one given) and the storage path (where the record itself was found)."""


def space_fields(space: SearchSpace) -> dict[str, Any]:
    """Each field of a space as ``space.<section>.<field>`` -> its constant, or its dimension's text (e.g.
    "Choice(values=(5, 10))"), and the points it evaluates first."""
    fields = {f"space.{section}.{key}": value for section, values in space.sections.items()
              for key, value in values.items()}
    return {**fields, "space.points_to_evaluate": [dict(point) for point in space.points_to_evaluate]}


def job_record(params: Mapping[str, Any], identity: Mapping[str, Any] = ()) -> dict[str, Any]:
    """The record of a job from its parent-run ``params`` (``runtime.params.run_params`` and the job's
    own) and ``identity`` (e.g. ``space_fields``), without ``MAY_CHANGE``, as its JSON text reads back
    (tuples as lists, anything else that JSON lacks as its text)."""
    record = {key: value for key, value in {**params, **dict(identity)}.items() if key not in MAY_CHANGE}
    return json.loads(json.dumps(record, default=str))


def changes(saved: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    """The fields that differ, one line: 'set: [] -> ["train.lr=0.5"]; space.train.lr: 0.015 -> 0.5'
    (``job.`` left off the settings' names; a field missing on one side reads null); '' when none."""
    return "; ".join(f"{key.removeprefix('job.')}: {_text(old)} -> {_text(new)}"
                     for key, (old, new) in config_diff(saved, now).items())


def _text(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def check_or_save(settings: RunSettings, name: str, record: Mapping[str, Any]) -> None:
    """Save ``record`` as the job's (a new job, or a resumed one that has none yet), or refuse a resume
    whose record differs from the saved one.

    Raises:
        ConfigError: ``settings.resume`` and a field differs (names each, saved -> now, one line).
    """
    storage = settings.storage()
    if is_uri(storage):
        return
    path = Path(storage) / name / RECORD_FILE
    if settings.resume and path.is_file():
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ConfigError(f"resume: {path} cannot be read ({error}); it records how job {name!r} started") from None
        changed = changes(saved, record)
        if changed:
            raise ConfigError(f"resume: job {name!r} started with other settings ({path}): {changed}; resume it "
                              f"with the settings it started with, or start a new job (another --name)")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
