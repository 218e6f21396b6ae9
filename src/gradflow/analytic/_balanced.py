"""The balanced deep linear flow of one mode: its exact solution, and predictions built on it.

Whitened inputs (Σ_xx = I), Σ_yx = U S Vᵀ. A *balanced, aligned* initial network
W_k = R_k diag(u_0)^{1/H} R_{k−1}ᵀ (R_0 = V, R_H = U, intermediate R_k with orthonormal columns)
stays balanced and aligned along the gradient flow, and each mode strength u_j = U_jᵀ W V_j obeys
the scalar ODE (Saxe, McClelland & Ganguli 2014; Arora, Cohen & Hazan 2018)

    u' = H u^{2−2/H} (s − u),   u(0) = u_0.                                         (1)

**Exact solution.** With w = u^{1/H} (the per-layer strength), (1) becomes
w' = w^{H−1}(s − w^H), and the partial fractions
1/(w^{H−1}(s − w^H)) = (1/s)[w^{1−H} + w/(s − w^H)] and, with r_k = s^{1/H} e^{2πik/H} the roots of
s − w^H, w/(s − w^H) = −(1/(Hs)) Σ_k r_k²/(w − r_k), give t in closed form:

    s·t = Φ(w) − Φ(w_0),   Φ(w) = −w^{2−H}/(H − 2)  (log w for H = 2)
                                   − (1/(Hs)) Re Σ_{k=0}^{H−1} r_k² log(w − r_k).    (2)

`learning_time` evaluates (2) directly. `balanced_mode_strength` inverts it by bisection on log w
(Φ is monotone between w_0 and s^{1/H}), iterated to the last bit, so u(t) is exact up to the
conditioning of the problem itself (|t u'/u| · 1e-16). For H = 2 the inversion is explicit:
u(t) = s / (1 + (s/u_0 − 1) e^{−2st}) = s e^{2st}/(e^{2st} − 1 + s/u_0); for H = 1,
u = s + (u_0 − s)e^{−t}.

**Aligned prediction** (`aligned_balanced_prediction`). A mode that escapes a non-strict saddle
(H ≥ 3: from a small random init, or after cross-talk with stronger modes) has no linearisation to
predict its start from; but once it is on its way it follows (1). So align the balanced solution
on the measured series where the mode strength last rises through a small level a·s (a = 1/100)
before being learned, at time t_a, and predict the time it reaches the learning level f·s
(f = ½): t_f = t_a + T(a·s → f·s), with T the flow time of (1) between the two strengths
(`learning_time(s, a·s, H, f)`). The *last* rise, not the first: while a stronger mode is being
learned a weaker one can spike through a·s and fall back.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._result import Record
from .._validation import check
from ..fits import crossing_time, crossing_times

__all__ = [
    "balanced_mode_strength",
    "learning_time",
    "AlignedPrediction",
    "aligned_balanced_prediction",
]


# ---------------------------------------------------------------------------------------------
# the scalar balanced flow


def _check_depth(depth) -> int:
    check(isinstance(depth, int | np.integer) and depth >= 1, "depth", depth, "a positive integer")
    return int(depth)


def _phi_difference(w, w0, s, depth):
    """Φ(w) − Φ(w_0) of equation (2) (equal to s·t), elementwise; ±inf at w = s^{1/H}."""
    h = depth
    r0 = s ** (1.0 / h)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if h == 2:
            power = np.log(w / w0)
        else:
            power = (w0 ** (2.0 - h) - w ** (2.0 - h)) / (h - 2)
        # k = 0 (the real root r_0 = s^{1/H}):
        # log|w − r_0| − log|w_0 − r_0| = log1p((w − w0)/(w0 − r0)).
        logs = r0**2 * np.log1p((w - w0) / (w0 - r0))
        # k = 1..H−1: complex roots (and the real root −r_0 when H is even); the path w0 → w stays
        # on the real axis, so it never crosses the principal branch cut of log(w − r_k).
        for k in range(1, h):
            rk = r0 * np.exp(2j * np.pi * k / h)
            z = (w - w0) / (w0 - rk)
            logs = logs + np.real(rk**2 * np.log(1.0 + z))
    return power - logs / (h * s)


def balanced_mode_strength(t, s, u0, depth: int) -> np.ndarray:
    """The exact mode strength u(t) of a balanced, aligned deep linear network.

    Solves u' = H u^{2−2/H}(s − u), u(0) = u_0 (equation (1) of the module docstring), with
    whitened inputs. H = 1: u = s + (u_0 − s)e^{−t}. H = 2: u = s / (1 + (s/u_0 − 1)e^{−2st}).
    H ≥ 3: inverts t = ∫_{u_0}^{u} dv / (H v^{2−2/H}(s − v)), in the closed form (2), by bisection
    on log u to the last bit (relative error ~1e-15 times the problem's own conditioning).

    **Arguments:**

    - `t`: times ≥ 0 (any shape).
    - `s`: the mode's singular value(s) s > 0; `u0`: initial strength(s) u_0 > 0. `t`, `s`, `u0`
      broadcast against each other (e.g. `t[:, None]` with `s` of shape (r,)).
    - `depth`: H ≥ 1.

    **Returns:** u(t), a float64 array of the broadcast shape.
    """
    depth = _check_depth(depth)
    t, s, u0 = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (t, s, u0)))
    check(bool(np.all(np.isfinite(t)) and np.all(t >= 0)), "t", "negative/non-finite", "t ≥ 0")
    check(bool(np.all(s > 0) and np.all(np.isfinite(s))), "s", "non-positive", "s > 0")
    check(bool(np.all(u0 > 0) and np.all(np.isfinite(u0))), "u0", "non-positive", "u0 > 0")
    if depth == 1:
        return s + (u0 - s) * np.exp(-t)
    if depth == 2:
        with np.errstate(over="ignore"):
            return s / (1.0 + (s / u0 - 1.0) * np.exp(-2.0 * s * t))
    return _invert(t, s, u0, depth)


def _invert(t, s, u0, depth):
    """Solve Φ(w) − Φ(w_0) = s t for w by bisection on y = log w; return u = w^H."""
    shape = t.shape
    t, s, u0 = (v.reshape(-1).copy() for v in (t, s, u0))
    out = np.empty_like(t)
    fixed = (u0 == s) | (t == 0)
    out[fixed] = u0[fixed]
    todo = ~fixed
    tt, ss, uu = t[todo], s[todo], u0[todo]
    w0 = uu ** (1.0 / depth)
    # g(y) = Φ(e^y) − Φ(w0) − s t is ≤ 0 at y = log w0 and → +inf at y = log s^{1/H}.
    a = np.log(w0)
    b = np.log(ss) / depth
    for _ in range(200):
        mid = 0.5 * (a + b)
        if np.all((mid == a) | (mid == b)):
            break
        g = _phi_difference(np.exp(mid), w0, ss, depth) - ss * tt
        neg = g <= 0  # NaN (w == r0 exactly) counts as the +inf side
        a = np.where(neg, mid, a)
        b = np.where(neg, b, mid)
    # a is on the g ≤ 0 side; take the endpoint with the smaller |g| (they differ by one ulp).
    ga = np.abs(_phi_difference(np.exp(a), w0, ss, depth) - ss * tt)
    gb = np.abs(_phi_difference(np.exp(b), w0, ss, depth) - ss * tt)
    y = np.where(np.nan_to_num(gb, nan=np.inf) < ga, b, a)
    out[todo] = np.exp(depth * y)
    return out.reshape(shape)


def learning_time(s, u0, depth: int, fraction: float = 0.5) -> np.ndarray:
    """The time at which the balanced mode strength reaches `fraction`·s (equation (2)).

    H = 2: t = (1/(2s)) log((s/u_0 − 1)/(1/fraction − 1)). For u_0 < fraction·s only; returns 0
    where u_0 ≥ fraction·s already.

    **Arguments:** `s`, `u0` (broadcast), `depth` ≥ 1, `fraction` ∈ (0, 1).
    """
    depth = _check_depth(depth)
    check(0.0 < fraction < 1.0, "fraction", fraction, "a number in (0, 1)")
    s, u0 = np.broadcast_arrays(np.asarray(s, dtype=float), np.asarray(u0, dtype=float))
    check(bool(np.all(s > 0)), "s", "non-positive", "s > 0")
    check(bool(np.all(u0 > 0)), "u0", "non-positive", "u0 > 0")
    target = fraction * s
    with np.errstate(divide="ignore", invalid="ignore"):
        if depth == 1:
            t = np.log((s - u0) / (s - target))
        elif depth == 2:
            t = np.log((s / u0 - 1.0) / (1.0 / fraction - 1.0)) / (2.0 * s)
        else:
            w0 = u0 ** (1.0 / depth)
            t = _phi_difference(target ** (1.0 / depth), w0, s, depth) / s
    return np.where(u0 >= target, 0.0, t)


# ---------------------------------------------------------------------------------------------
# the balanced solution aligned on a measured escape


@dataclasses.dataclass(frozen=True)
class AlignedPrediction(Record):
    """Result of `aligned_balanced_prediction` (see the module docstring).

    - `t_align`: t_a, the last time before the mode is learned that u rises through
      `align`·s (log-interpolated between samples); NaN when undetermined (never learned, or
      already above `align`·s at every sample before).
    - `t_predicted`: t_a + T(align·s → fraction·s), the predicted time u reaches `fraction`·s.
    - `t_measured`: the first time the samples reach `fraction`·s (linearly interpolated).
    - `s`, `depth`, `align`, `fraction`: the mode's singular value and the settings used.
    """

    t_align: float
    t_predicted: float
    t_measured: float
    s: float
    depth: int
    align: float
    fraction: float

    def curve(self, ts) -> np.ndarray:
        """The aligned balanced solution u(t) (through u(t_a) = align·s) at times `ts`: NaN
        before t_a, and everywhere when t_a is undetermined."""
        ts = np.asarray(ts, dtype=float)
        out = np.full(ts.shape, np.nan)
        if np.isfinite(self.t_align):
            after = ts >= self.t_align
            out[after] = balanced_mode_strength(
                ts[after] - self.t_align, self.s, self.align * self.s, self.depth
            )
        return out


def aligned_balanced_prediction(
    ts, u, s: float, depth: int, *, align: float = 0.01, fraction: float = 0.5
) -> AlignedPrediction:
    """Predict when a mode is learned from the balanced solution aligned on its own escape.

    With samples u(t_i) of a mode strength (singular value s, depth H): the mode is learned at
    the first sample where u ≥ f·s (f = `fraction`); t_a is the last upward crossing of a·s
    (a = `align`) before it, interpolated linearly in log u; the prediction is
    t_a + `learning_time`(s, a·s, H, f), the time (1) takes from a·s to f·s. For the exact
    balanced solution this returns its own learning time (up to the interpolation of t_a).

    **Arguments:** `ts`, `u` (samples; non-finite values are missing), `s` > 0, `depth` H ≥ 1,
    `align` and `fraction` with 0 < align < fraction < 1.

    **Returns:** an `AlignedPrediction` (its `curve(ts)` is the aligned solution).
    """
    depth = _check_depth(depth)
    check(np.isfinite(s) and s > 0, "s", s, "a positive singular value")
    check(
        0.0 < align < fraction < 1.0,
        "align, fraction",
        (align, fraction),
        "two numbers with 0 < align < fraction < 1",
    )
    ts, u = np.asarray(ts, dtype=float), np.asarray(u, dtype=float)
    t_measured = crossing_time(ts, u, fraction * s)
    t_align = float("nan")
    learned = np.nonzero(u >= fraction * s)[0]
    if learned.size:
        k = int(learned[0]) + 1
        rises = crossing_times(ts[:k], u[:k], align * s, interpolation="log")
        if rises.size:
            t_align = float(rises[-1])
    t_predicted = t_align + float(learning_time(s, align * s, depth, fraction))
    return AlignedPrediction(
        t_align, t_predicted, t_measured, float(s), depth, float(align), float(fraction)
    )
