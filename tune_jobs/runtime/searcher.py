"""From a search space to Ray Tune: domains, and searchers that run every configuration once per seed.

Seeds are replicates, never a searched knob (google-research/tuning_playbook; cleanrl's tuner):
``SeedReplicates`` repeats each configuration its inner searcher suggests once per seed and writes
the seed into the trial config (``trial_config.SEED``); the inner searcher is told the
configuration's mean objective, a crashed replicate counting as ``failure_score``. The inner searcher
is Optuna's TPE for sweeps (``optuna_replicates``) or a fixed list for grids (``fixed_replicates``).
"""

from __future__ import annotations

import itertools
import pickle
from typing import Any, Mapping, Sequence

import optuna
from ray import tune
from ray.tune.search import Repeater, Searcher
from ray.tune.search.optuna import OptunaSearch

from search_spaces import Choice, IntRange, LogUniform, SearchSpace, SearchSpaceError
from tune_jobs.runtime.trial_config import REPLICATE, RUN, SEED, SEEDS

OBJECTIVE = "objective"
"""Per-trial score reported to Tune (higher is better); each trial defines its own."""


def to_domain(value: Any) -> Any:
    """A Tune domain for a dimension; constants pass through."""
    if isinstance(value, Choice):
        return tune.choice(list(value.values))
    if isinstance(value, IntRange):
        return (tune.lograndint if value.log else tune.randint)(value.low, value.high + 1)
    if isinstance(value, LogUniform):
        return tune.loguniform(value.low, value.high)
    return value


def param_space(space: SearchSpace, run: Mapping[str, Any], searched: bool = True) -> dict[str, Any]:
    """Tune ``param_space``: each section's fields as domains or constants, and the run settings.
    With ``searched`` False the dimensions are left out (a fixed-configs searcher supplies them)."""
    dims = space.dimensions()
    sections = {name: {k: to_domain(v) for k, v in fields.items() if searched or f"{name}.{k}" not in dims}
                for name, fields in space.sections.items()}
    return {**sections, RUN: dict(run)}


class SeedReplicates(Repeater):
    """``Repeater`` that writes each replicate's seed and counts a crashed replicate as a failure.

    Ray's Repeater averages with ``nanmean``, so a crashed seed would vanish from the success rate;
    here it scores ``failure_score``, and the inner searcher receives the configuration's mean.
    """

    def __init__(self, searcher: Searcher, seeds: Sequence[int], failure_score: float = 0.0,
                 per_trial: int = 1) -> None:
        groups = [tuple(int(s) for s in seeds[i:i + per_trial]) for i in range(0, len(seeds), per_trial)]
        super().__init__(searcher, repeat=len(groups), set_index=True)
        self.seeds = tuple(int(s) for s in seeds)
        self.groups = groups
        """The seeds of each trial of a configuration: one each, or ``per_trial`` stacked in one trial."""
        self.failure_score = failure_score

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        if isinstance(config, dict):
            group = self.groups[config[REPLICATE]]
            config[SEED] = group[0]
            if len(group) > 1 or len(self.groups[0]) > 1:
                config[SEEDS] = list(group)
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False, **kwargs: Any) -> None:
        if error or not result or result.get(self.searcher.metric) is None:
            result = {self.searcher.metric: self.failure_score}
        super().on_trial_complete(trial_id, result=result, **kwargs)


class FixedConfigs(Searcher):
    """Suggests given configurations (section dicts) in order, then finishes: a grid for Tune."""

    def __init__(self, configs: Sequence[Mapping[str, Any]], metric: str = OBJECTIVE, mode: str = "max") -> None:
        super().__init__(metric=metric, mode=mode)
        self.configs = [dict(c) for c in configs]
        self.index = 0

    def suggest(self, trial_id: str) -> dict | str:
        if self.index >= len(self.configs):
            return Searcher.FINISHED
        self.index += 1
        return {k: dict(v) if isinstance(v, Mapping) else v for k, v in self.configs[self.index - 1].items()}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Nothing to learn from: the list is fixed."""

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as file:
            pickle.dump({"configs": self.configs, "index": self.index}, file)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as file:
            self.__dict__.update(pickle.load(file))


def _flat_points(space: SearchSpace) -> list[dict[str, Any]]:
    """Points to evaluate with Optuna's flattened keys, unspecified dimensions at their first/low value."""
    points = []
    for point in space.points_to_evaluate:
        flat = {}
        for name, dim in space.dimensions().items():
            section, key = name.split(".", 1)
            default = dim.values[0] if isinstance(dim, Choice) else dim.low
            flat[f"{section}/{key}"] = point.get(section, {}).get(key, default)
        points.append(flat)
    return points


def optuna_replicates(space: SearchSpace, search_seed: int, failure_score: float = 0.0,
                      per_trial: int = 1) -> SeedReplicates:
    """Optuna TPE (sampler seeded with ``search_seed``: study variance, kept apart from the trial
    seeds) over ``space``'s dimensions, behind one replicate per seed of the space (``per_trial``
    seeds stacked in each trial); a crashed replicate scores ``failure_score`` (pick one below any
    real objective)."""
    sampler = optuna.samplers.TPESampler(seed=search_seed)
    optuna_search = OptunaSearch(metric=OBJECTIVE, mode="max", sampler=sampler,
                                 points_to_evaluate=_flat_points(space) or None)
    return SeedReplicates(optuna_search, space.seeds, failure_score, per_trial)


def grid_points(space: SearchSpace) -> list[dict[str, dict[str, Any]]]:
    """Every combination of the space's choices (section -> field -> value), first choice varying slowest.

    Raises:
        SearchSpaceError: the space has a range dimension (a grid needs choices).
    """
    dims = space.dimensions()
    ranges = [name for name, dim in dims.items() if not isinstance(dim, Choice)]
    if ranges:
        raise SearchSpaceError(f"search space {space.label()}: a grid runs choices only; {', '.join(ranges)} "
                               f"is a range (make it a choice, or fix it with --set)")
    points = []
    for values in itertools.product(*(dim.values for dim in dims.values())):
        point: dict[str, dict[str, Any]] = {}
        for name, value in zip(dims, values):
            section, key = name.split(".", 1)
            point.setdefault(section, {})[key] = value
        points.append(point)
    return points


def fixed_replicates(configs: Sequence[Mapping[str, Any]], seeds: Sequence[int], failure_score: float = 0.0,
                     per_trial: int = 1) -> SeedReplicates:
    """Each of ``configs`` (section dicts) once per seed of ``seeds`` (``per_trial`` stacked in a trial), in order."""
    return SeedReplicates(FixedConfigs(configs), seeds, failure_score, per_trial)
