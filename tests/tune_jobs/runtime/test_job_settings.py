"""A job's record (what decides its trials), saved at its start and compared on --resume (issue 20, item 4)."""

from __future__ import annotations

import json

import pytest

from search_spaces import Choice, SearchSpace
from trainables.checks import ConfigError
from tune_jobs.runtime.job_settings import RECORD_FILE, changes, check_or_save, job_record, space_fields
from tune_jobs.runtime.settings import SweepSettings

SPACE = SearchSpace("s", "a space", (0, 1), {"train": {"lr": 0.015, "warmup_steps": Choice((5, 10))}})


def record(space: SearchSpace = SPACE, **params):
    return job_record({"job.threads": 1, "job.set": (), "job.max_failures": 2, "job.name": "x", **params},
                      space_fields(space))


def test_the_record_reads_back_as_saved_and_leaves_out_what_may_change():
    now = record()
    assert json.loads(json.dumps(now)) == now and now["job.set"] == []
    assert "job.max_failures" not in now and "job.name" not in now
    assert now["space.train.lr"] == 0.015 and "5, 10" in now["space.train.warmup_steps"]
    assert changes(now, record(**{"job.max_failures": 0, "job.name": "y"})) == ""


def test_changes_name_each_changed_field_with_old_and_new_value():
    changed = SPACE.with_overrides(train={"lr": 0.5, "warmup_steps": Choice((5, 20))})
    line = changes(record(), record(changed, **{"job.set": ("train.lr=0.5",), "job.threads": 2}))
    assert line == ('set: [] -> ["train.lr=0.5"]; threads: 1 -> 2; space.train.lr: 0.015 -> 0.5; '
                    'space.train.warmup_steps: "Choice(values=(5, 10))" -> "Choice(values=(5, 20))"')
    assert changes({"a": 1}, {"b": 1}) == "a: 1 -> null; b: null -> 1"


def test_a_start_saves_the_record_a_changed_resume_is_refused_an_unchanged_one_passes(tmp_path):
    settings = SweepSettings(storage_path=str(tmp_path), name="job")
    check_or_save(settings, "job", record())
    assert json.loads((tmp_path / "job" / RECORD_FILE).read_text()) == record()
    resume = SweepSettings(storage_path=str(tmp_path), name="job", resume=True)
    check_or_save(resume, "job", record(**{"job.max_failures": 5}))  # unchanged but for a retry count
    with pytest.raises(ConfigError, match=r"resume: job 'job' started with other settings .*: threads: 1 -> 4; resume"):
        check_or_save(resume, "job", record(**{"job.threads": 4}))
    assert json.loads((tmp_path / "job" / RECORD_FILE).read_text()) == record()  # the refused one saved nothing


def test_a_job_without_a_record_resumes_and_gets_one_and_a_garbled_record_is_named(tmp_path):
    resume = SweepSettings(storage_path=str(tmp_path), name="old", resume=True)
    check_or_save(resume, "old", record())
    assert (tmp_path / "old" / RECORD_FILE).is_file()
    (tmp_path / "old" / RECORD_FILE).write_text("{not json")
    with pytest.raises(ConfigError, match=r"resume: .*job_settings.json cannot be read"):
        check_or_save(resume, "old", record())
