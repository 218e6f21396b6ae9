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
        shown = repr(value)
        if len(shown) > 120:  # one readable line, whatever was passed
            shown = shown[:100] + f"… ({len(shown)} characters)"
        super().__init__(f"invalid {field}={shown}: accepted {accepted}")


class _RunError(RuntimeError):
    def __init__(self, message: str, trajectory=None):
        super().__init__(message)
        self.trajectory = trajectory


class DivergenceError(_RunError):
    """The state became non-finite. `trajectory` holds the saved states up to the last finite one."""


class SolverError(_RunError):
    """The solver stopped early (e.g. `max_steps` reached). `trajectory` holds what was computed."""


class FileFormatError(ConfigError):
    """A file gradflow was asked to read is not what it should be (unknown format or version,
    damaged, failed checksum). Raised as a one-line message; reading never executes code."""

    def __init__(self, path, problem: str, accepted: str):
        super().__init__("file", str(path), accepted)
        self.problem = problem
        self.args = (f"cannot read {path}: {problem} (expected {accepted})",)

    def __str__(self) -> str:
        return self.args[0]


class RunInterrupted(RuntimeError):
    """A run was asked to stop (SIGINT/SIGTERM) and stopped at a safe point; what was computed
    before it is kept (checkpoints, partial results)."""
