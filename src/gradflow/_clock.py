"""Flow time: the clock a flow is integrated in (`gf.flow(..., clock=...)`) and its save times.

- 'linear': the solver's variable is the flow time t.
- 'log': the solver's variable is s = log(1 + t). By the chain rule dθ/ds = (dt/ds) θ'(t)
  = e^s θ'(t) = (1 + t) θ'(t), so the flow θ'(t) = v(θ) becomes dθ/ds = e^s v(θ), which starts as
  the flow itself (s ≈ t for small t) and, where the solution changes on the time scale t (a loss
  without minimiser: |θ| ~ log t, |v| ~ 1/t), has a right-hand side of order one: an
  error-controlled solver then takes a fixed number of steps per decade of t instead of a number
  growing like t. The same points are visited; only the step-size control and the stepping
  variable change. log(1 + t) rather than log t lets the flow start at t0 = 0.
"""

from __future__ import annotations

import diffrax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from ._errors import ConfigError
from ._validation import check, check_choice

CLOCKS = ("linear", "log")


def check_clock(clock, t0) -> None:
    """Refuse an unknown clock, or a log clock from t0 < 0 (log(1 + t) needs t > −1, and flows
    start at t0 ≥ 0 in practice)."""
    check_choice("clock", clock, CLOCKS)
    if clock == "log":
        check(float(t0) >= 0, "t0", t0, "t0 ≥ 0 with clock='log' (the solver steps in log(1 + t))")


def solver_time(t, clock: str):
    """The solver's variable for flow times t: t, or s = log(1 + t)."""
    t = np.asarray(t, dtype=float)
    return np.log1p(t) if clock == "log" else t


def flow_time(s, clock: str):
    """The flow times of the solver's variable s (inverse of `solver_time`; inf stays inf)."""
    s = np.asarray(s, dtype=float)
    return np.expm1(s) if clock == "log" else s


def on_clock(field, clock: str):
    """The vector field (s, y, args) ↦ dθ/ds in the solver's variable for a field of the flow
    time (`field` must not depend on its time argument: gradient flows are autonomous)."""
    if clock == "linear":
        return field

    def rescaled(s, y, args):
        rate = jnp.exp(s)  # dt/ds = 1 + t = e^s
        return jtu.tree_map(lambda v: rate * v, field(s, y, args))

    return rescaled


def default_saves(t0: float, t1: float) -> np.ndarray:
    """t0 and 256 log-spaced times from (t1 − t0)·1e-4 to t1."""
    return np.concatenate([[t0], t0 + np.geomspace((t1 - t0) * 1e-4, t1 - t0, 256)])


def check_saves(saveat, t0: float, t1: float) -> np.ndarray:
    """The save times as an increasing float array within [t0, t1] (`ConfigError` otherwise)."""
    if isinstance(saveat, diffrax.SaveAt):
        subs = saveat.subs
        ok = (
            isinstance(subs, diffrax.SubSaveAt)
            and subs.ts is not None
            and not subs.steps
            and subs.fn is diffrax.SubSaveAt(t0=True).fn
        )
        check(ok, "saveat", "a SaveAt", "times, or a diffrax.SaveAt(ts=..., t0=..., t1=...)")
        ts = np.asarray(subs.ts, dtype=float).reshape(-1)
        extra = ([t0] if subs.t0 else []) + ([t1] if subs.t1 else [])
        ts = np.unique(np.concatenate([ts, extra]))
    else:
        try:
            ts = np.asarray(saveat, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise ConfigError("saveat", saveat, "a sequence of times") from None
    ok = (
        ts.size >= 1
        and bool(np.all(np.isfinite(ts)))
        and bool(np.all(np.diff(ts) > 0))
        and ts[0] >= t0
        and ts[-1] <= t1
    )
    check(
        ok,
        "saveat",
        f"{ts.size} times in [{ts.min() if ts.size else None}, {ts.max() if ts.size else None}]",
        f"increasing finite times within [t0, t1] = [{t0}, {t1}]",
    )
    return ts
