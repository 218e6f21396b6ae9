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


# ---------------------------------------------------------------------------------------------
# the loss of an experiment's objective


def loss_names() -> list[str]:
    """The loss names the library accepts (`gf.losses.LOSSES`), the `choices` of a `loss` field."""
    from .. import losses

    return list(losses.LOSSES)


def require_loss(config, *, minimum: str | None = None, only=None, why: str = "") -> None:
    """Refuse `config.loss` (one `ConfigError` naming `loss` and the accepted names) when it is
    not in `only`, or, where `minimum` names a diagnostic that assumes a minimiser, when the loss
    attains none (`gf.losses.as_loss(name).attains_minimum()` is False: cross_entropy, logistic)."""
    from .. import losses

    accepted = list(only) if only is not None else loss_names()
    if minimum is not None:
        accepted = [n for n in accepted if losses.as_loss(n).attains_minimum()]
        why = why or f"losses that attain their minimum, for {minimum}"
    if config.loss not in accepted:
        names = ", ".join(repr(n) for n in accepted)
        raise ConfigError("loss", config.loss, f"one of {names}" + (f" ({why})" if why else ""))


def loss_data(name: str, data, out_dim: int | None = None, only=None) -> None:
    """Refuse, naming `loss` and the losses (of `only`, default all) that can read them, a loss
    that cannot read the targets of `data` (each loss's own `check_data`, for a model with
    `out_dim` outputs, default the targets' width)."""
    from .. import losses

    out_dim = int(data.y.shape[1]) if out_dim is None else out_dim

    def reads(n: str) -> str | None:  # None where the loss reads these targets, else why not
        try:
            losses.as_loss(n).check_data(data, out_dim)
        except ConfigError as error:
            return error.accepted
        return None

    why = reads(name)
    if why is not None:
        fit = [n for n in (only if only is not None else loss_names()) if reads(n) is None]
        names = ", ".join(repr(n) for n in fit)
        raise ConfigError("loss", name, f"one of {names} for these targets ({why})")


def risk_text(loss: str, half_mse: str, other: str = "F = the {loss} risk (gf.losses)") -> str:
    """A summary's description of its risk: `half_mse` (the text written for the default loss)
    or `other` with the loss's name (`{loss}`)."""
    return half_mse if loss == "half_mse" else other.format(loss=loss)
