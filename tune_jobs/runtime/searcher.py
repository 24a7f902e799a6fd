"""From a search space to Ray Tune: the job's space, domains, and searchers that run every configuration on its seeds.

Seeds are replicates, never a searched knob (google-research/tuning_playbook; cleanrl's tuner):
``SeedReplicates`` hands each configuration its inner searcher suggests one trial per seed group
(``SeedGroups``: the seeds cut into groups of ``seeds_per_trial``, one seed each by default) and writes
the group into the trial config (``trial_config.SEEDS``); the inner searcher is told the
configuration's mean objective, a crashed trial counting as ``failure_score``. The inner searcher
is Optuna's TPE for sweeps (``optuna_replicates``) or a fixed list for grids (``fixed_replicates``).
"""

from __future__ import annotations

import itertools
import pickle
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import optuna
from ray import tune
from ray.tune.search import Repeater, Searcher
from ray.tune.search.optuna import OptunaSearch

from search_spaces import Choice, IntRange, LogUniform, SearchSpace, SearchSpaceError, upper_value
from search_spaces.seeds import with_seed_option
from tune_jobs.runtime.sequential_replicates import SequentialReplicates
from tune_jobs.runtime.settings import SweepSettings
from tune_jobs.runtime.trial_config import OBJECTIVE, REPLICATE, RUN, TRIAL_ERROR, with_seeds
from tune_jobs.verdicts.sequential import SequentialDesign


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


@dataclass(frozen=True)
class SeedGroups:
    """A configuration's seeds as trials: ``seeds`` cut, in order, into groups of ``size`` (the last
    may be short); group ``i`` is the seeds of the configuration's ``i``-th trial."""

    seeds: tuple[int, ...]
    """Every seed a configuration runs on (repeats allowed: a seed run twice)."""
    size: int = 1
    """Seeds a trial trains (``--seeds-per-trial``; > 1 stacks them in one process)."""

    def __post_init__(self) -> None:
        if not self.seeds or self.size < 1:
            raise ValueError(f"seed groups need seeds and a size >= 1, got {self.seeds!r} and {self.size!r}")

    def count(self) -> int:
        """Trials a configuration runs."""
        return -(-len(self.seeds) // self.size)

    def group(self, index: int) -> tuple[int, ...]:
        """The seeds of a configuration's ``index``-th trial.

        Raises:
            IndexError: the configuration has no such trial.
        """
        if not 0 <= index < self.count():
            raise IndexError(f"seed group {index} of {self.count()}")
        return tuple(int(s) for s in self.seeds[index * self.size:(index + 1) * self.size])


class SeedReplicates(Repeater):
    """``Repeater`` that hands each trial of a configuration its seed group and counts a crashed
    trial as a failure.

    Ray's Repeater averages with ``nanmean``, so a crashed seed would vanish from the success rate;
    here it scores ``failure_score``, and the inner searcher receives the configuration's mean. The
    groups come from ``next_group``, asked once per trial as the trial is suggested.
    """

    def __init__(self, searcher: Searcher, groups: SeedGroups, failure_score: float = 0.0) -> None:
        super().__init__(searcher, repeat=groups.count(), set_index=True)
        self.groups = groups
        self.failure_score = failure_score

    def max_trials(self, num_configs: int) -> int:
        """Trials ``num_configs`` configurations run (Tune's ``num_samples``)."""
        return num_configs * self.groups.count()

    def next_group(self, config: Mapping[str, Any]) -> tuple[int, ...]:
        """The seed group of the configuration's next trial (its ``REPLICATE`` index among them)."""
        return self.groups.group(config[REPLICATE])

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        if isinstance(config, dict):
            config = with_seeds(config, self.next_group(config), self.groups.size)
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False, **kwargs: Any) -> None:
        if error or not result or result.get(self.searcher.metric) is None or result.get(TRIAL_ERROR):
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
                      per_trial: int = 1, num_configs: int = 1) -> SeedReplicates | SequentialReplicates:
    """Optuna TPE (sampler seeded with ``search_seed``: study variance, kept apart from the trial
    seeds) over ``space``'s dimensions, ``num_configs`` configurations on the space's seeds
    (``replicated``; ``per_trial`` seeds stacked in each trial); a crashed replicate scores
    ``failure_score`` (pick one below any real objective)."""
    sampler = optuna.samplers.TPESampler(seed=search_seed)
    optuna_search = OptunaSearch(metric=OBJECTIVE, mode="max", sampler=sampler,
                                 points_to_evaluate=_flat_points(space) or None)
    return replicated(optuna_search, space, num_configs, failure_score, per_trial)


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
    return SeedReplicates(FixedConfigs(configs), SeedGroups(tuple(seeds), per_trial), failure_score)


def sequential_design(space: SearchSpace, per_trial: int = 1) -> SequentialDesign | None:
    """The sequential design of a space whose seeds are a range (``seeds = { min, max }`` or ``--seeds
    min..max``): its seeds in the space's order, ``per_trial`` a group, the default alpha, bars and
    racing (``verdicts.sequential``); None for a fixed list.

    Raises:
        SearchSpaceError: an impossible design (a group larger than ``max``), naming the values.
    """
    if space.seed_range is None:
        return None
    try:
        return SequentialDesign(space.seed_range.min_seeds, space.seed_range.max_seeds, group_size=per_trial,
                                seed_order=tuple(space.seeds))
    except ValueError as error:
        raise SearchSpaceError(f"search space {space.name!r}, seeds {space.seed_range} with --seeds-per-trial "
                               f"{per_trial}: {error}") from error


def replicated(inner: Searcher, space: SearchSpace, num_configs: int, failure_score: float = 0.0,
               per_trial: int = 1) -> SeedReplicates | SequentialReplicates:
    """``inner``'s configurations on the space's seeds: every seed of a fixed list (``SeedReplicates``),
    or seeds while each configuration's decision is open (``SequentialReplicates``, a range)."""
    design = sequential_design(space, per_trial)
    if design is None:
        return SeedReplicates(inner, SeedGroups(tuple(space.seeds), per_trial), failure_score)
    return SequentialReplicates(inner, design, num_configs, failure_score)


def with_run_settings(space: SearchSpace, settings: SweepSettings, train_steps: int | None,
                      eval_interval: int | None, default_warmup: int, warmup_share: float) -> SearchSpace:
    """``space`` with the job's shortcuts applied to its ``train`` section: steps, evaluation
    interval, threads, CUDA when GPUs are asked for (a warmup as long as the new schedule shrinks to
    ``warmup_share`` of it), and the seed count."""
    train = {k: v for k, v in (("train_steps", train_steps), ("eval_interval", eval_interval)) if v is not None}
    train["threads"] = settings.threads
    if settings.gpus_per_trial > 0:
        train["device"] = "cuda"
    warmup = upper_value(space.sections.get("train", {}).get("warmup_steps", default_warmup))  # a Choice: its largest
    if train_steps is not None and warmup >= train_steps:
        train["warmup_steps"] = max(1, int(train_steps * warmup_share))
    space = space.with_overrides(train=train)
    return with_seed_option(space, settings.seed_option())
