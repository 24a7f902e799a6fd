"""Optuna's view of a sweep: one trial per configuration in a journal beside the MLflow store."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from search_spaces import Choice, IntRange, LogUniform, SearchSpace
from tune_jobs.runtime.settings import SweepSettings
from tune_jobs.runtime.study import distribution, journal_path, write_study
from tune_jobs.verdicts.seeds import verdict_table

SPACE = SearchSpace(name="t", description="d", seeds=(0, 1),
                    sections={"model": {"d_model": Choice((4, 8)), "d_ff": 8},
                              "train": {"lr": LogUniform(0.006, 0.03), "curriculum": Choice(([[0, 1, 3]], [[0, 1, 5]]))}})


def trial_table() -> pd.DataFrame:
    """Config a: both seeds succeed; config b: one fails, one crashes (objective 0, the failure score)."""
    rows = [("a", 0, True, 1.0, 1.001, 8, 0.01), ("a", 1, True, 1.0, 1.001, 8, 0.01),
            ("b", 0, True, 0.2, 0.0002, 4, 0.02), ("b", 1, False, float("nan"), 0.0, 4, 0.02)]
    return pd.DataFrame([{"name": f"cfg-{c}", "config_id": c, "seed": s, "finished": f, "best_exact_match": b,
                          "grokking_step": 100 if b == 1.0 else None, "objective": o, "model/d_model": d,
                          "model/d_ff": 8, "train/lr": lr, "train/curriculum": "[[0, 1, 3]]",
                          "status": "finished" if f else "errored", "started": 1000.0 + 100 * s,
                          "ended": 1050.0 + 100 * s} for c, s, f, b, o, d, lr in rows])


def tracker():
    return SimpleNamespace(experiment_id="1", parent_run_id="p1", client=SimpleNamespace(tracking_uri="sqlite:///x"))


def test_the_journal_lies_beside_the_mlflow_store_or_in_tunes_storage(tmp_path):
    assert journal_path(SweepSettings(tracking_uri=f"sqlite:///{tmp_path}/m.db")) == tmp_path / "optuna" / "studies.log"
    served = SweepSettings(tracking_uri="http://127.0.0.1:5001", storage_path=str(tmp_path / "ray"))
    assert journal_path(served) == tmp_path / "ray" / "optuna" / "studies.log"
    assert journal_path(SweepSettings(tracking_uri="http://h:1", storage_path="s3://bucket/x")) is None


def test_dimensions_become_optuna_distributions():
    assert distribution(Choice((4, 8))) == CategoricalDistribution([4, 8])
    assert distribution(Choice(([[0, 1, 3]],))) == CategoricalDistribution(["[[0, 1, 3]]"])
    assert distribution(IntRange(300, 600, log=True)) == IntDistribution(300, 600, log=True)
    assert distribution(LogUniform(0.006, 0.03)) == FloatDistribution(0.006, 0.03, log=True)
    with pytest.raises(TypeError, match="is not a search-space dimension"):
        distribution(8)


def test_each_configuration_is_one_trial_with_its_params_and_success_rate(tmp_path):
    settings = SweepSettings(tracking_uri=f"sqlite:///{tmp_path}/m.db")
    trials = trial_table()
    table = verdict_table(trials, min_seeds=2)
    path = write_study(settings, SPACE, "job-1", table, trials, tracker())
    assert path == str(tmp_path / "optuna" / "studies.log")
    write_study(settings, SPACE, "job-1", table, trials, tracker())  # a resumed sweep rewrites its study
    storage = JournalStorage(JournalFileBackend(path))
    assert optuna.get_all_study_names(storage) == ["job-1"]
    study = optuna.load_study(study_name="job-1", storage=storage)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE and study.metric_names == ["success_rate"]
    assert study.user_attrs["mlflow_parent_run_id"] == "p1"
    first, second = study.trials
    assert first.params == {"model.d_model": 8, "train.lr": 0.01, "train.curriculum": "[[0, 1, 3]]"}  # as MLflow
    assert (first.datetime_complete - first.datetime_start).total_seconds() == 150.0  # seed 0's start, seed 1's end
    assert (first.value, second.value) == (1.0, 0.0)  # the success rate; the tie-break kept apart
    assert first.user_attrs["mean_objective"] == pytest.approx(1.001)
    assert second.user_attrs["mean_objective"] == pytest.approx(0.0001)
    assert first.user_attrs["name"] == "cfg-a" and first.user_attrs["verdict"] == "REPRODUCIBLE"
    assert second.user_attrs["errored"] == 1 and second.user_attrs["config_id"] == "b"
    assert study.best_trial.user_attrs["config_id"] == "a"


def test_no_study_without_a_searched_dimension_or_a_local_folder(tmp_path):
    fixed = SearchSpace(name="f", description="d", seeds=(0,), sections={"model": {"d_model": 8}})
    trials = trial_table()
    table = verdict_table(trials)
    assert write_study(SweepSettings(tracking_uri=f"sqlite:///{tmp_path}/m.db"), fixed, "j", table, trials,
                       tracker()) is None
    assert write_study(SweepSettings(tracking_uri="http://h:1", storage_path="s3://b/x"), SPACE, "j", table, trials,
                       tracker()) is None
    assert not (tmp_path / "optuna").exists()
