"""Sequential seeds in the search: each configuration gets seeds while its success rate is undecided.

``SequentialReplicates`` wraps an inner searcher (Optuna's TPE, or a fixed list) as ``SeedReplicates``
does, but a configuration's trials are not a fixed list: the policy object
``tune_jobs.verdicts.allocation.SeedAllocation`` hands it its first ``min_seeds`` at once, then one
more seed group after its running ones finish while its decision is open, up to ``max_seeds``
(``tune_jobs.verdicts.sequential``: a beta-binomial mixture confidence sequence, bars, racing). A
trial config carries its group as ever (``trial_config.SEEDS``), so stacking stays a group size.

Which trial a freed slot gets: a configuration still short of its first ``min_seeds``, then a new
configuration (every configuration gets its first seeds before any gets more: racing needs the strong
ones early, as in F-race and SMAC's intensification), then a configuration whose decision is open, the
one whose seeds are likeliest to fail (they train the whole schedule) first, so that the slots drain
together at the end of the sweep; a
slot that no configuration may use under the design's in-flight limit and no new configuration can
take goes to an open configuration anyway (a spare seed: idle capacity costs the same and the
decision still reads seeds in order, so it stays valid; a decision reached while it runs wastes it). When
a configuration's seeds are done (decided, DOMINATED or UNDECIDED at ``max_seeds``), the inner
searcher is told its success rate (successes over finished seeds; ``failure_score`` when none
finished), a value a reader of Optuna's dashboard understands.

Ray's ``Repeater`` loses its groups when a Tuner is restored (ray#11918); this searcher keeps its
whole state in ``get_state`` (Tune's ``SearchGenerator`` saves it beside the inner searcher's
checkpoint), so a resumed sweep continues the same decision sequence.
"""

from __future__ import annotations

import copy
from typing import Any, Optional

from ray.tune.search import Searcher

from tune_jobs.runtime.replicates import reported_error, split_result
from tune_jobs.runtime.trial_config import REPLICATE, with_seeds
from tune_jobs.verdicts.allocation import SeedAllocation
from tune_jobs.verdicts.sequential import OPEN, SequentialDesign

SUCCESS = "success"
"""Key of a seed's 0/1 outcome in a trial's report (``trials.addition``, ``trials.command``)."""


class SequentialReplicates(Searcher):
    """Sequential seed allocation over the configurations ``searcher`` suggests (module doc).

    Args:
        searcher: the inner searcher; it sees one trial per configuration, named by the Tune trial id
            of the configuration's first trial, and is told the configuration's success rate.
        design: the seed design (``min_seeds``, ``max_seeds``, group size, bars, alpha, racing).
        num_configs: configurations asked of ``searcher`` at most (it may finish earlier).
        failure_score: what the inner searcher is told for a configuration no seed of which finished.
    """

    def __init__(self, searcher: Searcher, design: SequentialDesign, num_configs: int,
                 failure_score: float = 0.0) -> None:
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher = searcher
        self.design = design
        self.num_configs = num_configs
        self.failure_score = failure_score
        self.allocation = SeedAllocation(design)
        self.configs: dict[str, dict[str, Any]] = {}
        """Configuration key (its first trial's id) -> the inner searcher's config."""
        self.trials: dict[str, tuple[str, tuple[int, ...]]] = {}
        """Running trial id -> (configuration key, its seed group)."""
        self.handed: dict[str, int] = {}
        """Configuration key -> the index of its latest trial (``trial_config.REPLICATE``)."""
        self.told: dict[str, float] = {}
        """Configuration key -> the success rate the inner searcher was told."""
        self.inner_finished = False

    def max_trials(self, num_configs: int) -> int:
        """Trials ``num_configs`` configurations can run at most (Tune's ``num_samples``): each at ``max_seeds``."""
        return num_configs * -(-self.design.max_seeds // self.design.group_size)

    def planned_seeds(self, num_configs: int) -> int:
        """Seeds the sweep may still spend in all, for a progress line: those started by each configuration
        whose seeds are done, ``max_seeds`` for each other one of ``num_configs``."""
        return self._seeds_spent(num_configs, self.design.max_seeds)

    def least_seeds(self, num_configs: int) -> int:
        """Seeds the sweep spends at the least, for a progress line: those started by each configuration
        whose seeds are done; for each open one, and each still to come, the fewest after which it may be
        decided (``SequentialDesign.fewest_to_decide``: 7 at 3..12, 3 at 2..3) or what it started."""
        return self._seeds_spent(num_configs, self.design.fewest_to_decide())

    def _seeds_spent(self, num_configs: int, per_open: int) -> int:
        """Seeds started by the configurations whose seeds are done, plus ``per_open`` (or what it has
        started, if more) for each open configuration and each of ``num_configs`` still to come."""
        started = {d.config_id: d.seeds_started for d in self.allocation.decisions()}
        done = sum(started[key] for key in self.told)
        open_ = sum(max(per_open, started.get(key, 0)) for key in self.configs if key not in self.told)
        return done + open_ + max(num_configs - len(self.configs), 0) * per_open

    def suggest(self, trial_id: str) -> Optional[dict | str]:
        key = self._next_open(below_min=True)
        if key is None and len(self.configs) < self.num_configs and not self.inner_finished:
            config = self.searcher.suggest(trial_id)
            if config == Searcher.FINISHED:
                self.inner_finished = True
            elif config is None:
                return None
            else:
                key = trial_id
                self.configs[key] = copy.deepcopy(config)
                self.allocation.add(key)
        key = key or self._next_open()
        spare = key is None
        if spare:
            key = self._next_open(spare=True)
        if key is None:
            return Searcher.FINISHED if self._all_done() else None
        group = self.allocation.next_group(key, spare)
        self.trials[trial_id] = (key, group)
        config = with_seeds(self.configs[key], group, self.design.group_size)
        config[REPLICATE] = self.handed[key] = self.handed.get(key, -1) + 1
        return config

    def _next_open(self, spare: bool = False, below_min: bool = False) -> Optional[str]:
        """The registered configuration a freed slot should serve (module doc), None when none may start
        (``spare``: a slot no configuration and no new one can use, ``SeedAllocation.may_start``;
        ``below_min``: only configurations that have not had their first ``min_seeds`` yet)."""
        decisions = {d.config_id: d for d in self.allocation.decisions()}
        ready = [key for key in self.configs if self.allocation.may_start(key, spare)
                 and (not below_min or decisions[key].seeds_started < self.design.min_seeds)]
        if not ready:
            return None

        def order(key: str) -> tuple[bool, float, int]:
            decision = decisions[key]
            rate = decision.successes / decision.seeds_run if decision.seeds_run else 0.5
            return decision.seeds_started >= self.design.min_seeds, rate, list(self.configs).index(key)

        return min(ready, key=order)

    def _all_done(self) -> bool:
        return not self.trials and not any(self.allocation.may_start(key) for key in self.configs)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False, **kwargs: Any) -> None:
        """Record each seed of the trial (a success, a failure, or crashed: an error, a diverged seed,
        a reported error such as a refused metrics row, or a report without ``success``) and tell the
        inner searcher of configurations now done."""
        if trial_id not in self.trials:
            return
        key, group = self.trials.pop(trial_id)
        config = with_seeds(self.configs[key], group, self.design.group_size)
        per_seed = {} if error or not result else split_result(result, config)
        for seed in group:
            metrics = per_seed.get(seed, {})
            if reported_error(metrics) or metrics.get(SUCCESS) is None:
                self.allocation.error(key, seed)
            else:
                self.allocation.finish(key, seed, bool(metrics[SUCCESS]))
        self._tell_done()

    def _tell_done(self) -> None:
        for decision in self.allocation.decisions():
            key = decision.config_id
            if key in self.told or decision.label == OPEN or decision.in_flight:
                continue
            rate = decision.successes / decision.seeds_run if decision.seeds_run else self.failure_score
            self.told[key] = rate
            self.searcher.on_trial_complete(key, result={self.searcher.metric: rate})

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Intermediate results are not passed on: the inner searcher judges configurations, not seeds."""

    def get_state(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["searcher"]
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)

    def set_search_properties(self, metric: Optional[str], mode: Optional[str], config: dict, **spec: Any) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)
