"""Seed designs from a space file and from --seeds / SEEDS=: fixed lists and counts, sequential ranges."""

import re

import pytest

from search_spaces import SearchSpace, SearchSpaceError, load_space
from search_spaces.seeds import SeedRange, parse_seed_option, seed_design, with_seed_option


@pytest.mark.parametrize("text, expected", [("3", 3), ("3..12", SeedRange(3, 12)), (" 1 .. 1 ", SeedRange(1, 1)),
                                            ("1000", 1000)])
def test_parse_seed_option(text, expected):
    assert parse_seed_option(text) == expected


@pytest.mark.parametrize("text, message", [
    ("12..3", "--seeds '12..3': min=12 must not exceed max=3"),
    ("0..4", "--seeds '0..4': min=0 must be at least 1"),
    ("0", "--seeds '0': min=0 must be at least 1"),
    ("3..10001", "--seeds '3..10001': max=10001 must not exceed 10000"),
    ("3-12", r"--seeds '3-12': expected a count \(3\) or a range min..max \(3..12\)"),
    ("-3", r"--seeds '-3': expected a count"),
    ("3..", r"--seeds '3..': expected a count"),
])
def test_bad_seed_option_names_the_option_and_value(text, message):
    with pytest.raises(SearchSpaceError, match=f"^{message}"):
        parse_seed_option(text)


def test_space_file_value():
    assert seed_design([4, 2], "f: seeds") == (4, 2)
    assert seed_design({"min": 3, "max": 12}, "f: seeds") == SeedRange(3, 12)


@pytest.mark.parametrize("value, message", [
    ({"min": 5, "max": 2}, "f: seeds {'min': 5, 'max': 2}: min=5 must not exceed max=2"),
    ({"min": 3}, "f: seeds: a sequential design is { min = 3, max = 12 }"),
    ({"min": 3, "max": 4, "step": 1}, "f: seeds: a sequential design is"),
    ({"min": 3.0, "max": 4}, "min and max must be integers, got min=3.0"),
    ([1, 1], "f: seeds: seeds repeat: [1, 1]"),
    ([], "f: seeds must be a non-empty list of integers or"),
    ("0..3", "f: seeds must be a non-empty list of integers or"),
])
def test_bad_space_file_value(value, message):
    with pytest.raises(SearchSpaceError, match=re.escape(message)):
        seed_design(value, "f: seeds")


def test_space_file_with_a_range(tmp_path):
    path = tmp_path / "seq.toml"
    path.write_text('description = "d"\nseeds = { min = 3, max = 5 }\n[model]\nd_model = {choice = [7, 8]}\n')
    space = load_space(str(path), "addition")
    assert space.seed_range == SeedRange(3, 5) and space.seeds == (0, 1, 2, 3, 4)
    path.write_text('seeds = { min = 6, max = 5 }\n')
    with pytest.raises(SearchSpaceError, match=r"seq.toml: seeds \{'min': 6, 'max': 5\}: min=6 must not exceed max=5"):
        load_space(str(path), "addition")


def test_seed_option_on_a_space():
    space = SearchSpace("s", "", (4, 9))
    sequential = with_seed_option(space, SeedRange(2, 4))
    assert sequential.seeds == (4, 9, 10, 11) and sequential.seed_range == SeedRange(2, 4)
    fixed = with_seed_option(sequential, 3)
    assert fixed.seeds == (4, 9, 10) and fixed.seed_range is None
    assert with_seed_option(sequential, None) is sequential
