"""Seeds are replicates: each suggested configuration once per seed, the seed written into the trial config."""

import optuna
import pytest
from ray import tune
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from search_spaces import Choice, LogUniform, SearchSpace
from tune_jobs.runtime.searcher import (OBJECTIVE, FixedConfigs, SeedGroups, SeedReplicates, fixed_replicates,
                                       optuna_replicates)


def test_every_configuration_runs_once_per_seed_with_the_seed_in_its_config():
    searcher = fixed_replicates([{"model": {"d_model": 8}}, {"model": {"d_model": 16}}], seeds=(42, 42, 43))
    configs = [searcher.suggest(f"t{i}") for i in range(6)]
    assert [c["seeds"] for c in configs] == [[42], [42], [43]] * 2 and {c["seeds_per_trial"] for c in configs} == {1}
    assert [c["__trial_index__"] for c in configs] == [0, 1, 2] * 2
    assert [c["model"]["d_model"] for c in configs] == [8, 8, 8, 16, 16, 16]
    assert searcher.suggest("t6") == Searcher.FINISHED


def test_a_crashed_replicate_counts_as_a_failure_not_a_missing_value():
    told = []

    class Inner(FixedConfigs):
        def on_trial_complete(self, trial_id, result=None, error=False):
            told.append(result[OBJECTIVE])

    searcher = SeedReplicates(Inner([{"model": {}}]), SeedGroups((0, 1, 2)), failure_score=-16.0)
    for i in range(3):
        searcher.suggest(f"t{i}")
    searcher.on_trial_complete("t0", {OBJECTIVE: 1.0})
    searcher.on_trial_complete("t1", None, error=True)
    searcher.on_trial_complete("t2", {OBJECTIVE: 0.5})
    assert told == [(1.0 - 16.0 + 0.5) / 3]


def test_fixed_configs_survive_a_save_and_restore(tmp_path):
    searcher = FixedConfigs([{"a": {"x": 1}}, {"a": {"x": 2}}])
    assert searcher.suggest("t0") == {"a": {"x": 1}}
    searcher.save(str(tmp_path / "state"))
    restored = FixedConfigs([])
    restored.restore(str(tmp_path / "state"))
    assert restored.suggest("t1") == {"a": {"x": 2}} and restored.suggest("t2") == Searcher.FINISHED


def test_optuna_replicates_start_from_the_points_to_evaluate():
    space = SearchSpace("t", "", (5, 6), {"model": {"d_model": Choice((7, 8, 16))}},
                        points_to_evaluate=({"model": {"d_model": 16}},))
    searcher = optuna_replicates(space, search_seed=0)
    searcher.set_search_properties(OBJECTIVE, "max", {"model": {"d_model": tune.choice([7, 8, 16])}})
    first, second = searcher.suggest("a"), searcher.suggest("b")
    assert first["model"]["d_model"] == second["model"]["d_model"] == 16
    assert (first["seeds"], second["seeds"]) == ([5], [6])


def test_a_grid_runs_every_combination_of_the_choices_and_refuses_ranges():
    from search_spaces import LogUniform, SearchSpaceError
    from tune_jobs.runtime.searcher import grid_points

    space = SearchSpace("g", "", (0,), {"model": {"gate_input_gain": Choice((1.0, 0.0625)), "d_model": 64},
                                        "train": {"lr": Choice((0.01, 0.02))}})
    assert grid_points(space) == [{"model": {"gate_input_gain": g}, "train": {"lr": lr}}
                                  for g in (1.0, 0.0625) for lr in (0.01, 0.02)]
    ranged = space.with_overrides(train={"lr": LogUniform(0.01, 0.02)})
    with pytest.raises(SearchSpaceError, match="a grid runs choices only; train.lr is a range"):
        grid_points(ranged)


def test_seed_groups_leave_optunas_suggestions_as_optuna_alone_makes_them():
    space = SearchSpace("t", "", (0, 1, 2, 3), {"train": {"lr": LogUniform(1e-3, 1e-1)}})
    domain = {"train": {"lr": tune.loguniform(1e-3, 1e-1)}}
    replicated = optuna_replicates(space, search_seed=3, per_trial=2)
    replicated.set_search_properties(OBJECTIVE, "max", domain)
    alone = OptunaSearch(metric=OBJECTIVE, mode="max", sampler=optuna.samplers.TPESampler(seed=3))
    alone.set_search_properties(OBJECTIVE, "max", domain)
    seen, expected = [], []
    for config in range(12):
        trials = [replicated.suggest(f"c{config}g{group}") for group in range(2)]
        assert [t["seeds"] for t in trials] == [[0, 1], [2, 3]]
        for group, score in enumerate((0.25, 0.75)):
            replicated.on_trial_complete(f"c{config}g{group}", {OBJECTIVE: score + config})
        seen.append(trials[0]["train"]["lr"])
        expected.append(alone.suggest(f"a{config}")["train"]["lr"])
        alone.on_trial_complete(f"a{config}", {OBJECTIVE: 0.5 + config})
    assert seen == expected and len(set(seen)) == 12
