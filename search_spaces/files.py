"""Search spaces as data files a user edits without Python, and ``--set`` overrides of their fields.

A space file (``search_spaces/<family>/<name>.toml``, or any path) holds:

    description = "one line on what the space is for"
    seeds = [0, 1, 2]                        # replicates: every configuration runs once per seed
                                             # (or { min = 3, max = 12 }: sequential, search_spaces/seeds.py)

    [model]                                  # one table per config section of the trainable
    d_model = { choice = [7, 8, 16] }        # a dimension: choice, loguniform, randint, lograndint
    tie_qkv = "none"                         # anything else is a constant

    [[points_to_evaluate]]                   # configurations run first, in order
    label = "the record's fast learner"      # optional, for readers
    model = { d_model = 8 }

``--set section.field=value`` fixes or re-ranges one field; the value is read as a TOML value
(``0.015``, ``"fast"``, ``[[0, 1, 3]]``, ``{loguniform = [0.005, 0.03]}``), else taken as a string.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from search_spaces.dimensions import SearchSpace, SearchSpaceError, is_number, parse_dimension, upper_value, validate
from search_spaces.seeds import SeedRange, design_seeds, seed_design

SPACES_DIR = Path(__file__).resolve().parent
"""Folder of the shipped spaces: one subfolder per trainable family (addition, lm)."""
ASSIGNMENT = re.compile(r"(?P<section>[A-Za-z_][A-Za-z0-9_]*)\.(?P<field>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)", re.S)


def space_names(family: str) -> list[str]:
    """Names of the shipped spaces of a family."""
    return sorted(path.stem for path in (SPACES_DIR / family).glob("*.toml"))


def space_path(name: str, family: str) -> Path:
    """The file of a shipped space by name, or ``name`` itself when it is a path to a .toml file.

    Raises:
        SearchSpaceError: no such space (the shipped names are listed).
    """
    path = Path(name).expanduser() if name.endswith(".toml") else SPACES_DIR / family / f"{name}.toml"
    if not path.is_file():
        raise SearchSpaceError(f"search space {name!r} not found ({path}); shipped {family} spaces: "
                               f"{', '.join(space_names(family))}, or give a path to a .toml file")
    return path.resolve()


def load_space(name: str, family: str) -> SearchSpace:
    """Read a space file (see the module doc); not yet validated against a trainable's configs.

    Raises:
        SearchSpaceError: missing file, invalid TOML, or a malformed entry; names the file and the key.
    """
    path = space_path(name, family)
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SearchSpaceError(f"search space file {path}: not valid TOML: {error}") from error
    description = data.pop("description", "")
    seeds = data.pop("seeds", None)
    points = data.pop("points_to_evaluate", [])
    design = seed_design(seeds, f"search space file {path}: seeds")
    loose = [key for key, value in data.items() if not isinstance(value, dict)]
    if loose or not isinstance(description, str) or not isinstance(points, list):
        raise SearchSpaceError(f"search space file {path}: top-level keys are description, seeds, "
                               f"points_to_evaluate and one table per section; got {', '.join(loose) or 'a bad type'}")
    sections = {section: {key: parse_dimension(f"{path}: {section}.{key}", value) for key, value in fields.items()}
                for section, fields in data.items()}
    try:
        point_list = tuple({s: dict(v) for s, v in point.items() if s != "label"} for point in points)
    except (AttributeError, TypeError, ValueError) as error:
        raise SearchSpaceError(f"search space file {path}: each points_to_evaluate entry is a table of "
                               f"section tables") from error
    return SearchSpace(path.stem, description, design_seeds(design), sections, point_list, source=str(path),
                       seed_range=design if isinstance(design, SeedRange) else None)


def parse_assignment(text: str) -> tuple[str, str, Any]:
    """``section.field=value`` as (section, field, value); the value is read as TOML, else kept as text.

    Raises:
        SearchSpaceError: not of that form (names the text).
    """
    match = ASSIGNMENT.fullmatch(text.strip())
    if match is None:
        raise SearchSpaceError(f"--set {text!r}: expected section.field=value, e.g. train.lr=0.015 or "
                               f"'train.lr={{loguniform=[0.005,0.03]}}'")
    raw = match["value"].strip()
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw
    name = f"{match['section']}.{match['field']}"
    return match["section"], match["field"], parse_dimension(f"--set {name}", value)


def with_sets(space: SearchSpace, assignments: Sequence[str],
              builders: Mapping[str, Callable[..., Any]]) -> SearchSpace:
    """``space`` validated against the trainable's config ``builders``, then each ``--set`` applied
    and validated in turn (``search_spaces.validate``).

    Raises:
        SearchSpaceError: the file's own error (naming the file, field and value), or the first
            assignment that makes a field impossible (naming the assignment too).
    """
    validate(space, builders)
    for text in assignments:
        section, field_name, value = parse_assignment(text)
        if section not in builders:
            raise SearchSpaceError(f"--set {text}: unknown section {section!r}; sections: {', '.join(builders)}")
        current = space.sections.get(section, {}).get(field_name)
        if isinstance(value, str) and is_number(upper_value(current)):
            raise SearchSpaceError(f"--set {text}: {section}.{field_name} is a number, got {value!r} (a value is "
                                   f"TOML: 0.015, 8, true, \"text\", {{choice = [4, 8]}})")
        space = space.with_overrides(**{section: {field_name: value}})
        try:
            validate(space, builders)
        except SearchSpaceError as error:
            raise SearchSpaceError(f"--set {text}: {error}") from error
    return space
