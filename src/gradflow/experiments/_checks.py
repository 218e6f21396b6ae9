"""Field checks for `param(..., check=...)`: small factories over `gradflow._validation`.

Each factory returns a function `check(field, value)` that raises `ConfigError(field, value,
accepted)` (one line naming the field and what is accepted) or returns normally. Counts are capped
at `MAX_COUNT` so that no size reaches JAX as an integer it cannot represent; seeds use
`_validation.seed` (0 ≤ seed ≤ 2⁶³ − 1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .. import _validation as V
from .._errors import ConfigError

Check = Callable[[str, Any], Any]

# The largest count (sizes, steps, saves) a config accepts: a 32-bit signed integer.
MAX_COUNT = 2**31 - 1


def seed() -> Check:
    """A seed for `jax.random.PRNGKey`: an integer in [0, 2⁶³ − 1]."""
    return V.seed


def count(minimum: int = 1, maximum: int = MAX_COUNT) -> Check:
    """An integer in [minimum, maximum] (default: a positive count that fits in 32 bits). The
    message states the bound that was crossed."""

    def check(field, value):
        integral = isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
        if integral and value > maximum:
            raise ConfigError(field, value, f"an integer ≤ {maximum}")
        return V.integer(field, value, minimum=minimum)

    return check


def number(
    minimum: float | None = 0.0,
    *,
    strict: bool = True,
    maximum: float | None = None,
    accepted: str | None = None,
) -> Check:
    """A finite number (default: > 0), optionally bounded above."""
    return lambda field, value: V.real(
        field, value, minimum=minimum, strict_minimum=strict, maximum=maximum, accepted=accepted
    )


def open_interval(low: float, high: float) -> Check:
    """A finite number in the open interval (low, high)."""

    def check(field, value):
        V.real(field, value, accepted=f"a number in ({low:g}, {high:g})")
        V.check(low < value < high, field, value, f"a number in ({low:g}, {high:g})")
        return float(value)

    return check


def optional(inner: Check) -> Check:
    """None, or a value passing `inner`; the accepted text says 'or none'."""

    def check(field, value):
        if value is None:
            return None
        try:
            return inner(field, value)
        except ConfigError as err:
            raise ConfigError(field, value, f"{err.accepted} or none") from None

    return check


def items(
    inner: Check, *, min_length: int = 1, distinct: bool = False, what: str = "values"
) -> Check:
    """A list of at least `min_length` items, each passing `inner` (distinct if asked)."""
    return lambda field, values: V.sequence(
        field, values, inner, min_length=min_length, distinct=distinct, what=what
    )


def choice(names: Iterable | Callable[[], Iterable]) -> Check:
    """One of `names` (a collection, or a function returning one: a library table read lazily)."""

    def check(field, value):
        return V.check_choice(field, value, list(names() if callable(names) else names))

    return check


def choices_of(names: Iterable | Callable[[], Iterable]) -> list:
    """The accepted names of a `choices=` declaration."""
    return list(names() if callable(names) else names)
