"""Run settings shared by every job: storage checks, job names on resume, bad values."""

import pytest

from trainables.checks import ConfigError
from tune_jobs.runtime.settings import RunSettings, is_uri
from tune_jobs.runtime.storage import StorageError, check_shared_storage
from tune_jobs.runtime.tuner import job_name


class _TwoNodes:
    """Stands in for ``ray.nodes()`` of a two-node cluster."""

    @staticmethod
    def nodes():
        return [{"NodeID": "a" * 56, "Alive": True}, {"NodeID": "b" * 56, "Alive": True},
                {"NodeID": "c" * 56, "Alive": False}]


@pytest.fixture
def two_nodes(monkeypatch):
    import ray

    monkeypatch.setattr(ray, "nodes", _TwoNodes.nodes)


def test_a_folder_one_node_cannot_see_is_refused_before_any_trial(tmp_path, two_nodes):
    seen = []

    def probe(node, marker):  # node b has its own disk
        seen.append(node)
        assert open(marker).read().startswith("written by the driver")
        return node.startswith("a")

    with pytest.raises(StorageError, match=r"storage_path '.*' is not shared: node\(s\) bbbbbbbbbbbb of this "
                                           r"2-node cluster.*NFS.*s3://"):
        check_shared_storage(str(tmp_path / "results"), probe)
    assert len(seen) == 2 and not list((tmp_path / "results").iterdir())  # the marker is removed


def test_a_shared_folder_or_a_uri_passes(tmp_path, two_nodes):
    check_shared_storage(str(tmp_path), lambda node, marker: True)
    check_shared_storage("s3://bucket/ray_results", lambda node, marker: pytest.fail("a URI needs no probe"))


def test_storage_uris_are_kept_and_folders_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert RunSettings(storage_path="s3://bucket/ray_results").storage() == "s3://bucket/ray_results"
    assert RunSettings(storage_path="results").storage() == str(tmp_path / "results")


def test_resume_names_the_newest_restorable_job_or_says_there_is_none(tmp_path, monkeypatch):
    monkeypatch.setattr("ray.tune.Tuner.can_restore", lambda path: (tuple(path.split("/"))[-1] != "sweep-x-3"))
    for name in ("sweep-x-1", "sweep-x-2", "sweep-x-3", "other-1"):
        (tmp_path / name).mkdir()
    import os
    for age, name in enumerate(("sweep-x-3", "sweep-x-2", "sweep-x-1", "other-1")):
        os.utime(tmp_path / name, (1000 - age, 1000 - age))
    assert job_name(RunSettings(storage_path=str(tmp_path), resume=True), "sweep-x") == "sweep-x-2"
    assert job_name(RunSettings(storage_path=str(tmp_path), resume=True, name="sweep-x-1"), "sweep-x") == "sweep-x-1"
    with pytest.raises(ConfigError, match=r"resume: no interrupted job 'nope-\*' to restore in"):
        job_name(RunSettings(storage_path=str(tmp_path), resume=True), "nope")
    with pytest.raises(ConfigError, match="name the job to restore"):
        job_name(RunSettings(storage_path="s3://b/r", resume=True), "sweep-x")
    assert job_name(RunSettings(storage_path=str(tmp_path)), "sweep-x").startswith("sweep-x-20")


@pytest.mark.parametrize("field, value", [("max_failures", -2), ("checkpoint_interval", -1), ("threads", 0)])
def test_impossible_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"{field} has an impossible value: {value}"):
        RunSettings(**{field: value})


def test_uris_are_told_from_folders():
    assert is_uri("gs://x/y") and not is_uri("/tmp/x")
