"""Validation every config of the project shares: one error type and the checks that raise it.

Each frozen config dataclass calls these from ``__post_init__``; a message names the field and the
value. ``ConfigError`` is also the base of every other user-input error of the project (a search
space, a claim, a job file), so a command line maps all of them to one exit status.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Mapping

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""Names that become folder names, run names or parts of either: letters, digits, '.', '_', '-'
(no '/', no '..', no spaces or shell characters)."""


class ConfigError(ValueError):
    """A configuration value is impossible; the message names the field and the value."""


def require(ok: bool, message: str) -> None:
    """Raise ``ConfigError(message)`` unless ``ok``."""
    if not ok:
        raise ConfigError(message)


def is_int(value: Any) -> bool:
    """An integer that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def positive_ints(obj: Any, *names: str) -> None:
    """Each named field of ``obj`` is an integer > 0."""
    for name in names:
        value = getattr(obj, name)
        require(is_int(value) and value > 0, f"{name} must be a positive integer, got {value!r}")


def non_negative_ints(obj: Any, *names: str) -> None:
    """Each named field of ``obj`` is an integer >= 0."""
    for name in names:
        value = getattr(obj, name)
        require(is_int(value) and value >= 0, f"{name} must be an integer >= 0, got {value!r}")


def fraction(obj: Any, name: str, low_open: bool = False, high_open: bool = False) -> None:
    """Field ``name`` of ``obj`` lies in [0, 1] (ends open as asked)."""
    value = getattr(obj, name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value > 0 if low_open else value >= 0) \
        and (value < 1 if high_open else value <= 1)
    require(ok, f"{name} must be in {'(' if low_open else '['}0, 1{')' if high_open else ']'}, got {value!r}")


def finite_number(obj: Any, name: str, above_zero: bool = False) -> None:
    """Field ``name`` of ``obj`` is a finite number >= 0 (> 0 with ``above_zero``)."""
    value = getattr(obj, name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    require(ok and (value > 0 if above_zero else value >= 0),
            f"{name} must be a finite number {'>' if above_zero else '>='} 0, got {value!r}")


def finite_numbers(obj: Any) -> None:
    """Every numeric field of a dataclass instance is a finite number (NaN and inf are refused)."""
    for item in dataclasses.fields(obj):
        value = getattr(obj, item.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{item.name} must be a finite number, got {value!r}")


def safe_name(value: Any, what: str) -> None:
    """``value`` is a name in the safe alphabet (``SAFE_NAME``, no '..').

    Raises:
        ConfigError: names ``what`` and the value.
    """
    require(isinstance(value, str) and SAFE_NAME.fullmatch(value) is not None and ".." not in value,
            f"{what} {value!r} must be 1-128 letters, digits, '.', '_' or '-' (it names folders and runs)")


def known_fields(cls: type, values: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """``values`` restricted to ``cls``'s fields, ``ignore``d keys dropped.

    Raises:
        ConfigError: a key that is neither a field nor ignored (names them and the class).
    """
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names - set(ignore))
    require(not unknown, f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    return {k: v for k, v in values.items() if k in names}
