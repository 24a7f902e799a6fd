"""Sequential seed allocation: which configuration gets its next seeds now, and each configuration's decision.

A pure policy object (no Ray): a searcher asks ``next_group`` when a slot frees, reports each seed with
``finish`` or ``error``, reads ``decision``/``decisions``, and saves ``to_dict`` in its checkpoint;
``SeedAllocation.from_dict`` continues the same decision sequence. A configuration gets its first
``min_seeds`` (in groups of ``group_size``) at once, then a group whenever its running seeds are fewer
than ``design.in_flight_limit()`` while its decision is open, up to ``max_seeds`` seeds handed out. Seeds
are handed out in ``design.seeds()`` order; decisions read the finished seeds in that order up to the
first still running (the seed-order prefix, ``sequential`` module doc), skipping crashed ones. The rules
and their sources: ``tune_jobs.verdicts.sequential``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Optional

import pandas as pd

from tune_jobs.verdicts.seeds import INTERRUPTED, wilson_interval
from tune_jobs.verdicts.sequential import (
    DECIDED, DOMINATED, INTERVAL_KIND, OPEN, UNDECIDED, SequentialDesign, decide, dominated_by,
)


@dataclass(frozen=True)
class SeedDecision:
    """Where one configuration stands: its decision, the confidence sequence, and the descriptive figures."""

    config_id: str
    label: str
    """RELIABLE, UNRELIABLE, SEED-SENSITIVE, DOMINATED, UNDECIDED, or OPEN (still getting seeds)."""
    cs_seeds: int
    """Finished seeds the confidence sequence has read (the seed-order prefix)."""
    cs_successes: int
    cs_low: float
    cs_high: float
    """The anytime-valid interval (``sequential.INTERVAL_KIND``) at level 1 - alpha."""
    seeds_run: int
    """Finished seeds, whatever their order (the descriptive k/n)."""
    successes: int
    wilson_low: float
    wilson_high: float
    """95% Wilson interval of successes/seeds_run (descriptive, not anytime-valid; nan when none ran)."""
    seeds_started: int
    in_flight: int
    errored: int
    dominated_by: Optional[str] = None
    """The configuration that dominates this one (its high below that one's low), if any."""

    def as_dict(self) -> dict[str, Any]:
        """Flat fields (a table row, MLflow params/tags)."""
        return asdict(self)


@dataclass
class _Seeds:
    started: list[int] = field(default_factory=list)
    outcomes: dict[int, bool] = field(default_factory=dict)
    errored: set[int] = field(default_factory=set)

    def in_flight(self) -> int:
        return len(self.started) - len(self.outcomes) - len(self.errored)

    def prefix(self) -> list[bool]:
        """Outcomes in hand-out order up to the first seed still running, crashed seeds skipped."""
        found = []
        for seed in self.started:
            if seed in self.outcomes:
                found.append(self.outcomes[seed])
            elif seed not in self.errored:
                break
        return found


class SeedAllocation:
    """The sequential design's state over a sweep's configurations (module doc)."""

    def __init__(self, design: SequentialDesign) -> None:
        self.design = design
        self._configs: dict[str, _Seeds] = {}
        self._intervals: dict[tuple[bool, ...], tuple[float, float]] = {}

    def add(self, config_id: str) -> None:
        """Register a configuration (racing compares registered ones; order breaks ties)."""
        self._configs.setdefault(str(config_id), _Seeds())

    def config_ids(self) -> list[str]:
        """Registered configurations, in registration order."""
        return list(self._configs)

    def may_start(self, config_id: str, spare: bool = False) -> bool:
        """Whether ``config_id`` gets another seed group now (a new configuration always does); with
        ``spare`` (a slot nothing else can use) past ``design.in_flight_limit()`` too, while its
        decision is open and below ``max_seeds``."""
        seeds = self._configs.get(str(config_id))
        if seeds is None:
            return True
        started = len(seeds.started)
        if started >= self.design.max_seeds or self.decision(config_id).label != OPEN:
            return False
        room = seeds.in_flight() + self.design.group_size <= self.design.in_flight_limit()
        return started < self.design.min_seeds or room or spare

    def next_group(self, config_id: str, spare: bool = False) -> tuple[int, ...]:
        """The seeds ``config_id`` starts now (empty when it gets none; ``spare`` as ``may_start``),
        marked as running.

        Seeds come in ``design.seeds()`` order, ``group_size`` at a time (fewer at ``max_seeds``).
        """
        if not self.may_start(config_id, spare):
            return ()
        self.add(config_id)
        seeds = self._configs[str(config_id)]
        group = self.design.seeds()[len(seeds.started):len(seeds.started) + self.design.group_size]
        seeds.started.extend(group)
        return tuple(group)

    def finish(self, config_id: str, seed: int, success: bool) -> None:
        """Record a finished seed's outcome.

        Raises:
            KeyError: ``seed`` was never handed out to ``config_id``, or already reported.
        """
        self._running(config_id, seed).outcomes[int(seed)] = bool(success)

    def error(self, config_id: str, seed: int) -> None:
        """Record a crashed seed: it has no outcome, the decision skips it, it still counts toward max_seeds.

        Raises:
            KeyError: as ``finish``.
        """
        self._running(config_id, seed).errored.add(int(seed))

    def _running(self, config_id: str, seed: int) -> _Seeds:
        seeds = self._configs.get(str(config_id))
        if seeds is None or int(seed) not in seeds.started or int(seed) in seeds.outcomes or int(seed) in seeds.errored:
            raise KeyError(f"seed {seed!r} of configuration {config_id!r} is not running")
        return seeds

    def outcomes(self, config_id: str) -> list[bool]:
        """The outcomes a configuration's decision reads: in hand-out order up to its first seed still
        running, crashed seeds skipped.

        Raises:
            KeyError: an unregistered configuration.
        """
        return self._configs[str(config_id)].prefix()

    def decisions(self) -> list[SeedDecision]:
        """Every registered configuration's decision, in registration order."""
        ids = list(self._configs)
        if not ids:
            return []
        prefixes = [self._configs[i].prefix() for i in ids]
        intervals = [self._interval(tuple(p)) for p in prefixes]
        dominators = dominated_by([low for low, _ in intervals], [high for _, high in intervals])
        return [self._decision(i, p, interval, ids[d] if d >= 0 else None)
                for i, p, interval, d in zip(ids, prefixes, intervals, dominators.tolist())]

    def _interval(self, prefix: tuple[bool, ...]) -> tuple[float, float]:
        if prefix not in self._intervals:
            self._intervals[prefix] = self.design.interval(prefix)
        return self._intervals[prefix]

    def decision(self, config_id: str) -> SeedDecision:
        """One configuration's decision (racing against all registered ones).

        Raises:
            KeyError: an unregistered configuration.
        """
        for found in self.decisions():
            if found.config_id == str(config_id):
                return found
        raise KeyError(f"configuration {config_id!r} has no seeds")

    def _decision(self, config_id: str, prefix: list[bool], interval: tuple[float, float],
                  dominator: Optional[str]) -> SeedDecision:
        seeds, design = self._configs[config_id], self.design
        ready = len(prefix) >= design.min_seeds
        own = str(decide(*interval, design.reliable_bar, design.failure_bar)) if ready else OPEN
        dominator = dominator if ready and design.racing else None
        exhausted = len(seeds.started) >= design.max_seeds and seeds.in_flight() == 0
        label = own if own in DECIDED else DOMINATED if dominator else UNDECIDED if exhausted else OPEN
        finished = list(seeds.outcomes.values())
        wilson = wilson_interval(sum(finished), len(finished))
        return SeedDecision(config_id, label, len(prefix), sum(prefix), interval[0], interval[1], len(finished),
                            sum(finished), wilson[0], wilson[1], len(seeds.started), seeds.in_flight(),
                            len(seeds.errored), dominator)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (the design and each configuration's seeds and outcomes)."""
        return {"design": self.design.as_dict(),
                "configs": [{"config_id": i, "started": list(s.started),
                             "outcomes": [[seed, s.outcomes[seed]] for seed in s.started if seed in s.outcomes],
                             "errored": sorted(s.errored)} for i, s in self._configs.items()]}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> "SeedAllocation":
        """The allocation ``to_dict`` saved.

        Raises:
            ValueError: an impossible design; KeyError: a missing key.
        """
        allocation = cls(SequentialDesign.from_dict(state["design"]))
        for entry in state["configs"]:
            allocation._configs[str(entry["config_id"])] = _Seeds(
                [int(s) for s in entry["started"]], {int(s): bool(ok) for s, ok in entry["outcomes"]},
                {int(s) for s in entry["errored"]})
        return allocation


DECISION_COLUMNS = ("cs_low", "cs_high", "cs_seeds", "dominated_by", "interval")
"""Columns ``decision_table`` adds to a verdict table."""


def replayed(design: SequentialDesign, trials: pd.DataFrame, threshold: float) -> SeedAllocation:
    """The allocation a sweep's trial table implies: each configuration (in order of first appearance)
    with its seeds in ``design.seeds()`` order, a finished seed a success when its ``best_exact_match``
    reaches ``threshold``, an errored one crashed, an interrupted one still running. Replaying the
    table gives the decisions the searcher reached (each is final once reached: module
    ``sequential``), whether or not the sweep was resumed.

    Raises:
        KeyError: the table lacks ``config_id``, ``seed``, ``status`` or ``best_exact_match``.
    """
    allocation, order = SeedAllocation(design), {seed: i for i, seed in enumerate(design.seeds())}
    for config_id, group in trials.groupby("config_id", sort=False):
        rows = sorted(group.itertuples(), key=lambda row: order.get(int(row.seed), len(order) + int(row.seed)))
        allocation._configs[str(config_id)] = _Seeds(
            [int(row.seed) for row in rows],
            {int(row.seed): bool(row.best_exact_match >= threshold) for row in rows if row.status == "finished"},
            {int(row.seed) for row in rows if row.status == "errored"})
    return allocation


def decision_table(table: pd.DataFrame, trials: pd.DataFrame, design: SequentialDesign, threshold: float
                   ) -> pd.DataFrame:
    """A verdict table (``verdicts.seeds.verdict_table``) under a sequential design: ``verdict`` is
    each configuration's decision (RELIABLE, UNRELIABLE, SEED-SENSITIVE, DOMINATED or UNDECIDED; an
    INTERRUPTED one stays so), beside ``DECISION_COLUMNS``: the anytime-valid interval at level
    1 - alpha, the seeds it read, the configuration that dominates it (by name) and the interval's kind.
    The descriptive k/n and Wilson interval stay as they are."""
    if table.empty:
        return table
    decisions = {d.config_id: d for d in replayed(design, trials, threshold).decisions()}
    names = dict(zip(table["config_id"], table["name"] if "name" in table else table["config_id"]))
    rows = [decisions[str(c)] for c in table["config_id"]]
    verdicts = [v if v == INTERRUPTED else d.label for v, d in zip(table["verdict"], rows)]
    return table.assign(verdict=verdicts, cs_low=[d.cs_low for d in rows], cs_high=[d.cs_high for d in rows],
                        cs_seeds=[d.cs_seeds for d in rows],
                        dominated_by=[names.get(d.dominated_by, d.dominated_by) or "" for d in rows],
                        interval=INTERVAL_KIND)
