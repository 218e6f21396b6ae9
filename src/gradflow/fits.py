"""Fits of sampled series: least-squares lines, log-log slopes, exponential rates, and the times a
series crosses a level.

**Lines.** `linear_fit(x, y)` is the least-squares line y ≈ a + b x through n points:
b = Σ(x_i − x̄)(y_i − ȳ)/Σ(x_i − x̄)², a = ȳ − b x̄, with the standard error of the slope
stderr(b) = (Σ r_i² / (n − 2) / Σ(x_i − x̄)²)^{1/2} (r_i the residuals; NaN for two points) and
the coefficient of determination r² = 1 − Σ r_i²/Σ(y_i − ȳ)². `loglog_slope` is the same line
through (log x_i, log y_i): the exponent p of a power law y ≈ e^a x^p (a depth or width scaling,
a convergence order). `exponential_fit` is the line through (t_i, log v_i): v ≈ e^a e^{−r t} with
rate r = −b (a risk's exponential decay after a transient). `inverse_log_fit` fits
v ≈ a/(log t + b) (a direction converging like 1/log t) by the line 1/v = (log t)/a + b/a.

**Crossings.** For samples v_i = v(t_i), the series crosses a level ℓ upwards between two
consecutive samples when v_{i−1} < ℓ ≤ v_i (downwards: v_{i−1} > ℓ ≥ v_i). The crossing time is
interpolated in the segment: linearly in v, or, when v is a power or an exponential of t, linearly
in log v ("log": the segments where v_{i−1}, v_i and ℓ are all positive), or for a sigmoid rising
from 0 to `upper`, linearly in the logit log(v/(upper − v)) ("logit": exact for the balanced
depth-2 mode strength u = s/(1 + c e^{−2st}); the segments where v_{i−1}, v_i and ℓ lie in
(0, upper)); segments where the chosen transform is undefined fall back to linear interpolation.

**Missing values.** NaN samples are missing: the fits leave out the points where x or y is NaN
(the result's `n` counts the points used), and the crossing functions leave out the samples that
are not finite before looking for crossings (interpolating across the gap). Infinite fit
coordinates, and non-positive ones where a logarithm is taken, are refused.

Every function raises a one-line `ConfigError` for invalid input (unequal lengths, fewer than two
usable points, a single distinct x, unsorted times, a non-finite level).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._errors import ConfigError
from ._result import Record
from ._validation import check, check_choice

__all__ = [
    "Slope",
    "linear_fit",
    "loglog_slope",
    "loglog_summary",
    "exponential_fit",
    "exponential_rate",
    "InverseLog",
    "inverse_log_fit",
    "crossing_times",
    "crossing_time",
    "first_below",
]


@dataclasses.dataclass(frozen=True)
class Slope(Record):
    """A least-squares line y ≈ intercept + slope · x (for `loglog_slope`, in log x and log y;
    for `exponential_fit`, log v against t).

    - `slope`, `intercept`: the line (natural logarithms where logs are taken).
    - `stderr`: the standard error of the slope (NaN with two points).
    - `n`: the number of points used. `r2`: the coefficient of determination.
    """

    slope: float
    stderr: float
    intercept: float
    n: int
    r2: float


def _vector(name: str, values) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(name, values, "a one-dimensional sequence of numbers") from None
    check(arr.ndim == 1, name, f"an array of shape {arr.shape}", "a one-dimensional sequence")
    return arr


def _pair(xname: str, x, yname: str, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = _vector(xname, x), _vector(yname, y)
    check(
        x.size == y.size,
        yname,
        f"{y.size} values for {x.size} {xname}",
        f"as many values as {xname}",
    )
    return x, y


def _drop_missing(x, y):
    keep = ~(np.isnan(x) | np.isnan(y))
    return x[keep], y[keep]


def _line(x: np.ndarray, y: np.ndarray, xname: str) -> Slope:
    """The least-squares line through points already checked finite."""
    n = x.size
    check(n >= 2, xname, f"{n} usable point(s)", "at least two points (NaN pairs left out)")
    dx = x - x.mean()
    sxx = float(np.sum(dx**2))
    check(sxx > 0, xname, f"all equal to {x[0]:g}", "at least two distinct values")
    slope = float(np.sum(dx * (y - y.mean())) / sxx)
    intercept = float(y.mean() - slope * x.mean())
    ssr = float(np.sum((y - (intercept + slope * x)) ** 2))
    sst = float(np.sum((y - y.mean()) ** 2))
    stderr = float(np.sqrt(ssr / (n - 2) / sxx)) if n > 2 else float("nan")
    r2 = 1.0 - ssr / sst if sst > 0 else 1.0
    return Slope(slope, stderr, intercept, int(n), float(r2))


def linear_fit(x, y) -> Slope:
    """The least-squares line y ≈ intercept + slope · x (module docstring), NaN pairs left out.

    **Raises:** `ConfigError` for unequal lengths, infinite values, fewer than two points or a
    single distinct x.
    """
    x, y = _drop_missing(*_pair("x", x, "y", y))
    check(bool(np.all(np.isfinite(x))), "x", "infinite values", "finite numbers (or NaN: left out)")
    check(bool(np.all(np.isfinite(y))), "y", "infinite values", "finite numbers (or NaN: left out)")
    return _line(x, y, "x")


def loglog_slope(xs, ys) -> Slope:
    """The exponent p of a power law y ≈ C x^p: the least-squares line of log y against log x.

    `slope` = p, `intercept` = log C, `stderr` the standard error of p. NaN pairs are left out.

    **Raises:** `ConfigError` unless the remaining xs and ys are ≥ 2 positive finite numbers of
    equal length with at least two distinct xs.
    """
    x, y = _drop_missing(*_pair("xs", xs, "ys", ys))
    ok = bool(np.all(np.isfinite(x) & (x > 0)) and np.all(np.isfinite(y) & (y > 0)))
    check(ok, "xs, ys", (x.tolist(), y.tolist()), "positive finite numbers (NaN: left out)")
    return _line(np.log(x), np.log(y), "xs")


def loglog_summary(xs, ys) -> dict:
    """`loglog_slope` of ys against xs as a JSON summary entry, over the points whose y is
    positive and finite: {'slope': p, 'stderr', 'points': n} for y ≈ C x^p.

    A measured scaling may contain exact zeros (e.g. the successive differences of a network
    whose layers start equal), where log y is undefined: those points are left out, and with
    fewer than two left the entry is {'slope': None, 'stderr': None, 'points': n, 'reason'}
    instead of an error, so that a sweep's summary is still written.

    **Raises:** `ConfigError` as `loglog_slope` for the points kept (e.g. non-positive xs).
    """
    xs, ys = _pair("xs", xs, "ys", ys)
    keep = (ys > 0) & np.isfinite(ys)
    if keep.sum() < 2:
        return {
            "slope": None,
            "stderr": None,
            "points": int(keep.sum()),
            "reason": "fewer than two positive values (e.g. exactly zero differences)",
        }
    fit = loglog_slope(xs[keep], ys[keep])
    return {"slope": fit.slope, "stderr": fit.stderr, "points": fit.n}


def exponential_fit(ts, values, *, t_from: float | None = None, floor: float = 1e-20) -> Slope:
    """The least-squares line of log v against t: v ≈ e^{intercept} e^{slope · t}, rate −slope.

    Uses the samples with t ≥ `t_from` (all by default) and floor < v < inf (values at or below
    `floor` are round-off, or zero, where the logarithm is meaningless; NaN is left out).

    **Raises:** `ConfigError` for unequal lengths, non-finite times, a negative floor, or fewer
    than two usable samples.
    """
    t, v = _pair("ts", ts, "values", values)
    check(bool(np.all(np.isfinite(t))), "ts", "non-finite times", "finite times")
    check(np.isfinite(floor) and floor >= 0, "floor", floor, "a non-negative number")
    keep = np.isfinite(v) & (v > floor)
    if t_from is not None:
        check(np.isfinite(t_from), "t_from", t_from, "a finite time or None")
        keep &= t >= t_from
    check(
        int(keep.sum()) >= 2,
        "values",
        f"{int(keep.sum())} usable sample(s)",
        "at least two finite values above floor (at t ≥ t_from)",
    )
    return _line(t[keep], np.log(v[keep]), "ts")


def exponential_rate(ts, values, t_from: float | None = None, floor: float = 1e-20) -> float:
    """The rate r of v ≈ c e^{−r t}: −`exponential_fit(ts, values, t_from, floor).slope`."""
    return -exponential_fit(ts, values, t_from=t_from, floor=floor).slope


# ---------------------------------------------------------------------------------------------
# crossings

INTERPOLATIONS = ("linear", "log", "logit")
DIRECTIONS = ("up", "down")


@dataclasses.dataclass(frozen=True)
class InverseLog(Record):
    """A fit v ≈ a/(log t + b) (`inverse_log_fit`).

    - `a`, `b`: the law's constants (natural logarithm).
    - `max_relative_residual`: max_i |v_i − a/(log t_i + b)|/v_i over the points used.
    - `n`: the number of points used. `r2`: of the line 1/v against log t.
    """

    a: float
    b: float
    max_relative_residual: float
    n: int
    r2: float


def inverse_log_fit(ts, values) -> InverseLog:
    """v ≈ a/(log t + b): the least-squares line 1/v = (log t)/a + b/a through (log t_i, 1/v_i),
    so a = 1/slope and b = intercept/slope (exact for data on such a law). NaN pairs are left out.

    **Raises:** `ConfigError` unless the remaining ts and values are ≥ 2 positive finite numbers
    of equal length with two distinct ts, and 1/v increases with log t (slope > 0).
    """
    t, v = _drop_missing(*_pair("ts", ts, "values", values))
    ok = bool(np.all(np.isfinite(t) & (t > 0)) and np.all(np.isfinite(v) & (v > 0)))
    check(ok, "ts, values", (t.tolist(), v.tolist()), "positive finite numbers (NaN: left out)")
    line = _line(np.log(t), 1.0 / v, "ts")
    check(
        line.slope > 0,
        "values",
        f"1/v decreasing in log t (slope {line.slope:.3g})",
        "values decaying like a/(log t + b), a > 0",
    )
    a, b = 1.0 / line.slope, line.intercept / line.slope
    residual = float(np.max(np.abs(v - a / (np.log(t) + b)) / v))
    return InverseLog(float(a), float(b), residual, line.n, line.r2)


def _series(ts, values, level, direction, interpolation, upper):
    t, v = _pair("ts", ts, "values", values)
    check(np.isfinite(level), "level", level, "a finite number")
    check_choice("direction", direction, DIRECTIONS)
    check_choice("interpolation", interpolation, INTERPOLATIONS)
    if interpolation == "logit":
        check(
            upper is not None and np.isfinite(upper) and upper > 0,
            "upper",
            upper,
            "a positive number: the sigmoid's upper asymptote (needed for interpolation='logit')",
        )
    check(bool(np.all(np.isfinite(t))), "ts", "non-finite times", "finite times")
    check(bool(np.all(np.diff(t) >= 0)), "ts", "decreasing times", "non-decreasing times")
    keep = np.isfinite(v)
    return t[keep], v[keep]


def _transform(v, level, interpolation, upper):
    """(transformed v, transformed level, mask of values where the transform is defined)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if interpolation == "log":
            ok = (v > 0) & (level > 0)
            return np.log(v), np.log(level) if level > 0 else np.nan, ok
        if interpolation == "logit":
            ok = (v > 0) & (v < upper) & (0 < level < upper)
            logit = lambda x: np.log(x / (upper - x))
            return logit(v), logit(level) if 0 < level < upper else np.nan, ok
    return v, level, np.ones(v.shape, bool)


def _interpolate(t, v, level, idx, interpolation, upper):
    """Crossing times in the segments (idx − 1, idx)."""
    t0, t1, v0, v1 = t[idx - 1], t[idx], v[idx - 1], v[idx]
    y, yl, ok = _transform(v, level, interpolation, upper)
    both = ok[idx - 1] & ok[idx]
    y0 = np.where(both, y[idx - 1], v0)
    y1 = np.where(both, y[idx], v1)
    target = np.where(both, yl, level)
    return t0 + (t1 - t0) * (target - y0) / (y1 - y0)


def crossing_times(
    ts, values, level: float, *, direction: str = "up", interpolation="linear", upper=None
) -> np.ndarray:
    """Every time the sampled series crosses `level`, interpolated between samples.

    **Arguments:**

    - `ts`, `values`: the samples v(t_i), times non-decreasing (non-finite values are missing).
    - `level`: ℓ. `direction`: 'up' (v_{i−1} < ℓ ≤ v_i) or 'down' (v_{i−1} > ℓ ≥ v_i).
    - `interpolation`: 'linear', 'log' or 'logit' (with `upper`); see the module docstring.

    **Returns:** the crossing times, increasing (empty if the series never crosses ℓ). A series
    that starts at or beyond ℓ has not crossed it there.
    """
    t, v = _series(ts, values, level, direction, interpolation, upper)
    if v.size < 2:
        return np.zeros(0)
    if direction == "up":
        hit = (v[:-1] < level) & (v[1:] >= level)
    else:
        hit = (v[:-1] > level) & (v[1:] <= level)
    idx = np.nonzero(hit)[0] + 1
    return np.asarray(_interpolate(t, v, level, idx, interpolation, upper), dtype=float)


def crossing_time(
    ts, values, level: float, *, direction: str = "up", interpolation="linear", upper=None
) -> float:
    """The first time the sampled series reaches `level` (NaN if it never does).

    t_0 when the first finite sample is already at or beyond ℓ (v_0 ≥ ℓ for 'up', ≤ for
    'down'), else the first of `crossing_times` (same arguments).
    """
    t, v = _series(ts, values, level, direction, interpolation, upper)
    if v.size == 0:
        return float("nan")
    if (v[0] >= level) if direction == "up" else (v[0] <= level):
        return float(t[0])
    times = crossing_times(
        t, v, level, direction=direction, interpolation=interpolation, upper=upper
    )
    return float(times[0]) if times.size else float("nan")


def first_below(ts, values, level: float) -> float:
    """The first sampled time at which v(t_i) < `level`, without interpolation (NaN if none).

    E.g. the first save at which a risk is below a threshold (an upper bound on the first time
    it is; `crossing_time(..., direction='down')` interpolates). NaN values never count.
    """
    t, v = _pair("ts", ts, "values", values)
    check(np.isfinite(level), "level", level, "a finite number")
    idx = np.nonzero(v < level)[0]
    return float(t[idx[0]]) if idx.size else float("nan")
