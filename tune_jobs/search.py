"""From a declared search space to Ray Tune: domains, seed replicates and the seeded Optuna searcher.

Seeds are replicates, never a searched knob (google-research/tuning_playbook; cleanrl's tuner):
each configuration Optuna suggests runs once per seed through ``SeedReplicates``, and Optuna is
told the configuration's success rate, ties broken by mean best exact match.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

import optuna
from ray import tune
from ray.tune.search import Repeater
from ray.tune.search.optuna import OptunaSearch
from ray.tune.search.repeater import TRIAL_INDEX

from search_spaces import Choice, IntRange, LogUniform, SearchSpace

OBJECTIVE = "objective"
"""Per-trial score reported to Tune: success (0/1) + TIE_BREAK * best validation exact match."""
TIE_BREAK = 1e-3
"""Weight of the exact match in the objective: below the 1/n step of a success rate for n <= 1000 seeds."""


def to_domain(value: Any) -> Any:
    """A Tune domain for a dimension; constants pass through."""
    if isinstance(value, Choice):
        return tune.choice(list(value.values))
    if isinstance(value, IntRange):
        return (tune.lograndint if value.log else tune.randint)(value.low, value.high + 1)
    if isinstance(value, LogUniform):
        return tune.loguniform(value.low, value.high)
    return value


def param_space(space: SearchSpace, **constants: Any) -> dict[str, Any]:
    """Tune ``param_space``: each section's fields as domains or constants, the seeds, and ``constants``
    (settings such as the success threshold: not part of the configuration's identity)."""
    sections = {name: {k: to_domain(v) for k, v in fields.items()} for name, fields in space.sections.items()}
    return {**sections, "seeds": list(space.seeds), **constants}


NOT_CONFIGURATION = ("seeds", TRIAL_INDEX, "run_name", "role", "success_threshold", "max_steps", "checkpoint_interval",
                     "ray_train")
"""Trial-config keys that say how a configuration is run, not what it is."""


def seed_of(config: Mapping[str, Any]) -> int:
    """A trial's seed: a ``seed`` its sections name (``train.seed``, ``params.seed``), else ``seeds[i]``
    for its index i among its configuration's replicates."""
    for section in config.values():
        if isinstance(section, Mapping) and "seed" in section:
            return int(section["seed"])
    return int(config["seeds"][config.get(TRIAL_INDEX, 0)])


def config_id(config: Mapping[str, Any]) -> str:
    """Short stable id of a configuration: every section and setting but the seed and run bookkeeping."""
    payload = {k: ({f: v for f, v in section.items() if f != "seed"} if isinstance(section, Mapping) else section)
               for k, section in config.items() if k not in NOT_CONFIGURATION}
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _flat_points(space: SearchSpace) -> list[dict[str, Any]]:
    """Points to evaluate with Optuna's flattened keys, unspecified dimensions at their first/low value."""
    dims = space.dimensions()
    points = []
    for point in space.points_to_evaluate:
        flat = {}
        for name, dim in dims.items():
            section, key = name.split(".", 1)
            default = dim.values[0] if isinstance(dim, Choice) else dim.low
            flat[f"{section}/{key}"] = point.get(section, {}).get(key, default)
        points.append(flat)
    return points


class SeedReplicates(Repeater):
    """``Repeater`` that counts a crashed replicate as a failed seed instead of ignoring it.

    Ray's Repeater averages with ``nanmean``, so a seed that crashed would vanish from the success
    rate; here it scores ``failure_score`` (0, no success, by default), and Optuna receives the
    configuration's mean as a completed trial.
    """

    def __init__(self, searcher: Any, repeat: int = 1, set_index: bool = True, failure_score: float = 0.0) -> None:
        super().__init__(searcher, repeat=repeat, set_index=set_index)
        self.failure_score = failure_score

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False, **kwargs: Any) -> None:
        if error or not result or result.get(self.searcher.metric) is None:
            result = {self.searcher.metric: self.failure_score}
        super().on_trial_complete(trial_id, result=result, **kwargs)


def make_searcher(space: SearchSpace, search_seed: int, failure_score: float = 0.0) -> SeedReplicates:
    """Optuna TPE (sampler seeded with ``search_seed``) behind seed replicates of ``space``; a crashed
    replicate scores ``failure_score`` (pick one below any real objective)."""
    sampler = optuna.samplers.TPESampler(seed=search_seed)
    optuna_search = OptunaSearch(metric=OBJECTIVE, mode="max", sampler=sampler,
                                 points_to_evaluate=_flat_points(space) or None)
    return SeedReplicates(optuna_search, repeat=len(space.seeds), set_index=True, failure_score=failure_score)
