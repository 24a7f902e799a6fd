"""Search-space dimensions and the check that every point of a space is a valid configuration.

A space maps config fields to a constant or a dimension. ``validate`` builds the configuration at
every combination of each dimension's corner values (both ends of a range, the smallest and largest
of a numeric choice, every value of any other choice): the constraints of the configs are monotone
in sizes and ranks, so a space whose corners all pass holds no impossible point. When the corners
combine to more than ``MAX_CORNERS`` points (many non-numeric choices), it checks the all-low and
all-high corners and each field's values one at a time instead, so validation stays linear.
The first failure is raised with the field and the value.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from trainables.checks import ConfigError

if TYPE_CHECKING:
    from search_spaces.seeds import SeedRange


MAX_SEEDS = 10_000
"""Most seed replicates a space may hold (a sweep of more is a typo, not a study)."""
SEED_RANGE = (-2**63, 2**63 - 1)
"""A seed is a signed 64-bit integer (what torch and MLflow store)."""
MAX_CORNERS = 4096
"""Most configurations ``validate`` builds per section by combining corners; past it, one field at a time."""


class SearchSpaceError(ConfigError):
    """A search space holds an impossible configuration; the message names field and value."""


@dataclass(frozen=True)
class Choice:
    """One of a few values (categorical)."""

    values: tuple[Any, ...]

    def extremes(self) -> tuple[Any, ...]:
        return self.values


@dataclass(frozen=True)
class IntRange:
    """An integer in [low, high], optionally sampled on a log scale."""

    low: int
    high: int
    log: bool = False

    def extremes(self) -> tuple[Any, ...]:
        return (self.low, self.high)


@dataclass(frozen=True)
class LogUniform:
    """A float in [low, high] sampled uniformly in log space (learning rates)."""

    low: float
    high: float

    def extremes(self) -> tuple[Any, ...]:
        return (self.low, self.high)


Dimension = Choice | IntRange | LogUniform


@dataclass(frozen=True)
class SearchSpace:
    """What a sweep searches: per-section fields (constants or dimensions) and the seed replicates.

    Seeds are replicates, never searched: every suggested configuration runs once per seed.
    """

    name: str
    """Short name used by ``SPACE=`` and in run names."""
    description: str
    """One line on what the space is for."""
    seeds: tuple[int, ...]
    """Seed of each replicate of a configuration."""
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Config section ('model', 'train') -> field -> constant or dimension."""
    points_to_evaluate: tuple[Mapping[str, Mapping[str, Any]], ...] = ()
    """Configurations run first (section -> field -> value), e.g. one the record says works."""
    source: str = ""
    """The file the space was read from ('' for one built in code); error messages name it."""
    seed_range: Optional["SeedRange"] = None
    """A sequential seed design (``seeds`` then lists its order, ``max_seeds`` long); None: fixed."""

    def dimensions(self) -> dict[str, Dimension]:
        """Searched fields as ``section.field`` -> dimension."""
        return {f"{s}.{k}": v for s, fields in self.sections.items() for k, v in fields.items()
                if isinstance(v, (Choice, IntRange, LogUniform))}

    def label(self) -> str:
        """How messages name the space: ``'name'`` and, when read from a file, the file."""
        return f"{self.name!r}" + (f" ({self.source})" if self.source else "")

    def with_overrides(self, **sections: Mapping[str, Any]) -> "SearchSpace":
        """A copy with some fields of some sections replaced (constants or dimensions).

        Points to evaluate keep only the fields that are still searched.
        """
        merged = {s: dict(fields) for s, fields in self.sections.items()}
        for section, values in sections.items():
            merged.setdefault(section, {}).update(values)
        searched = {s: {k for k, v in fields.items() if isinstance(v, (Choice, IntRange, LogUniform))}
                    for s, fields in merged.items()}
        points = tuple({s: {k: v for k, v in values.items() if k in searched.get(s, ())} for s, values in point.items()}
                       for point in self.points_to_evaluate)
        return dataclasses.replace(self, sections=merged, points_to_evaluate=points)

    def with_seeds(self, seeds: tuple[int, ...]) -> "SearchSpace":
        """A copy with other seed replicates."""
        return dataclasses.replace(self, seeds=tuple(seeds))

    def with_seed_count(self, count: int) -> "SearchSpace":
        """A copy with ``count`` replicates: the first of its seeds, extended by consecutive integers.

        Raises:
            SearchSpaceError: ``count`` outside 1..``MAX_SEEDS``.
        """
        if not (isinstance(count, int) and 1 <= count <= MAX_SEEDS):
            raise SearchSpaceError(f"seeds must be 1 to {MAX_SEEDS} replicates, got {count!r}")
        seeds = list(self.seeds[:count])
        start = max(seeds, default=-1) + 1
        seeds += range(start, start + count - len(seeds))
        return self.with_seeds(tuple(seeds))


def _check_dimension(name: str, dim: Any) -> None:
    if isinstance(dim, Choice):
        if not dim.values:
            raise SearchSpaceError(f"{name}: a Choice needs at least one value")
    elif isinstance(dim, (IntRange, LogUniform)):
        if not dim.low <= dim.high:
            raise SearchSpaceError(f"{name}: low={dim.low} must not exceed high={dim.high}")
        if isinstance(dim, LogUniform) or dim.log:
            if not (dim.low > 0 and math.isfinite(dim.high)):
                raise SearchSpaceError(f"{name}: a log-scale range needs 0 < low, got low={dim.low}")


def validate(space: SearchSpace, builders: Mapping[str, Callable[..., Any]]) -> int:
    """Check that every point of ``space`` builds a valid config; returns the corners checked.

    Args:
        space: the space.
        builders: section name -> config constructor taking that section's fields as keywords and
            raising ``ValueError`` naming the field and value (e.g. ``ModelConfig``).

    Raises:
        SearchSpaceError: no seeds, duplicate seeds, an unknown section, a malformed dimension, or
            a corner that the section's constructor rejects (its message, with the space's name).
    """
    if not space.seeds:
        raise SearchSpaceError(f"search space {space.label()}: seeds must name at least one replicate")
    if len(space.seeds) > MAX_SEEDS:
        raise SearchSpaceError(f"search space {space.label()}: {len(space.seeds)} seeds, more than {MAX_SEEDS}")
    outside = [s for s in space.seeds if not (isinstance(s, int) and SEED_RANGE[0] <= s <= SEED_RANGE[1])]
    if outside:
        raise SearchSpaceError(f"search space {space.label()}: seed {outside[0]!r} is not a 64-bit integer")
    if len(set(space.seeds)) != len(space.seeds):
        raise SearchSpaceError(f"search space {space.label()}: seeds repeat: {list(space.seeds)}")
    unknown = sorted(set(space.sections) - set(builders))
    if unknown:
        raise SearchSpaceError(f"search space {space.label()}: unknown section(s) {', '.join(unknown)}")
    for name, dim in space.dimensions().items():
        _check_dimension(f"search space {space.label()}: {name}", dim)
    checked = 0
    for section, fields in space.sections.items():
        names = list(fields)
        for combo in corner_points([corners(v) for v in fields.values()]):
            point = dict(zip(names, combo))
            try:
                builders[section](**point)
            except ValueError as error:
                raise SearchSpaceError(f"search space {space.label()}, section {section!r}: {error}") from error
            except TypeError as error:
                raise SearchSpaceError(f"search space {space.label()}, section {section!r}: {_wrong_type(point, fields, error)}") \
                    from error
            checked += 1
    for point in space.points_to_evaluate:
        _check_point(space, point, builders)
    return checked


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def corners(value: Any) -> tuple[Any, ...]:
    """The values ``validate`` tries for one field: a constant itself, a range's ends, a numeric
    choice's smallest and largest value, every value of any other choice."""
    if isinstance(value, Choice) and len(value.values) > 2 and all(is_number(v) for v in value.values):
        return (min(value.values), max(value.values))
    return value.extremes() if isinstance(value, (Choice, IntRange, LogUniform)) else (value,)


def upper_value(value: Any) -> Any:
    """The largest value a field can take: a constant itself, a range's high end, a numeric choice's largest."""
    if isinstance(value, Choice):
        numbers = [v for v in value.values if is_number(v)]
        return max(numbers) if numbers else value.values[0]
    return value.high if isinstance(value, (IntRange, LogUniform)) else value


def corner_points(options: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Every combination of the fields' corners when there are at most ``MAX_CORNERS``; otherwise the
    all-first and all-last corners and each field's every corner with the others at their first."""
    if math.prod(len(o) for o in options) <= MAX_CORNERS:
        return list(itertools.product(*options))
    first, last = tuple(o[0] for o in options), tuple(o[-1] for o in options)
    points = [first, last]
    for index, values in enumerate(options):
        points += [first[:index] + (v,) + first[index + 1:] for v in values[1:]]
    return points


def _wrong_type(point: Mapping[str, Any], fields: Mapping[str, Any], error: TypeError) -> str:
    """A builder's TypeError as a message naming the fields holding text where numbers are compared
    (a choice mixing numbers and text first, else every text value)."""
    texts = {k: v for k, v in point.items() if isinstance(v, str)}
    mixed = {k: v for k, v in texts.items()
             if isinstance(fields[k], Choice) and any(is_number(c) for c in fields[k].values)}
    if texts and "not supported between" in str(error):
        shown = ", ".join(f"{k}={v!r}" for k, v in (mixed or texts).items())
        return f"a field that must be a number holds text ({shown}): {error}"
    return str(error)


def _contains(dim: Any, value: Any) -> bool:
    if isinstance(dim, Choice):
        return value in dim.values
    if isinstance(dim, (IntRange, LogUniform)):
        return dim.low <= value <= dim.high
    return value == dim


def _check_point(space: SearchSpace, point: Mapping[str, Mapping[str, Any]],
                 builders: Mapping[str, Callable[..., Any]]) -> None:
    for section, values in point.items():
        fields = space.sections.get(section, {})
        for key, value in values.items():
            if key in fields and not _contains(fields[key], value):
                raise SearchSpaceError(f"search space {space.label()}: point to evaluate has {section}.{key}={value!r}, "
                                       f"outside its dimension {fields[key]}")
        try:
            builders[section](**{**{k: v for k, v in fields.items()
                                    if not isinstance(v, (Choice, IntRange, LogUniform))}, **values})
        except (TypeError, ValueError) as error:
            raise SearchSpaceError(f"search space {space.label()}, point to evaluate: {error}") from error


def parse_dimension(name: str, value: Any) -> Any:
    """A dimension from its data form: ``{choice = [...]}``, ``{loguniform = [lo, hi]}``,
    ``{randint = [lo, hi]}`` (inclusive), ``{lograndint = [lo, hi]}``; anything else is a constant.

    Raises:
        SearchSpaceError: a table with another key or a malformed range (names the field).
    """
    if not isinstance(value, Mapping):
        return value
    kinds = ("choice", "loguniform", "randint", "lograndint")
    if len(value) != 1 or next(iter(value)) not in kinds:
        raise SearchSpaceError(f"{name}: a dimension is one of {', '.join(kinds)}; got {dict(value)}")
    (kind, args), = value.items()
    if kind == "choice":
        if not isinstance(args, (list, tuple)) or not args:
            raise SearchSpaceError(f"{name}: choice needs a non-empty list of values, got {args!r}")
        return Choice(tuple(args))
    if kind in ("loguniform", "randint", "lograndint") and isinstance(args, (list, tuple)) and len(args) == 2:
        if not all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in args):
            raise SearchSpaceError(f"{name}: {kind} needs two finite numbers [low, high], got {args!r}")
        if kind == "loguniform":
            return LogUniform(float(args[0]), float(args[1]))
        return IntRange(int(args[0]), int(args[1]), log=kind == "lograndint")
    raise SearchSpaceError(f"{name}: {kind} needs [low, high] (or choice a list), got {args!r}")


def space_from_table(name: str, description: str, table: Mapping[str, Any], section: str) -> SearchSpace:
    """A one-section space from a data table whose ``seeds`` key lists the replicates.

    Raises:
        SearchSpaceError: no seeds list, or a malformed dimension.
    """
    fields = dict(table)
    seeds = fields.pop("seeds", None)
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise SearchSpaceError(f"search space {name!r}: seeds must be a list of integers, got {seeds!r}")
    return SearchSpace(name, description, tuple(seeds), {section: {k: parse_dimension(k, v) for k, v in fields.items()}})
