"""The Łojasiewicz exponent of a trajectory, the convergence rate it predicts, and the
energy-dissipation certificate of a gradient-flow solve (docs/lojasiewicz.md).

**Łojasiewicz–Simon inequality.** Near a critical point with value F_∞,
|∇F(θ)| ≥ c |F(θ) − F_∞|^{1−ϑ} with ϑ ∈ (0, ½] (for an analytic F). Along the flow the norm is the
flow's own metric norm |∇F|_G (`Trajectory.grad_norm`), and dF/dt = −|∇F|_G². We fit

    log |∇F|_G = log c + (1 − ϑ) log (F − F_∞)

by least squares on the tail of the trajectory (`fits.linear_fit` in the logs). The fit needs a
minimum F_∞ attained at a critical point: a loss without one (cross-entropy, logistic on
separable data) is refused. Where the inequality is tight along the flow,
e = F − F_∞ obeys e' = −c² e^{2−2ϑ}, so

- ϑ = ½:  e(t) = e(t_0) exp(−c² (t − t_0))  (exponential; c² is the asymptotic PL ratio
  |∇F|²/(F − F_∞));
- ϑ < ½:  e(t) = [e(t_0)^{−(1−2ϑ)} + (1 − 2ϑ) c² (t − t_0)]^{−1/(1−2ϑ)} ~ t^{−1/(1−2ϑ)},

and the distance to the limit decays like t^{−ϑ/(1−2ϑ)}. `lojasiewicz_fit` compares the measured
e(t) on the fit window with the solution of e' = −c² e^{2−2ϑ} from the window's first point.

Example with a known exponent: F(θ) = |θ|^p (p ≥ 2) has |∇F| = p F^{(p−1)/p}, so ϑ = 1/p and
c = p exactly; p = 2 gives e ∝ exp(−4t), p = 4 gives e ~ 1/(64 t²).

**F_∞** is, in order of preference: the given `f_inf` (a number, or a callable traj → number);
the final value of a longer, tighter solve continued from the trajectory's last state (pass
`data=` — the flow is re-run with the trajectory's geometry and l2 to `extend` × t1 with a PID
controller, tolerances 100× tighter and the trajectory's solver or `solver=` — 'kvaerno5' when
the tail is stiff; a tail that is merely slow, as in the mean-field experiments, is cheaper with
the explicit solver); or a self-consistent
estimate from the trajectory alone (F_∞ = F(T) − (|∇F(T)|/c)^{1/(1−ϑ)}, iterated with the fit).

**Energy-dissipation equality.** For a gradient flow in a metric,
F(μ_τ) + ½∫_0^τ |μ'|² dt + ½∫_0^τ |∂F|²(μ_t) dt = F(μ_0); since |μ'| = |∂F| along the flow this is
F(τ) + ∫_0^τ |∇F|_G² dt = F(0). `energy_dissipation` evaluates the residual with the saved
|∇F|_G (quadrature in log t by a cubic spline) and with the metric speed estimated from the saved
states; its size certifies the accuracy of the solve.

??? cite
    Łojasiewicz (1963); Simon, "Asymptotics for a class of non-linear evolution equations"
    (Ann. Math. 1983); Isobe, continuous DNNs under Wasserstein gradient flow with L2
    regularisation; Ambrosio, Gigli, Savaré, "Gradient Flows in Metric Spaces" (2008).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from .._errors import ConfigError
from .._loss_checks import require_minimum, trajectory_loss
from .._result import Record
from .._validation import check
from ..fits import exponential_rate, linear_fit, loglog_slope


@dataclasses.dataclass(frozen=True)
class LojasiewiczFit(Record):
    """The result of `lojasiewicz_fit` (all numbers named; `as_dict()` for summaries).

    - `theta`: the fitted exponent ϑ; `c`: the constant; `one_minus_theta`: the log-log slope.
    - `r2`: coefficient of determination of the log-log fit; `n_points`: points used.
    - `f_inf`, `f_inf_source`: F_∞ and where it came from ('given', 'longer_solve',
      'self_consistent'); `f_inf_solve`: statistics of the longer solve (steps, t1, |∇F| there).
    - `window`: (e_min, e_max) of F − F_∞ used, and `t_window` the corresponding times.
    - `kind`: 'exponential' (ϑ within `tol` of ½) or 'power'.
    - `predicted_rate`: c² (exponential) or the exponent −1/(1−2ϑ) of e(t) (power).
    - `measured_rate`: −d log e/dt (exponential) or d log e/d log t (power), least squares on
      the window.
    - `rate_relative_error`: |measured − predicted| / |predicted|.
    - `curve_log10_error`: max over the window of |log10(e_predicted(t)/e(t))| with
      e_predicted solving e' = −c² e^{2−2ϑ} from the window's first point.
    - `pl_ratio_min`, `pl_ratio_final`: |∇F|²/(F − F_∞) on the window.
    """

    theta: float
    c: float
    one_minus_theta: float
    r2: float
    n_points: int
    f_inf: float
    f_inf_source: str
    window: tuple[float, float]
    t_window: tuple[float, float]
    kind: str
    predicted_rate: float
    measured_rate: float
    rate_relative_error: float
    curve_log10_error: float
    pl_ratio_min: float
    pl_ratio_final: float
    f_inf_solve: dict = dataclasses.field(default_factory=dict)

    def predicted_gap(self, t, t0: float, e0: float) -> np.ndarray:
        """e(t) solving e' = −c² e^{2−2ϑ}, e(t0) = e0 (exponential when ϑ = ½)."""
        return _predicted_gap(np.asarray(t, dtype=float), t0, e0, self.theta, self.c)


def _predicted_gap(t, t0, e0, theta, c):
    a = 1.0 - 2.0 * theta
    if abs(a) < 1e-9:
        return e0 * np.exp(-(c**2) * (t - t0))
    return (e0 ** (-a) + a * c**2 * (t - t0)) ** (-1.0 / a)


def _rebuilt_loss(traj, loss):
    """The loss to continue a trajectory's flow with (a custom loss must be passed as `loss=`)."""
    rebuilt = trajectory_loss(traj, loss)
    if rebuilt is None:
        raise ConfigError(
            "loss",
            traj.info.get("loss"),
            "the loss object itself (loss=...): a custom loss cannot be rebuilt "
            "from a trajectory's name for it",
        )
    return rebuilt


def _longer_solve(traj, data, extend, rtol, atol, solver, max_steps, loss):
    from .._flow import flow

    info = traj.info
    t_end = float(traj.ts[-1])
    t1 = t_end * float(extend)
    solver = solver or info.get("solver", "tsit5")
    rtol = rtol if rtol is not None else max(float(info.get("rtol", 1e-8)) / 100.0, 1e-13)
    atol = atol if atol is not None else max(float(info.get("atol", 1e-10)) / 100.0, 1e-16)
    longer = flow(
        traj.final,
        data,
        t1,
        t0=t_end,
        geometry=info.get("geometry", "euclidean"),
        loss=loss,
        l2=float(info.get("l2", 0.0)),
        rtol=rtol,
        atol=atol,
        solver=solver,
        controller="pid",
        saveat=np.geomspace(max(t_end, 1e-12), t1, 64),
        max_steps=max_steps,
    )
    loss = np.asarray(longer.loss)
    return (
        float(loss[-1]),
        {
            "t1": t1,
            "rtol": rtol,
            "atol": atol,
            "solver": solver,
            "num_steps": int(np.asarray(longer.stats["num_steps"]).sum()),
            "grad_norm_final": float(np.asarray(longer.grad_norm)[-1]),
            "loss_decrease": float(loss[0] - loss[-1]),
        },
        longer,
    )


def lojasiewicz_fit(
    traj,
    f_inf: float | Callable | None = None,
    *,
    data=None,
    loss=None,
    extend: float = 10.0,
    rtol: float | None = None,
    atol: float | None = None,
    solver: str | None = None,
    max_steps: int = 1_000_000,
    window: tuple[float, float] | None = None,
    tail_decades: float = 6.0,
    floor: float | None = None,
    tol: float = 0.05,
) -> LojasiewiczFit:
    """Fit the Łojasiewicz inequality |∇F|_G ≥ c (F − F_∞)^{1−ϑ} on a trajectory's tail.

    **Arguments:**

    - `traj`: a single `Trajectory` of a gradient flow (`gf.flow`).
    - `f_inf`: F_∞ (a number or a callable `traj -> number`); if None, from a longer solve when
      `data` is given, else self-consistently (see the module).
    - `loss`: the loss the trajectory was flowed with, needed for a custom loss's longer solve
      (by default the one `traj.info` names); a loss that attains no minimum is refused.
    - `data`, `extend`, `rtol`, `atol`, `solver`, `max_steps`: the longer solve to `extend` × t1
      (tolerances default to 100× tighter than the trajectory's; the solver to the
      trajectory's own, with a PID controller; 'kvaerno5' for stiff tails).
    - `window`: (e_min, e_max) of e = F − F_∞ to fit on. Default: the last `tail_decades`
      decades of e above the `floor` (default 10⁴ × machine ε × max(|F_∞|, 1): below it e is
      round-off).
    - `tol`: |ϑ − ½| below which the decay is classed exponential.

    **Returns:** a `LojasiewiczFit`.
    """
    if traj.ensemble_size is not None:
        raise ConfigError("traj", "an ensemble trajectory", "a single trajectory (use .member(e))")
    require_minimum(
        trajectory_loss(traj, loss),
        "lojasiewicz_fit",
        "fits |∇F| against F − F_∞ near a critical point with value F_∞",
    )
    flow_loss = loss  # `loss` below is the series F(t)
    check(len(traj) >= 4, "traj", f"{len(traj)} saved points", "at least 4 saved points")
    ts = np.asarray(traj.ts, dtype=float)
    loss = np.asarray(traj.loss, dtype=float)
    gnorm = np.asarray(traj.grad_norm, dtype=float)
    solve_info: dict = {}

    def fit_on(f_inf_value):
        e = loss - f_inf_value
        fl = floor if floor is not None else 1e4 * np.finfo(float).eps * max(abs(f_inf_value), 1.0)
        ok = (e > fl) & (gnorm > 0) & np.isfinite(e)
        if window is not None:
            lo, hi = window
        else:
            if not np.any(ok):
                raise ConfigError(
                    "traj",
                    "no point with F − F_∞ above round-off",
                    "a trajectory that has not yet converged to round-off",
                )
            hi_all = float(np.max(e[ok]))
            lo = max(fl, float(np.min(e[ok])))
            hi = min(hi_all, lo * 10**tail_decades)
        sel = ok & (e >= lo) & (e <= hi)
        # the asymptotic regime: after the last time the gap was above the window
        above = np.nonzero(e > hi)[0]
        if above.size:
            sel &= np.arange(len(e)) > above[-1]
        if sel.sum() < 3:
            raise ConfigError("window", (lo, hi), "a range of F − F_∞ containing ≥ 3 saved points")
        line = linear_fit(np.log(e[sel]), np.log(gnorm[sel]))
        return e, sel, line.slope, line.intercept, line.r2, (lo, hi)

    if f_inf is None and data is not None:
        f_inf_value, solve_info, _ = _longer_solve(
            traj, data, extend, rtol, atol, solver, max_steps, _rebuilt_loss(traj, flow_loss)
        )
        source = "longer_solve"
    elif f_inf is None:
        source = "self_consistent"
        f_inf_value = float(loss[-1])
        # start just below F(T) and iterate F_∞ = F(T) − (|∇F(T)|/c)^{1/(1−ϑ)}
        f_inf_value -= max(gnorm[-1] ** 2, np.finfo(float).eps * max(abs(f_inf_value), 1.0))
        for _ in range(20):
            _, _, slope, intercept, _, _ = fit_on(f_inf_value)
            c = math.exp(intercept)
            gap = (gnorm[-1] / c) ** (1.0 / slope) if slope > 0 else 0.0
            new = float(loss[-1] - gap)
            if abs(new - f_inf_value) <= 1e-15 * max(abs(new), 1.0):
                f_inf_value = new
                break
            f_inf_value = new
    else:
        f_inf_value = float(f_inf(traj) if callable(f_inf) else f_inf)
        source = "given"

    e, sel, slope, intercept, r2, (lo, hi) = fit_on(f_inf_value)
    theta = 1.0 - slope
    c = math.exp(intercept)
    t_sel, e_sel, g_sel = ts[sel], e[sel], gnorm[sel]
    pl = g_sel**2 / e_sel
    if abs(theta - 0.5) <= tol:
        kind = "exponential"
        # with ϑ = ½ the constant is the PL ratio: c² = |∇F|²/e, its asymptotic value
        predicted = float(np.median(pl[-max(3, len(pl) // 4) :]))
        measured = exponential_rate(t_sel, e_sel, floor=0.0)
        curve = e_sel[0] * np.exp(-predicted * (t_sel - t_sel[0]))
    else:
        kind = "power"
        predicted = -1.0 / (1.0 - 2.0 * theta) if theta < 0.5 else float("nan")
        measured = loglog_slope(t_sel, e_sel).slope
        curve = _predicted_gap(t_sel, t_sel[0], e_sel[0], theta, c)
    rel = (
        abs(measured - predicted) / abs(predicted)
        if predicted and np.isfinite(predicted)
        else float("nan")
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        curve_err = float(np.nanmax(np.abs(np.log10(curve / e_sel))))
    return LojasiewiczFit(
        theta=float(theta),
        c=float(c),
        one_minus_theta=float(slope),
        r2=float(r2),
        n_points=int(sel.sum()),
        f_inf=float(f_inf_value),
        f_inf_source=source,
        window=(float(lo), float(hi)),
        t_window=(float(t_sel[0]), float(t_sel[-1])),
        kind=kind,
        predicted_rate=float(predicted),
        measured_rate=float(measured),
        rate_relative_error=float(rel),
        curve_log10_error=curve_err,
        pl_ratio_min=float(pl.min()),
        pl_ratio_final=float(pl[-1]),
        f_inf_solve=solve_info,
    )


def _integral_log_time(ts, values):
    """Cumulative ∫_{t_0}^{t_i} v dt: a cubic spline of v in t for roughly even saves, of v·t in
    log t for saves spread over decades (the first segment from t = 0 by the trapezoid rule)."""
    from scipy.interpolate import CubicSpline  # here: scipy's import is ~0.3 s of gradflow's

    ts = np.asarray(ts, float)
    v = np.asarray(values, float)
    out = np.zeros_like(ts)
    if len(ts) < 4:
        out[1:] = np.cumsum(0.5 * (v[1:] + v[:-1]) * np.diff(ts))
        return out
    dt = np.diff(ts)
    if dt.max() <= 50 * dt.min():
        spline = CubicSpline(ts, v)
        seg = np.array([spline.integrate(ts[i], ts[i + 1]) for i in range(len(ts) - 1)])
        out[1:] = np.cumsum(seg)
        return out
    start = 0
    if ts[0] <= 0:
        out[1] = 0.5 * (v[0] + v[1]) * (ts[1] - ts[0])
        start = 1
    u = np.log(ts[start:])
    spline = CubicSpline(u, v[start:] * ts[start:])
    seg = np.array([spline.integrate(u[i], u[i + 1]) for i in range(len(u) - 1)])
    out[start + 1 :] = out[start] + np.cumsum(seg)
    return out


@dataclasses.dataclass(frozen=True)
class EnergyDissipation(Record):
    """Result of `energy_dissipation` (relative numbers are relative to the loss drop).

    - `dissipated`: ∫_0^T |∇F|_G² dt (quadrature of the saved `grad_norm`).
    - `loss_drop`: F(0) − F(T).
    - `residual_max`, `residual_final`: max over τ, and at τ = T, of
      |F(τ) + ∫_0^τ |∇F|_G² dt − F(0)| / (F(0) − F(T)): the relative defect of the equality
      (quadrature error and solver error together).
    - `speed_ratio_median`: median over saved segments of |θ(t_{i+1}) − θ(t_i)|_G /
      ∫_{t_i}^{t_{i+1}} |∇F|_G dt (≤ 1, → 1 for dense saves: the metric speed equals |∇F|_G).
    - `half_metric_residual`: the equality's defect with ½∫|μ'|² estimated from the saved states
      (Σ |Δθ|_G²/Δt, a lower bound) and ½∫|∂F|² from `grad_norm`, relative to the loss drop.
    """

    dissipated: float
    loss_drop: float
    residual_max: float
    residual_final: float
    speed_ratio_median: float
    half_metric_residual: float


def energy_dissipation(traj) -> EnergyDissipation:
    """The energy-dissipation equality F(τ) + ½∫_0^τ |μ'|² dt + ½∫_0^τ |∂F|² dt = F(0), as a
    certificate of a single trajectory's solve: along the flow |μ'| = |∂F| = |∇F|_G, so the
    equality reads F(τ) + ∫_0^τ |∇F|_G² dt = F(0) (module docstring).

    **Returns:** an `EnergyDissipation`.
    """
    if traj.ensemble_size is not None:
        raise ConfigError("traj", "an ensemble trajectory", "a single trajectory (use .member(e))")
    ts = np.asarray(traj.ts, float)
    loss = np.asarray(traj.loss, float)
    g = np.asarray(traj.grad_norm, float)
    diss = _integral_log_time(ts, g**2)
    drop = float(loss[0] - loss[-1])
    scale = drop if drop > 0 else max(abs(loss[0]), 1e-300)
    residual = np.abs(loss + diss - loss[0]) / scale
    seg = np.asarray(traj.segment_lengths(), float)
    speed_int = np.diff(_integral_log_time(ts, g))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = seg / speed_int
    ratio = ratio[np.isfinite(ratio) & (speed_int > 1e-14 * max(speed_int.max(), 1e-300))]
    metric_sq = float(np.sum(seg**2 / np.diff(ts)))
    half = loss[-1] + 0.5 * metric_sq + 0.5 * diss[-1] - loss[0]
    return EnergyDissipation(
        dissipated=float(diss[-1]),
        loss_drop=drop,
        residual_max=float(residual.max()),
        residual_final=float(residual[-1]),
        speed_ratio_median=float(np.median(ratio)) if ratio.size else float("nan"),
        half_metric_residual=float(abs(half) / scale),
    )
