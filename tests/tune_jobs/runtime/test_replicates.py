"""A stacked trial's seeds are replicates like any other: one run, one row, one vote each."""

from types import SimpleNamespace

import pandas as pd

from tune_jobs.runtime.replicates import (DIVERGED, replicate_folder, replicate_results, replicates, split_result)
from tune_jobs.runtime.searcher import OBJECTIVE, FixedConfigs, SeedReplicates

CONFIG = {"model": {"d_model": 4}, "seed": 10, "seeds": [10, 11], "__trial_index__": 0, "run": {}}


def test_each_seed_of_a_stacked_trial_is_a_replicate_with_its_own_key_and_seed():
    assert replicates("t1", CONFIG) == [("t1-s10", {"model": {"d_model": 4}, "seed": 10, "__trial_index__": 0,
                                                    "run": {}}),
                                        ("t1-s11", {"model": {"d_model": 4}, "seed": 11, "__trial_index__": 0,
                                                    "run": {}})]
    single = {k: v for k, v in CONFIG.items() if k != "seeds"}
    assert replicates("t1", single) == [("t1", single)]
    assert replicate_folder("/x", 11, True).as_posix() == "/x/seed_11" and replicate_folder("/x", 11, False).as_posix() == "/x"


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
    assert (first.key, first.config["seed"], first.error) == ("t1-s10", 10, None)
    assert first.metrics_dataframe["val/exact_match"].tolist() == [0.0, 0.5]
    assert second.key == "t1-s11" and "training diverged at step 13" in second.error
    assert second.metrics_dataframe["step"].tolist() == [0, 20] and second.metrics[DIVERGED] == 13


def test_seed_groups_of_a_configuration_cover_every_seed_once():
    searcher = SeedReplicates(FixedConfigs([{"model": {}}]), seeds=(0, 1, 2, 3, 4), per_trial=2)
    configs = [searcher.suggest(f"t{i}") for i in range(3)]
    assert [c["seeds"] for c in configs] == [[0, 1], [2, 3], [4]] and [c["seed"] for c in configs] == [0, 2, 4]
    assert searcher.repeat == 3
