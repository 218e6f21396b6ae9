"""Each escape re-solved densely, and the balanced prediction of when each mode is learned.

**Balanced prediction.** For H = 2 (whitened data) it is a genuine prediction: near the origin
the mode coordinates obey a' = s b, b' = s a, so each mode follows the balanced solution of
u' = H u^{2−2/H}(s − u) from u_0^eff = |a_j(0) + b_j(0)|²/4 (projected;
`gf.analytic.effective_balanced_init`). For H ≥ 3 (or data that is not whitened) the escape from
the origin is nonlinear from the start and no such linearisation exists; the balanced solution is
then aligned once per mode where u_j last rises through s_j/100 and predicts the rest of the
curve, in particular the time u_j reaches s_j/2 (`gf.analytic.aligned_balanced_prediction`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

import gradflow as gf
from gradflow.experiments import params

from .config import MAX_PARAMS

# The dense re-solve of each escape covers (t − t_j)·H s_j^{2−2/H} ∈ ZOOM around its learning
# time t_j, with ZOOM_SAVES equally spaced saves.
ZOOM = (-30.0, 15.0)
ZOOM_SAVES = 241
# Bisection of the bracket around a crossing stops after this many rounds at the latest.
_BISECTIONS = 12

# Tsit5 costs ~50 µs a step here and Kvaerno5 (dense Newton on P unknowns) ~100× more: the
# implicit solver pays off only when the explicit one would need millions of steps.
EXPLICIT_STEP_BUDGET = 3e6


def choose_solver(config, s: np.ndarray, horizon: float):
    """(name, solver, estimated explicit steps) for a flow of length `horizon`.

    'auto' is `gf.choose_solver` with the curvature bound of the deep linear flow: the largest
    Hessian eigenvalue near the global minimum is about H s_1^{2−2/H} (per mode; a factor 2 is kept
    as margin). Every network here (≤ MAX_PARAMS parameters) is small enough for the dense
    implicit solver.
    """
    h = config.depth
    curvature = 2.0 * h * float(np.max(s)) ** (2.0 - 2.0 / h)
    choice = gf.choose_solver(
        curvature,
        horizon,
        h * config.dim**2,
        budget=EXPLICIT_STEP_BUDGET,
        dense_limit=MAX_PARAMS,
    )
    if config.solver == "auto":
        return choice.name, choice.solver, choice.explicit_steps
    return config.solver, config.solver, choice.explicit_steps


def _rate(s: float, depth: int) -> float:
    """H s^{2−2/H}: the balanced escape's rate, the time unit of the zooms."""
    return depth * s ** (2.0 - 2.0 / depth)


def zoom(traj, data, timeline, config, s):
    """Re-solve each escape densely, starting from saved states (nothing is re-integrated from 0).

    The log-spaced saves of the main run are far coarser than an escape (which takes a time
    ~ 1/(H s^{2−2/H}) at t ~ ε^{−(H−2)}/s). For mode j: (1) bisect, re-solving the bracket of
    saves around the crossing u_j = s_j/2 with `ZOOM_SAVES` saves, until the bracket is shorter
    than one time unit of the balanced ODE; (2) solve the window `ZOOM` around it from the
    latest saved state before the window. Returns, per mode, (times, u_j on them) or None.
    """

    def solve(start, t0, t1, ts):
        _, solver, _ = choose_solver(config, s, t1 - t0)
        return gf.flow(
            start,
            data,
            float(t1),
            t0=float(t0),
            solver=solver,
            saveat=ts,
            **params.flow_options(config),
        )

    def strengths(segment, j):
        return np.asarray(gf.diagnostics.saddle_timeline(segment, data).mode_strengths[:, j])

    out = []
    for j in range(s.size):
        ts = np.asarray(traj.ts)
        u = np.asarray(timeline.mode_strengths[:, j])
        above = np.nonzero(u >= 0.5 * s[j])[0]
        if above.size == 0 or above[0] == 0:
            out.append(None)
            continue
        rate = _rate(s[j], config.depth)
        starts = [(ts[i], traj, i) for i in range(above[0])]  # saved states before the crossing
        k, seg = int(above[0]), traj
        for _ in range(_BISECTIONS):
            if (ts[k] - ts[k - 1]) * rate <= 1.0:
                break
            zts = np.linspace(ts[k - 1], ts[k], ZOOM_SAVES)
            seg = solve(seg.at(k - 1), ts[k - 1], ts[k], zts)
            u = strengths(seg, j)
            k = int(np.nonzero(u >= 0.5 * s[j])[0][0])
            ts = zts
            starts += [(ts[i], seg, i) for i in range(k)]
        tj = gf.fits.crossing_time(ts[k - 1 : k + 1], u[k - 1 : k + 1], 0.5 * s[j])
        w0 = tj + ZOOM[0] / rate
        w1 = min(tj + ZOOM[1] / rate, float(traj.ts[-1]))
        t_start, seg_start, i_start = max(
            (st for st in starts if st[0] <= w0), key=lambda st: st[0], default=starts[0]
        )
        zts = np.linspace(max(w0, t_start), w1, ZOOM_SAVES)
        window = solve(seg_start.at(i_start), t_start, w1, zts)
        out.append((zts, strengths(window, j)))
    return out


@dataclasses.dataclass(frozen=True)
class Predictions:
    """Measured and predicted learning times, and the balanced curves drawn against them.

    - `measured[j]`: the time u_j reaches s_j/2, from the dense re-solve (else the coarse saves).
    - `predicted[j]`: the balanced prediction of it; `method` says which (module docstring).
    - `curves` (saves × modes): the balanced solutions on the main run's saves.
    - `zoom_curves[j]`: the balanced solution on mode j's zoom times (None without a zoom).
    """

    measured: np.ndarray
    predicted: np.ndarray
    method: str
    curves: np.ndarray
    zoom_curves: list

    @property
    def relative_deviations(self) -> np.ndarray:
        return np.abs(self.measured - self.predicted) / self.predicted


DEPTH2_METHOD = "depth 2: balanced solution from the projected effective init |a_j + b_j|²/4"
ALIGNED_METHOD = (
    "depth ≥ 3: balanced solution aligned where u_j last crosses s_j/100 before "
    "being learned, predicting the time it reaches s_j/2 (the escape only: no "
    "linearisation exists at the non-strict origin; see learn_times_nominal for "
    "the scaling law from u_0 = ε^H)"
)


def whitened(data) -> bool:
    """Σ_xx = I (the depth-2 linearisation assumes it)."""
    inv_half = gf.analytic.teacher_modes(data)[3]
    return bool(np.array_equal(inv_half, np.eye(inv_half.shape[0])))


def predict(model, data, traj, timeline, zooms, s, depth) -> Predictions:
    """The measured learning times and their balanced predictions (module docstring)."""
    ts = np.asarray(traj.ts)
    measured = np.array(
        [
            gf.fits.crossing_time(z[0], z[1], 0.5 * s[j]) if z is not None else np.nan
            for j, z in enumerate(zooms)
        ]
    )
    measured = np.where(np.isfinite(measured), measured, timeline.learn_times)
    if depth == 2 and whitened(data):
        u0 = gf.analytic.effective_balanced_init(model, data)
        predicted = np.asarray(gf.analytic.learning_time(s, u0, 2, 0.5), dtype=float)
        curves = np.stack(
            [gf.analytic.balanced_mode_strength(ts, s[j], u0[j], 2) for j in range(s.size)],
            axis=1,
        )
        zoom_curves = [
            None if z is None else gf.analytic.balanced_mode_strength(z[0], s[j], u0[j], 2)
            for j, z in enumerate(zooms)
        ]
        return Predictions(measured, predicted, DEPTH2_METHOD, curves, zoom_curves)
    method = (
        ALIGNED_METHOD if depth > 2 else ALIGNED_METHOD.replace("depth ≥ 3", "data not whitened")
    )
    predicted = np.full(s.size, np.nan)
    curves = np.full((ts.size, s.size), np.nan)
    zoom_curves = []
    for j, z in enumerate(zooms):
        aligned = None
        if z is not None:
            aligned = gf.analytic.aligned_balanced_prediction(z[0], z[1], s[j], depth)
        if aligned is None or not np.isfinite(aligned.t_align):
            # s/100 not inside the dense window: align on the coarse saves
            u = np.asarray(timeline.mode_strengths[:, j])
            aligned = gf.analytic.aligned_balanced_prediction(ts, u, s[j], depth)
        predicted[j] = aligned.t_predicted
        curves[:, j] = aligned.curve(ts)
        zoom_curves.append(None if z is None else aligned.curve(z[0]))
    return Predictions(measured, predicted, method, curves, zoom_curves)
