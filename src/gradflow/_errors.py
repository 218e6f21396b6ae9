"""The two errors gradflow raises on purpose.

`ConfigError` is for invalid input: it names the field, the bad value and what is accepted, so
that the CLI can print it in one line. `DivergenceError` and `SolverError` are for a run that
could not be completed; both carry the finite part of the trajectory so that nothing computed is
lost.
"""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """Invalid configuration.

    **Arguments:**

    - `field`: the name of the offending field (e.g. `"widths"`, `"solver"`).
    - `value`: the value that was given.
    - `accepted`: a short description of what is accepted.
    """

    def __init__(self, field: str, value: Any, accepted: str):
        self.field = field
        self.value = value
        self.accepted = accepted
        super().__init__(f"invalid {field}={value!r}: accepted {accepted}")


class _RunError(RuntimeError):
    def __init__(self, message: str, trajectory=None):
        super().__init__(message)
        self.trajectory = trajectory


class DivergenceError(_RunError):
    """The state became non-finite. `trajectory` holds the saved states up to the last finite one."""


class SolverError(_RunError):
    """The solver stopped early (e.g. `max_steps` reached). `trajectory` holds what was computed."""


def check(condition: bool, field: str, value: Any, accepted: str) -> None:
    """Raise `ConfigError(field, value, accepted)` unless `condition` holds."""
    if not condition:
        raise ConfigError(field, value, accepted)


def check_choice(field: str, value: Any, choices) -> None:
    """Raise `ConfigError` unless `value` is one of `choices`."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(field, value, "one of " + ", ".join(repr(c) for c in choices))
