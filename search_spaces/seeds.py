"""A sweep's seed design as data: a fixed list (or count) of seeds, or a sequential range min..max.

In a space file:

    seeds = [0, 1, 2]                 # fixed: every configuration runs once per seed
    seeds = { min = 3, max = 12 }     # sequential: 3 seeds each, more while the decision is open, at most 12

From make and the CLIs: ``SEEDS=3`` / ``--seeds 3`` (a fixed count: the space's first 3 seeds, extended by
consecutive integers) and ``SEEDS=3..12`` / ``--seeds 3..12`` (sequential). The rule that spends a range
lives in ``tune_jobs.verdicts.sequential``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Union

from search_spaces.dimensions import MAX_SEEDS, SearchSpace, SearchSpaceError

_COUNT = re.compile(r"\s*(\d+)\s*")
_RANGE = re.compile(r"\s*(\d+)\s*\.\.\s*(\d+)\s*")


@dataclass(frozen=True)
class SeedRange:
    """A sequential design's seed counts: every configuration gets ``min_seeds``, none more than ``max_seeds``."""

    min_seeds: int
    """Seeds every configuration gets before its decision can stop it."""
    max_seeds: int
    """Seeds after which a configuration still open stops, UNDECIDED."""

    def __post_init__(self) -> None:
        check_range(self.min_seeds, self.max_seeds, f"{self.min_seeds}..{self.max_seeds}")

    def __str__(self) -> str:
        return f"{self.min_seeds}..{self.max_seeds}"


SeedDesign = Union[tuple[int, ...], SeedRange]
"""A space file's ``seeds``: the fixed seeds, or a sequential range."""


def check_range(low: Any, high: Any, where: str) -> None:
    """Raise SearchSpaceError (one line naming ``where``) unless 1 <= low <= high <= MAX_SEEDS, integers."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
        raise SearchSpaceError(f"{where}: min and max must be integers, got min={low!r}, max={high!r}")
    if low < 1:
        raise SearchSpaceError(f"{where}: min={low} must be at least 1")
    if low > high:
        raise SearchSpaceError(f"{where}: min={low} must not exceed max={high}")
    if high > MAX_SEEDS:
        raise SearchSpaceError(f"{where}: max={high} must not exceed {MAX_SEEDS}")


def parse_seed_option(text: str, option: str = "--seeds") -> Union[int, SeedRange]:
    """``--seeds`` / ``SEEDS=`` text: ``'3'`` -> 3 (a fixed count), ``'3..12'`` -> SeedRange(3, 12).

    Raises:
        SearchSpaceError: anything else, a count outside [1, MAX_SEEDS], or an impossible range; one
            line naming ``option`` and the text.
    """
    text = str(text)
    count, bounds = _COUNT.fullmatch(text), _RANGE.fullmatch(text)
    if count:
        check_range(int(count[1]), int(count[1]), f"{option} {text!r}")
        return int(count[1])
    if bounds:
        check_range(int(bounds[1]), int(bounds[2]), f"{option} {text!r}")
        return SeedRange(int(bounds[1]), int(bounds[2]))
    raise SearchSpaceError(f"{option} {text!r}: expected a count (3) or a range min..max (3..12)")


def seed_design(value: Any, where: str) -> SeedDesign:
    """A space file's ``seeds`` value: a list of integers (fixed) or a table ``{ min = 3, max = 12 }``.

    Args:
        where: how errors name the field, e.g. ``'search space file x.toml: seeds'``.

    Raises:
        SearchSpaceError: anything else, an empty or repeating list, unknown keys, or an impossible
            range; one line naming ``where`` and the value.
    """
    if isinstance(value, list):
        if not value or not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
            raise SearchSpaceError(f"{where} must be a non-empty list of integers or {{ min = 3, max = 12 }}, "
                                   f"got {value!r}")
        if len(set(value)) != len(value):
            raise SearchSpaceError(f"{where}: seeds repeat: {value!r}")
        return tuple(value)
    if isinstance(value, dict):
        if set(value) != {"min", "max"}:
            raise SearchSpaceError(f"{where}: a sequential design is {{ min = 3, max = 12 }}, got {value!r}")
        check_range(value["min"], value["max"], f"{where} {value!r}")
        return SeedRange(value["min"], value["max"])
    raise SearchSpaceError(f"{where} must be a non-empty list of integers or {{ min = 3, max = 12 }}, got {value!r}")


def design_seeds(design: SeedDesign) -> tuple[int, ...]:
    """The seeds a space holds for ``design``: the list itself, or 0..max-1 for a range."""
    return tuple(range(design.max_seeds)) if isinstance(design, SeedRange) else tuple(design)


def with_seed_option(space: SearchSpace, option: Union[int, SeedRange, None]) -> SearchSpace:
    """``space`` after ``--seeds``: a count makes it fixed with that many seeds, a range makes it
    sequential with the space's seeds (extended by consecutive integers) as the order, None keeps it."""
    if option is None:
        return space
    if isinstance(option, SeedRange):
        return dataclasses.replace(space.with_seed_count(option.max_seeds), seed_range=option)
    return dataclasses.replace(space.with_seed_count(option), seed_range=None)
