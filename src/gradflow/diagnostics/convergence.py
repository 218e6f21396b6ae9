"""Convergence diagnostics: the Polyak–Łojasiewicz ratio along a trajectory, and log-log slopes.

PL ratio. Along the gradient flow of F in a metric G, dF/dt = −|∇F|_G², so a bound
|∇F|_G² ≥ μ (F − F_∞) on the path gives F(t) − F_∞ ≤ (F(0) − F_∞) e^{−μt}. `pl_ratio` reads
|∇F|_G from the trajectory (`Trajectory.grad_norm`, the gradient's norm *in the flow's metric*,
|∇F|_G² = Σ_j |∇_{θ_j}F|²/m_j) and returns |∇F|_G²/(F − F_∞) at the saved times and its minimum.
For a ResNet flowed in the `conditional_wasserstein` geometry (masses 1/L per layer) this is
(|∂F/∂A|² + L Σ_k |∂F/∂Z_k|² + |∂F/∂B|²)/F, the left-hand side of the local PL inequality of
Marion et al. (Prop. 5), with gradflow's F = ℓ/2 (ℓ = (1/n)Σ|f − y|², the paper's risk):
the paper's μ is twice this ratio. A trajectory made with `descent` stores the same metric norm.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._errors import ConfigError, check
from ..trajectory import Trajectory


class PLRatio(NamedTuple):
    """Result of `pl_ratio`.

    - `ratio`: |∇F|_G²/(F − F_∞) at each saved time (NaN where F − F_∞ ≤ floor).
    - `min`: its minimum over the saved times where it is defined.
    - `t_min`: the time of the minimum.
    - `valid`: boolean mask of the saved times used.
    """

    ratio: np.ndarray
    min: float
    t_min: float
    valid: np.ndarray


def pl_ratio(trajectory: Trajectory, f_inf: float = 0.0, floor: float = 1e-20) -> PLRatio:
    """The PL ratio |∇F|_G²/(F − F_∞) along a trajectory, and its minimum.

    **Arguments:**

    - `trajectory`: a `Trajectory` (single, or an ensemble: then every array has a leading
      member axis and `min`/`t_min` are per member).
    - `f_inf`: F_∞, the limit value (0 for an interpolating network).
    - `floor`: saved points with F − F_∞ ≤ floor are left out (there the ratio is round-off).

    **Returns:** a `PLRatio`.
    """
    check(np.isfinite(f_inf), "f_inf", f_inf, "a finite number")
    check(np.isfinite(floor) and floor >= 0, "floor", floor, "a non-negative number")
    gap = np.asarray(trajectory.loss) - f_inf
    gnorm = np.asarray(trajectory.grad_norm)
    valid = gap > floor
    ratio = np.where(valid, gnorm**2 / np.where(valid, gap, 1.0), np.nan)
    ts = np.asarray(trajectory.ts)
    if not valid.any():
        raise ConfigError("trajectory", "F − F_∞ ≤ floor everywhere", "some saved F above floor")
    if ratio.ndim == 1:
        i = int(np.nanargmin(ratio))
        return PLRatio(ratio, float(ratio[i]), float(ts[i]), valid)
    idx = np.nanargmin(ratio, axis=1)
    return PLRatio(ratio, ratio[np.arange(len(idx)), idx], ts[idx], valid)


class Slope(NamedTuple):
    """Least-squares fit log y = intercept + slope · log x: the slope, its standard error, the
    intercept (natural log) and the number of points."""

    slope: float
    stderr: float
    intercept: float
    n: int


def loglog_slope(xs, ys) -> Slope:
    """The least-squares slope of log y against log x, with its standard error.

    stderr = sqrt(Σ r_i² / (n − 2) / Σ (log x_i − mean)²) (NaN for two points).

    **Raises:** `ConfigError` unless xs, ys are ≥ 2 positive finite numbers of equal length, with
    at least two distinct xs.
    """
    x = np.asarray(xs, dtype=float).reshape(-1)
    y = np.asarray(ys, dtype=float).reshape(-1)
    ok = (
        x.size == y.size
        and x.size >= 2
        and np.all(np.isfinite(x))
        and np.all(np.isfinite(y))
        and np.all(x > 0)
        and np.all(y > 0)
    )
    check(ok, "xs, ys", (list(x), list(y)), "two equal-length lists of ≥ 2 positive finite numbers")
    lx, ly = np.log(x), np.log(y)
    sxx = np.sum((lx - lx.mean()) ** 2)
    check(sxx > 0, "xs", list(x), "at least two distinct values")
    slope = float(np.sum((lx - lx.mean()) * (ly - ly.mean())) / sxx)
    intercept = float(ly.mean() - slope * lx.mean())
    resid = ly - (intercept + slope * lx)
    stderr = float(np.sqrt(np.sum(resid**2) / (x.size - 2) / sxx)) if x.size > 2 else float("nan")
    return Slope(slope, stderr, intercept, int(x.size))


def exponential_rate(ts, values, t_from: float | None = None, floor: float = 1e-20) -> float:
    """Least-squares rate r of values ≈ c e^{−r t}, over the saved times t ≥ t_from with
    values > floor (e.g. the risk's exponential decay after a transient)."""
    t = np.asarray(ts, dtype=float)
    v = np.asarray(values, dtype=float)
    keep = (v > floor) & np.isfinite(v)
    if t_from is not None:
        keep &= t >= t_from
    check(keep.sum() >= 2, "values", int(keep.sum()), "at least two points above floor")
    slope = np.polyfit(t[keep], np.log(v[keep]), 1)[0]
    return float(-slope)
