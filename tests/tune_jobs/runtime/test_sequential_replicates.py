"""Sequential seeds in the search: seeds go where a configuration's decision is open, and a restored
searcher continues the same decision sequence."""

import itertools
import pickle

import pandas as pd
import pytest
from ray import tune
from ray.tune.search import Searcher

from search_spaces import Choice, SearchSpace
from search_spaces.seeds import SeedRange
from tune_jobs.runtime.searcher import FixedConfigs, optuna_replicates, replicated
from tune_jobs.runtime.sequential_replicates import SequentialReplicates
from tune_jobs.runtime.trial_config import OBJECTIVE
from tune_jobs.verdicts.allocation import decision_table, replayed
from tune_jobs.verdicts.figures import confidence_sequences
from tune_jobs.verdicts.sequential import DOMINATED, SequentialDesign

RATES = {8: 1.0, 7: 0.0, 16: 0.5}
"""Stand-in configurations by d_model: the first always succeeds, the second never, the third on even seeds."""


class Told(FixedConfigs):
    """A fixed list that records what it is told."""

    def __init__(self, configs):
        super().__init__(configs)
        self.told = {}

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.told[trial_id] = result[OBJECTIVE]


def succeeds(config, seed):
    rate = RATES[config["model"]["d_model"]]
    return rate == 1.0 or (rate == 0.5 and seed % 2 == 0)


def searcher_for(design, widths=(8, 7, 16)):
    return SequentialReplicates(Told([{"model": {"d_model": w}} for w in widths]), design, len(widths))


def drive(searcher, slots=2, crash=lambda config, seed: False, stop_after=None, running=None, ids=None):
    """Run a stand-in Tune loop: fill free slots, finish the oldest running trial; returns (handed out
    in order, still running) where handed out is [(d_model, seeds)]."""
    running, handed, step, ids = list(running or []), [], 0, ids or itertools.count()
    while True:
        while len(running) < slots:
            trial_id = f"t{next(ids)}"
            config = searcher.suggest(trial_id)
            if config is None or config == Searcher.FINISHED:
                break
            handed.append((config["model"]["d_model"], tuple(config["seeds"])))
            running.append((trial_id, config))
        if not running:
            return handed, running
        if stop_after is not None and step == stop_after:
            return handed, running
        trial_id, config = running.pop(0)
        step += 1
        seed = config["seeds"][0]
        if crash(config, seed):
            searcher.on_trial_complete(trial_id, error=True)
        else:
            searcher.on_trial_complete(trial_id, {OBJECTIVE: 0.0, "success": float(succeeds(config, seed))})


def labels(searcher):
    widths = {key: config["model"]["d_model"] for key, config in searcher.configs.items()}
    return {widths[d.config_id]: d for d in searcher.allocation.decisions()}


def test_seeds_go_where_the_decision_is_open_and_the_dominated_configuration_stops_early():
    searcher = searcher_for(SequentialDesign(3, 30))
    handed, _ = drive(searcher)
    decisions = labels(searcher)
    assert decisions[8].label == "RELIABLE" and decisions[8].seeds_run in (24, 25)  # a spare seed may be running
    assert decisions[7].label == DOMINATED and decisions[7].seeds_run < 24
    assert decisions[16].label in ("SEED-SENSITIVE", DOMINATED, "UNDECIDED")
    per_config = {w: [s for width, seeds in handed if width == w for s in seeds] for w in RATES}
    for width, seeds in per_config.items():  # seeds in order 0, 1, 2..., never past max
        assert seeds == list(range(len(seeds))) and len(seeds) <= 30
    assert searcher.suggest("after") == Searcher.FINISHED
    # the inner searcher saw each configuration once, as its success rate (no tie-break)
    told = {searcher.configs[key]["model"]["d_model"]: rate for key, rate in searcher.searcher.told.items()}
    assert told[8] == 1.0 and told[7] == 0.0 and 0 < told[16] < 1


def test_the_planned_seeds_shrink_to_what_decided_configurations_used():
    searcher = searcher_for(SequentialDesign(3, 30))
    # at the most max for each of 3 configurations; at the least 7 each (0/7 raced against 7/7: DOMINATED)
    assert searcher.planned_seeds(3) == 90 and searcher.least_seeds(3) == 21
    _, running = drive(searcher, stop_after=12)
    low, high = searcher.least_seeds(3), searcher.planned_seeds(3)
    started = sum(d.seeds_started for d in searcher.allocation.decisions())
    assert 9 <= started <= low <= high  # what it has started is spent at the least
    drive(searcher, running=running)
    used = sum(d.seeds_started for d in searcher.allocation.decisions())
    assert searcher.planned_seeds(3) == searcher.least_seeds(3) == used < 90 and len(searcher.told) == 3


def test_a_configuration_gets_its_first_min_seeds_before_any_new_configuration():
    searcher = searcher_for(SequentialDesign(3, 5, racing=False))
    handed, _ = drive(searcher, slots=4, stop_after=0)
    assert handed == [(8, (0,)), (8, (1,)), (8, (2,)), (7, (0,))]


def test_a_crashed_seed_is_not_a_failure_and_still_counts_toward_max():
    searcher = searcher_for(SequentialDesign(2, 4, racing=False), widths=(7,))
    drive(searcher, crash=lambda config, seed: seed == 1)
    decision = labels(searcher)[7]
    assert (decision.label, decision.seeds_started, decision.errored, decision.seeds_run) == ("UNDECIDED", 4, 1, 3)
    assert searcher.searcher.told == {next(iter(searcher.configs)): 0.0}


def test_stacked_groups_read_each_seeds_outcome_from_its_prefix():
    searcher = SequentialReplicates(Told([{"model": {"d_model": 16}}]), SequentialDesign(2, 4, group_size=2), 1)
    config = searcher.suggest("a")
    assert config["seeds"] == [0, 1] and config["seeds_per_trial"] == 2
    searcher.on_trial_complete("a", {"seed0/success": 1.0, "seed1/success": 0.0, "step": 10})
    assert searcher.suggest("b")["seeds"] == [2, 3]
    searcher.on_trial_complete("b", {"seed2/success": 1.0, "step": 10})  # seed 3 missing: it crashed
    decision = labels(searcher)[16]
    assert (decision.successes, decision.seeds_run, decision.errored) == (2, 3, 1)
    assert searcher.suggest("c") == Searcher.FINISHED


def test_a_restored_searcher_continues_the_same_decision_sequence(tmp_path):
    design = SequentialDesign(3, 14)
    whole = searcher_for(design)
    whole_handed, _ = drive(whole)

    first, ids = searcher_for(design), itertools.count()
    handed, running = drive(first, stop_after=9, ids=ids)
    state = pickle.dumps(first.get_state())  # what Tune's SearchGenerator saves beside the inner searcher
    first.save(str(tmp_path / "inner"))
    restored = SequentialReplicates(Told([]), SequentialDesign(1, 1), 1)
    restored.set_state(pickle.loads(state))
    restored.restore(str(tmp_path / "inner"))
    rest, _ = drive(restored, running=running, ids=ids)
    assert handed + rest == whole_handed
    assert restored.allocation.to_dict() == whole.allocation.to_dict()


def test_the_verdict_table_replays_the_decisions_the_searcher_reached():
    searcher = searcher_for(SequentialDesign(3, 30))
    handed, _ = drive(searcher)
    keys = {config["model"]["d_model"]: key for key, config in searcher.configs.items()}
    rows = [{"config_id": keys[w], "seed": s, "status": "finished",
             "best_exact_match": 1.0 if succeeds({"model": {"d_model": w}}, s) else 0.1}
            for w, seeds in handed for s in seeds]
    trials = pd.DataFrame(rows)
    live = {d.config_id: d for d in searcher.allocation.decisions()}
    assert {d.config_id: d for d in replayed(searcher.design, trials, 0.99).decisions()} == live
    table = pd.DataFrame({"config_id": list(keys.values()), "name": [f"d{w}" for w in keys],
                          "verdict": ["x"] * 3})
    decided = decision_table(table, trials, searcher.design, 0.99).set_index("name")
    assert decided.loc["d8", "verdict"] == "RELIABLE" and decided.loc["d7", "dominated_by"] == "d8"
    assert decided.loc["d8", "cs_low"] > 0.8 and decided.loc["d7", "cs_high"] < decided.loc["d8", "cs_low"]
    figure = confidence_sequences(trials, decided.reset_index(), searcher.design, 0.99)
    panels = [axes for axes in figure.axes if axes.get_title()]
    assert [axes.get_title().split("\n")[1] for axes in panels] == list(decided["verdict"])
    reliable = panels[0].collections[0].get_paths()[0].vertices  # the band narrows above the bar
    assert reliable[:, 1].min() < 0.8


def test_a_range_of_seeds_makes_the_sweeps_searcher_sequential_and_tells_optuna_the_rate():
    space = SearchSpace("t", "", tuple(range(4)), {"model": {"d_model": Choice((7, 8))}}, seed_range=SeedRange(2, 4))
    searcher = optuna_replicates(space, search_seed=0, num_configs=2)
    assert isinstance(searcher, SequentialReplicates) and searcher.max_trials(2) == 8
    searcher.set_search_properties(OBJECTIVE, "max", {"model": {"d_model": tune.choice([7, 8])}})
    first = [searcher.suggest(f"t{i}") for i in range(2)]
    assert [c["seeds"] for c in first] == [[0], [1]]
    for i in range(2):
        searcher.on_trial_complete(f"t{i}", {OBJECTIVE: 1.0009, "success": 1.0})
    for i in range(2, 12):  # every seed succeeds: each configuration runs to max, UNDECIDED, rate 1
        config = searcher.suggest(f"t{i}")
        if isinstance(config, dict):
            searcher.on_trial_complete(f"t{i}", {OBJECTIVE: 1.0009, "success": 1.0})
    values = [t.value for t in searcher.searcher._ot_study.trials if t.value is not None]
    assert values == [1.0, 1.0]  # the rate, not the tie-broken objective
    fixed = replicated(FixedConfigs([{}]), SearchSpace("f", "", (0, 1), {}), 1)
    assert fixed.max_trials(3) == 6


@pytest.mark.parametrize("size", [5])
def test_a_group_larger_than_max_is_refused_naming_both(size):
    from search_spaces import SearchSpaceError
    space = SearchSpace("t", "", tuple(range(4)), {}, seed_range=SeedRange(2, 4))
    with pytest.raises(SearchSpaceError, match=r"seeds 2\.\.4 with --seeds-per-trial 5"):
        replicated(FixedConfigs([{}]), space, 1, per_trial=size)


def test_a_slot_nothing_else_can_use_goes_to_an_open_configuration_as_a_spare_seed():
    searcher = searcher_for(SequentialDesign(2, 4, racing=False), widths=(7,))
    handed, running = drive(searcher, slots=3, stop_after=0)
    assert handed == [(7, (0,)), (7, (1,)), (7, (2,))] and len(running) == 3
    handed, _ = drive(searcher, slots=3, running=running, ids=itertools.count(10))
    assert handed == [(7, (3,))] and labels(searcher)[7].seeds_started == 4  # never past max


def test_every_configuration_gets_its_first_seeds_before_any_gets_more():
    searcher = searcher_for(SequentialDesign(2, 6, racing=False))
    handed, _ = drive(searcher, slots=2)
    first = [width for width, _ in handed[:6]]
    assert first == [8, 8, 7, 7, 16, 16]  # breadth first: min seeds of each, in order
    assert all(len(seeds) == 1 for _, seeds in handed)


def test_the_fewest_seeds_to_a_decision_follow_the_design():
    assert SequentialDesign(3, 12).fewest_to_decide() == 7  # 0/7 raced against 7/7
    assert SequentialDesign(3, 30, racing=False).fewest_to_decide() == 22  # SEED-SENSITIVE at alternating outcomes
    assert SequentialDesign(2, 3).fewest_to_decide() == 3  # nothing is decided before max: the ETA is one value
    assert SequentialDesign(9, 12).fewest_to_decide() == 9  # never below min
