"""Search spaces as data: dimensions, seed replicates, and their validation (no Ray, no MLflow)."""

from search_spaces.dimensions import (
    Choice, IntRange, LogUniform, SearchSpace, SearchSpaceError, parse_dimension, space_from_table, validate,
)

__all__ = ["Choice", "IntRange", "LogUniform", "SearchSpace", "SearchSpaceError", "parse_dimension",
           "space_from_table", "validate"]
