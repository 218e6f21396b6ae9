"""Every reusable check of user input, in one place.

Each helper raises `ConfigError(field, value, accepted)` naming the field the user set, the bad
value and what is accepted, and returns the value normalised (e.g. a NumPy integer as an `int`).
Booleans are never accepted where a number is expected (`True` is an `int` in Python).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ._errors import ConfigError

# jax.random.PRNGKey takes a 64-bit seed; gradflow keeps seeds to non-negative int64 values.
MAX_SEED = 2**63 - 1


def check(condition: bool, field: str, value: Any, accepted: str) -> None:
    """Raise `ConfigError(field, value, accepted)` unless `condition` holds."""
    if not condition:
        raise ConfigError(field, value, accepted)


def check_choice(field: str, value: Any, choices: Iterable) -> Any:
    """`value` if it is one of `choices`, else `ConfigError` listing them."""
    choices = list(choices)
    try:
        ok = value in choices
    except TypeError:  # an unhashable value against a dict's keys
        ok = False
    if not ok:
        raise ConfigError(field, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def _is_integer(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_real(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def integer(field: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer in [minimum, maximum] (either bound optional)."""
    ok = _is_integer(value)
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        if minimum is not None and maximum is not None:
            accepted = f"an integer between {minimum} and {maximum}"
        elif minimum == 1:
            accepted = "a positive integer"
        elif minimum == 0:
            accepted = "a non-negative integer"
        elif minimum is not None:
            accepted = f"an integer ≥ {minimum}"
        elif maximum is not None:
            accepted = f"an integer ≤ {maximum}"
        else:
            accepted = "an integer"
        raise ConfigError(field, value, accepted)
    return int(value)


def positive_int(field: str, value) -> int:
    """An integer ≥ 1."""
    return integer(field, value, minimum=1)


def seed(field: str, value) -> int:
    """A seed for `jax.random.PRNGKey`: an integer in [0, 2⁶³ − 1]."""
    return integer(field, value, minimum=0, maximum=MAX_SEED)


def real(
    field: str,
    value,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_minimum: bool = False,
    accepted: str | None = None,
) -> float:
    """A finite real number, optionally bounded below (strictly or not) and above."""
    ok = _is_real(value) and math.isfinite(float(value))
    if ok and minimum is not None:
        ok = value > minimum if strict_minimum else value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        if accepted is None:
            if minimum == 0 and strict_minimum and maximum is None:
                accepted = "a positive number"
            elif minimum == 0 and maximum is None:
                accepted = "a non-negative number"
            else:
                lo = (
                    ""
                    if minimum is None
                    else (f"> {minimum}" if strict_minimum else f"≥ {minimum}")
                )
                hi = "" if maximum is None else f"≤ {maximum}"
                accepted = (
                    "a finite number"
                    + (" " if lo or hi else "")
                    + ", ".join(p for p in (lo, hi) if p)
                )
        raise ConfigError(field, value, accepted)
    return float(value)


def positive(field: str, value) -> float:
    """A finite number > 0."""
    return real(field, value, minimum=0.0, strict_minimum=True)


def non_negative(field: str, value) -> float:
    """A finite number ≥ 0."""
    return real(field, value, minimum=0.0)


def optional(check_fn, field: str, value, *args, **kwargs):
    """None, or `check_fn(field, value, ...)`."""
    return None if value is None else check_fn(field, value, *args, **kwargs)


def sequence(
    field: str,
    values,
    item_check,
    *,
    min_length: int = 1,
    distinct: bool = False,
    what: str = "values",
) -> tuple:
    """A list or tuple of at least `min_length` items, each passing `item_check(field, item)`;
    returned as a tuple. With `distinct`, repeated items are refused."""
    if not isinstance(values, Sequence) or isinstance(values, str | bytes):
        raise ConfigError(field, values, f"a list of {what}")
    if len(values) < min_length:
        raise ConfigError(field, list(values), f"a list of at least {min_length} {what}")
    try:
        items = tuple(item_check(field, v) for v in values)
    except ConfigError:
        raise ConfigError(field, list(values), f"a list of {what}") from None
    if distinct and len(set(items)) != len(items):
        raise ConfigError(field, list(values), f"a list of distinct {what}")
    return items
