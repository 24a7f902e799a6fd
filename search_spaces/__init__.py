"""Search spaces as data: dimensions, seed replicates, space files, and their validation (no Ray, no MLflow)."""

from search_spaces.dimensions import (
    Choice, IntRange, LogUniform, SearchSpace, SearchSpaceError, parse_dimension, space_from_table, upper_value,
    validate,
)
from search_spaces.files import load_space, parse_assignment, space_names, with_sets

__all__ = ["Choice", "IntRange", "LogUniform", "SearchSpace", "SearchSpaceError", "load_space", "parse_assignment",
           "parse_dimension", "space_from_table", "space_names", "upper_value", "validate", "with_sets"]
