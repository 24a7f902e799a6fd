"""Validation tries corner values, not the product of every choice; seed counts are bounded (issue 20, item 8)."""

from __future__ import annotations

import pytest

from search_spaces import Choice, IntRange, SearchSpace, SearchSpaceError, validate
from search_spaces.dimensions import MAX_CORNERS, MAX_SEEDS, corner_points, corners


def test_numeric_choices_reduce_to_their_ends_and_many_text_choices_go_one_at_a_time():
    assert corners(Choice(tuple(range(60, 0, -1)))) == (1, 60)
    assert corners(Choice(("a", "b", "c"))) == ("a", "b", "c") and corners(IntRange(2, 9)) == (2, 9)
    texts = [tuple(f"v{j}" for j in range(60))] * 4  # 13M combinations
    points = corner_points(texts)
    assert len(points) == 2 + 4 * 59 and len(set(points)) == len(points)
    assert {p[2] for p in points} == set(texts[2])  # every value of every field is tried
    assert len(corner_points([(1, 2)] * 12)) == 2**12 <= MAX_CORNERS


def test_a_space_of_4_fields_by_60_choices_validates_at_once_and_still_finds_the_bad_corner():
    built = []
    space = SearchSpace("x", "d", (0,), {"train": {f"f{i}": Choice(tuple(range(1, 61))) for i in range(4)}})
    assert validate(space, {"train": lambda **fields: built.append(fields)}) == 16
    assert {"f0": 60, "f1": 60, "f2": 60, "f3": 60} in built

    def refuses_big_f3(**fields):
        if fields["f3"] == "v59":
            raise ValueError(f"f3 must not be v59, got {fields['f3']}")
    texts = SearchSpace("x", "d", (0,), {"train": {f"f{i}": Choice(tuple(f"v{j}" for j in range(60))) for i in range(4)}})
    with pytest.raises(SearchSpaceError, match="f3 must not be v59"):
        validate(texts, {"train": refuses_big_f3})


def test_seed_counts_are_bounded_and_extended_in_linear_time():
    space = SearchSpace("x", "d", (5, 3), {})
    assert space.with_seed_count(5).seeds == (5, 3, 6, 7, 8)
    assert len(space.with_seed_count(MAX_SEEDS).seeds) == MAX_SEEDS
    with pytest.raises(SearchSpaceError, match=f"seeds must be 1 to {MAX_SEEDS} replicates, got 1000000000"):
        space.with_seed_count(10**9)
    with pytest.raises(SearchSpaceError, match="seed 9223372036854775808 is not a 64-bit integer"):
        validate(SearchSpace("x", "d", (2**63,), {}), {})
