"""The one shape of a trial's config, the same for sweeps, reproductions and command runs.

A Tune trial's config is a dict of:

- **config sections**: each a dict of one config class's fields (``model`` and ``train`` of the
  addition trainable; ``model``, ``train``, ``data``, ``tokenizer``... of the language model;
  ``command`` and ``params`` of a command job), never holding a seed. They are the
  configuration's identity: ``config_id`` hashes them and nothing else;
- ``seeds``: the trial's seed group, written by the seed-replicate searcher (``runtime.searcher``):
  one seed, or K seeds trained stacked in one process (``--seeds-per-trial K``);
- ``seeds_per_trial``: the group size K of the configuration's trials (1: one seed a trial). It, not
  the length of one group (a last group may be short), decides the replicate layout
  (``runtime.replicates``);
- ``__trial_index__``: the trial's index among its configuration's (Ray's ``Repeater``);
- ``run``: how the trial runs, not what it is (``success_threshold``, ``protocol``, ``max_steps``,
  ``checkpoint_interval``, the Ray Train spec ``ray_train``).

Every reader (trial bodies, the MLflow callback, trial tables, checkpoints) goes through this module.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping, Sequence

SEEDS = "seeds"
"""Key of the trial's seed group (a list: one seed, or a stacked group)."""
GROUP_SIZE = "seeds_per_trial"
"""Key of the group size of the configuration's trials (absent = 1)."""
SEED = "seed"
"""Key of the one seed of a trial config stored before seed groups (read, never written)."""
OBJECTIVE = "objective"
"""Per-trial score reported to Tune (higher is better); each trial defines its own."""
TRIAL_ERROR = "trial_error"
"""A trial's last report carries this key (the error's text) when it failed in a way a retry would repeat
(e.g. a refused metrics row): it ends without an exception, so Tune does not retry it, and counts as failed
(``runtime.replicates.reported_error``; the searchers score it ``failure_score``)."""
RUN = "run"
"""Key of the run settings (not part of the configuration's identity)."""
REPLICATE = "__trial_index__"
"""Key of the replicate's index (``ray.tune.search.repeater.TRIAL_INDEX``)."""


def sections(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The config sections of a trial config: every dict-valued key but ``run``."""
    return {k: dict(v) for k, v in config.items() if isinstance(v, Mapping) and k != RUN}


def seeds_of(config: Mapping[str, Any]) -> list[int]:
    """Every seed the trial trains (its ``seeds``).

    Raises:
        KeyError: the config has no seeds (it was not made by the seed-replicate searcher).
    """
    return [int(s) for s in config.get(SEEDS) or [config[SEED]]]


def seed_of(config: Mapping[str, Any]) -> int:
    """The seed of a trial (or replicate) config of one seed.

    Raises:
        KeyError: the config has no seeds.
        ValueError: it holds several (a stacked trial: take its replicates, ``runtime.replicates``).
    """
    seeds = seeds_of(config)
    if len(seeds) != 1:
        raise ValueError(f"a trial config of {len(seeds)} seeds {seeds} has no one seed; read its replicates")
    return seeds[0]


def group_size(config: Mapping[str, Any]) -> int:
    """The group size K of the configuration's trials (1 when one seed a trial)."""
    return int(config.get(GROUP_SIZE, 1))


def with_seeds(config: Mapping[str, Any], seeds: Sequence[int], size: int) -> dict[str, Any]:
    """``config`` as a trial of the seed group ``seeds`` out of groups of ``size``."""
    return {**{k: v for k, v in config.items() if k != SEED}, SEEDS: [int(s) for s in seeds], GROUP_SIZE: int(size)}


def replicate_of(config: Mapping[str, Any]) -> int:
    """The trial's index among its configuration's replicates (0 for the first)."""
    return int(config.get(REPLICATE, 0))


def run_settings(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The trial's run settings (empty when none were given)."""
    return config.get(RUN) or {}


def steps_run(train_steps: int, run: Mapping[str, Any]) -> int:
    """The steps a seed of a ``train_steps`` schedule trains under the run settings ``run``: all of
    them, or ``max_steps`` where that stops it earlier."""
    max_steps = run.get("max_steps")
    return train_steps if max_steps is None else min(train_steps, int(max_steps))


def config_id(config: Mapping[str, Any]) -> str:
    """Short stable id of a configuration: the first 8 hex digits of the SHA-1 of its sections as
    sorted JSON (the seed and the run settings are not part of it)."""
    payload = json.dumps(sections(config), sort_keys=True, default=str)
    return hashlib.sha1(payload.encode()).hexdigest()[:8]


COLUMN_SEP = "/"
"""Joins section and field in table columns (``model/d_model``): MLflow's table viewer leaves a column
whose name holds a dot empty, and Optuna's flattened parameters use the same ``/``."""


def flat_fields(config: Mapping[str, Any], sep: str = ".") -> dict[str, Any]:
    """Every field of every section as ``section<sep>field`` -> value (``.`` for MLflow params,
    ``COLUMN_SEP`` for table columns)."""
    return {f"{name}{sep}{k}": v for name, fields in sections(config).items() for k, v in fields.items()}
