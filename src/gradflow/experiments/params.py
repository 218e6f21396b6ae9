"""Config fields that several experiments declare alike: one definition each (default, meaning,
check), so the same key means the same thing in every experiment's `gradflow describe`.

Each function returns a `param(...)` field for a config dataclass, e.g.
`rtol: float = params.rtol(1e-8)`.
"""

from __future__ import annotations

from . import _checks as checks
from ._config import param


def rtol(default: float):
    """The flow's relative tolerance."""
    return param(default, "relative tolerance of the flow", check=checks.number())


def atol(default: float):
    """The flow's absolute tolerance."""
    return param(default, "absolute tolerance of the flow", check=checks.number())


def t_first(default: float = 1.0):
    """The first saved time after t = 0 of a log-spaced grid."""
    return param(default, "first saved time after t = 0 (log grid)", check=checks.number())


def t_max(default: float = 20000.0):
    """The horizon: the last saved time of a log-spaced grid."""
    return param(default, "last saved time, the horizon (> t_first)", check=checks.number())


def log_saves(default: int):
    """How many log-spaced saves in [t_first, t_max]."""
    return param(
        default, "number of log-spaced saves in [t_first, t_max]", check=checks.count(), size=True
    )


def piece(default: int):
    """Saves per solve of a flow in pieces."""
    return param(default, "saves per solve (a divisor of saves)", check=checks.count(), size=True)


def flow_saves(default: int, spacing: str):
    """Saves per flow (`spacing`: how they are spaced), fewer kept where they would not fit."""
    return param(
        default,
        f"{spacing} saves per flow (fewer kept where they would not fit)",
        check=checks.count(2),
    )


def wc_max_particles(meaning: str):
    """The most particles for which a W_C distance is computed (its cost grows like M² to M³)."""
    return param(4096, meaning, check=checks.count())


def flow_options(config) -> dict:
    """The `gf.flow` keywords a config with rtol, atol, max_steps and loss fields sets."""
    return dict(rtol=config.rtol, atol=config.atol, max_steps=config.max_steps, loss=config.loss)
