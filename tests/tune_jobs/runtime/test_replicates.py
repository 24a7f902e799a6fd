"""A stacked trial's seeds are replicates like any other: one run, one row, one vote each."""

from types import SimpleNamespace

import pandas as pd
import pytest

from tune_jobs.runtime.replicates import (DIVERGED, replicate_folder, replicate_results, replicates, split_result)
from tune_jobs.runtime.searcher import OBJECTIVE, FixedConfigs, SeedGroups, SeedReplicates
from tune_jobs.runtime.trial_config import seed_of

CONFIG = {"model": {"d_model": 4}, "seeds": [10, 11], "seeds_per_trial": 2, "__trial_index__": 0, "run": {}}


def test_each_seed_of_a_stacked_trial_is_a_replicate_with_its_own_key_and_seed():
    assert replicates("t1", CONFIG) == [("t1-s10", {**CONFIG, "seeds": [10]}), ("t1-s11", {**CONFIG, "seeds": [11]})]
    single = {**CONFIG, "seeds": [10], "seeds_per_trial": 1}
    assert replicates("t1", single) == [("t1", single)]
    # a short last group of a stacked design keeps the stacked layout: its group size decides, not its length
    assert replicates("t2", {**CONFIG, "seeds": [12]}) == [("t2-s12", {**CONFIG, "seeds": [12]})]
    assert replicate_folder("/x", {**CONFIG, "seeds": [11]}).as_posix() == "/x/seed_11"
    assert replicate_folder("/x", {**single, "seeds": [11]}).as_posix() == "/x"


def test_a_report_splits_into_each_seeds_metrics_over_the_shared_keys():
    report = {"step": 20, "env/device": "cpu", OBJECTIVE: 0.5, "seed10/val/exact_match": 0.25,
              "seed10/objective": 1.0, "seed11/val/exact_match": 0.0, "seed11/objective": 0.0}
    assert split_result(report, CONFIG) == {
        10: {"step": 20, "env/device": "cpu", "val/exact_match": 0.25, "objective": 1.0},
        11: {"step": 20, "env/device": "cpu", "val/exact_match": 0.0, "objective": 0.0}}
    assert split_result({"step": 40, "seed10/val/exact_match": 1.0}, CONFIG) == {10: {"step": 40, "val/exact_match": 1.0}}


def test_a_diverged_seed_fails_alone_with_its_own_history():
    history = pd.DataFrame([{"step": 0, "trial_id": "t1", "seed10/val/exact_match": 0.0, "seed11/val/exact_match": 0.0},
                            {"step": 20, "trial_id": "t1", "seed10/val/exact_match": 0.5,
                             "seed11/val/exact_match": 0.0, f"seed11/{DIVERGED}": 13}])
    result = SimpleNamespace(config=CONFIG, metrics=history.iloc[-1].to_dict(), metrics_dataframe=history, error=None,
                             path="/store/t1", checkpoint=None)
    first, second = replicate_results(result)
    assert (first.key, seed_of(first.config), first.error) == ("t1-s10", 10, None)
    assert first.metrics_dataframe["val/exact_match"].tolist() == [0.0, 0.5]
    assert second.key == "t1-s11" and "training diverged at step 13" in second.error
    assert second.metrics_dataframe["step"].tolist() == [0, 20] and second.metrics[DIVERGED] == 13


def test_a_trial_cut_short_before_its_first_report_has_no_replicate():
    # Ctrl-C while a trial starts: Tune's ResultGrid holds it without a config or metrics (nothing stored),
    # and the fit's MLflow reconcile read its group size off None and raised instead of printing the resume
    nothing = SimpleNamespace(config=None, metrics=None, metrics_dataframe=None, error=None, path="/store/t9",
                              checkpoint=None)
    assert replicate_results(nothing) == []


def test_seed_groups_of_a_configuration_cover_every_seed_once():
    searcher = SeedReplicates(FixedConfigs([{"model": {}}]), SeedGroups((0, 1, 2, 3, 4), 2))
    configs = [searcher.suggest(f"t{i}") for i in range(3)]
    assert [c["seeds"] for c in configs] == [[0, 1], [2, 3], [4]] and {c["seeds_per_trial"] for c in configs} == {2}
    assert searcher.repeat == 3 and searcher.suggest("t3") == "FINISHED"


def test_a_seed_group_is_handed_out_per_trial_and_a_missing_one_is_refused():
    groups = SeedGroups((5, 6, 7), 1)
    assert groups.count() == 3 and [groups.group(i) for i in range(3)] == [(5,), (6,), (7,)]
    with pytest.raises(IndexError, match="seed group 3 of 3"):
        groups.group(3)
    with pytest.raises(ValueError, match="size >= 1"):
        SeedGroups((5,), 0)


def test_a_config_of_several_seeds_has_no_one_seed():
    assert seed_of({**CONFIG, "seeds": [11]}) == 11 and seed_of({"seed": 4}) == 4  # a config stored before groups
    with pytest.raises(ValueError, match="of 2 seeds"):
        seed_of(CONFIG)
