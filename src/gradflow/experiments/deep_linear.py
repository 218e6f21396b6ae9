"""`deep-linear`: the saddle-to-saddle gradient flow of a deep linear network, certified.

A whitened linear teacher with well-separated singular values s_1 > ... > s_r, a deep linear
network from a small random init (per-layer scale ε), integrated to convergence. The flow passes
near the critical points J = ∅, {1}, {1, 2}, ... whose values are F_J = ½ Σ_{j∉J} s_j² + const
(MODELS.md §1), learning mode j after a plateau of length ~ log(1/ε)/s_j (H = 2) or
~ ε^{−(H−2)}/((H−2) s_j) (H ≥ 3). The run reports:

- the learning order and times, against the balanced prediction u' = H u^{2−2/H}(s − u);
- the loss on each plateau against the critical value it sits at;
- the Hessian spectrum at each visited saddle (strict or not) and at the atlas point it
  represents (`diagnostics.critical_points`);
- the conservation drift max_t |C_k(t) − C_k(0)| (the integrator's certificate) and solver
  statistics.

**Balanced prediction.** For H = 2 it is a genuine prediction: near the origin the mode
coordinates obey a' = s b, b' = s a, so each mode follows the balanced solution from
u_0^eff = |a_j(0) + b_j(0)|²/4 (projected; `analytic.effective_balanced_init`). For H ≥ 3 the
escape from the origin is nonlinear from the start and no such linearisation exists; the balanced
solution is then aligned once per mode (the time at which u_j = s_j/100 is matched) and predicts
the rest of the curve, in particular the time u_j reaches s_j/2. The summary names the method.

**Stiffness.** After a mode is learned the Hessian has eigenvalues ~ H s^{2−2/H} while the next
plateau lasts ~ ε^{−(H−2)}/s: with `solver="auto"` the explicit Tsit5 is used when the estimated
number of stability-limited steps is modest, the implicit Kvaerno5 otherwise (e.g. depth 4 with
ε = 1e-4, a horizon of ~10⁸).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import analytic
from .._errors import DivergenceError, SolverError
from .._trajectory import Trajectory
from .._validation import check
from ..data import linear_teacher
from ..diagnostics import (
    conservation_drift,
    critical_points,
    hessian_spectrum,
    saddle_timeline,
)
from ..models import DeepLinear
from ..runs import RunContext
from ..solvers import SOLVERS, descent, flow
from ._base import Result, register
from ._checks import count, items, number, optional
from ._config import ExperimentConfig, param

_DEFAULT_S = (4.0, 3.0, 2.2, 1.6, 1.2, 0.9, 0.65, 0.5)
_QUICK_S = (3.0, 1.8, 1.0, 0.6)
# critical_points computes dense Hessians: networks of at most this many parameters.
_MAX_PARAMS = 4000


def _solvers():
    return ["auto", *SOLVERS]


@dataclasses.dataclass(frozen=True)
class DeepLinearConfig(ExperimentConfig):
    """Configuration of `deep-linear` (`gradflow describe deep-linear` lists every key)."""

    QUICK = dict(dim=4, n=64, saves=300, singular_values=_QUICK_S)
    TINY = dict(
        dim=2,
        depth=2,
        n=8,
        saves=40,
        singular_values=(2.0, 1.0),
        init_scale=0.1,
        rtol=1e-8,
        atol=1e-10,
    )

    dim: int = param(8, "input = output = hidden width d", check=count(), size=True)
    depth: int = param(3, "number of layers H (≥ 2)", check=count(2), size=True)
    singular_values: tuple[float, ...] | None = param(
        None,
        "the teacher's distinct singular values s_j (at most dim); none: the first dim of "
        "4, 3, 2.2, 1.6, 1.2, 0.9, 0.65, 0.5",
        check=optional(items(number(), distinct=True, what="positive numbers")),
    )
    n: int = param(
        256, "number of samples (≥ dim; inputs whitened exactly)", check=count(), size=True
    )
    init_scale: float = param(1e-3, "per-layer scale ε of the random init", check=number())
    t1: float | None = param(
        None,
        "horizon; none: 3× the predicted learning time of the weakest mode, extended until "
        "every mode is learned",
        check=optional(number()),
    )
    solver: str = param(
        "auto", "'auto' (Tsit5 or Kvaerno5 by stiffness) or a solver", choices=_solvers
    )
    rtol: float = param(1e-10, "relative tolerance of the solver", check=number())
    atol: float = param(1e-12, "absolute tolerance of the solver", check=number())
    saves: int = param(500, "number of log-spaced saved times (≥ 10)", check=count(10), size=True)
    max_steps: int = param(
        1_000_000,
        "the solver's step budget per segment (reaching it is a SolverError)",
        check=count(),
    )
    gd_lr: float | None = param(
        None,
        "if set, also run gradient descent with this step from the same init over the same "
        "horizon (t = kη) and compare its learning times",
        check=optional(number()),
    )

    def complete(self) -> DeepLinearConfig:
        """singular_values none → the first `dim` default values."""
        if self.singular_values is None:
            return dataclasses.replace(self, singular_values=_DEFAULT_S[: self.dim])
        return self

    def validate(self) -> None:
        super().validate()
        s = self.singular_values or _DEFAULT_S[: self.dim]
        self.require(
            len(s) <= self.dim,
            {
                "singular_values": f"between 1 and dim = {self.dim} values",
                "dim": f"dim ≥ {len(s)}, the number of singular_values",
            },
        )
        self.require(
            self.n >= self.dim,
            {"n": f"n ≥ dim = {self.dim} (inputs are whitened)", "dim": f"dim ≤ n = {self.n}"},
        )
        n_params = self.depth * self.dim**2
        self.require(
            n_params <= _MAX_PARAMS,
            {
                "dim": f"depth·dim² ≤ {_MAX_PARAMS} (dense Hessians at the saddles; depth = "
                f"{self.depth})",
                "depth": f"depth·dim² ≤ {_MAX_PARAMS} (dense Hessians at the saddles; dim = "
                f"{self.dim})",
            },
        )
        # u0 ~ ε^H, the initial mode strength, must be a positive float64.
        log_u0 = self.depth * math.log10(self.init_scale)
        self.require(
            -300 <= log_u0 <= 300,
            {
                "depth": f"a depth with init_scale^depth in [1e-300, 1e300] (init_scale = "
                f"{self.init_scale:g}: depth ≤ {int(300 / abs(math.log10(self.init_scale)) or 1)})"
                if self.init_scale != 1
                else "any depth",
                "init_scale": f"init_scale^depth in [1e-300, 1e300] (depth = {self.depth})",
            },
        )
        if self.gd_lr is not None and self.t1 is not None:
            steps = self.t1 / self.gd_lr
            self.require(
                steps <= 50 * self.max_steps,
                {
                    "gd_lr": f"a step giving at most {50 * self.max_steps} steps over t1 = {self.t1:g}",
                    "t1": f"a horizon of at most {50 * self.max_steps} steps of gd_lr",
                    "max_steps": f"at least t1/gd_lr/50 = {steps / 50:.3g}",
                },
            )

    def estimated_bytes(self) -> float:
        """Saved states (main run and zooms), dense Hessians (and Kvaerno5's Jacobian), data."""
        p = float(self.depth) * self.dim**2
        return 8.0 * (2 * (self.saves + 300) * p + 4 * p * p + 4 * float(self.n) * self.dim)


# Tsit5 costs ~50 µs a step here and Kvaerno5 (dense Newton on P unknowns) ~100× more: the
# implicit solver pays off only when the explicit one would need millions of steps.
_EXPLICIT_STEP_BUDGET = 3e6


def _choose_solver(c: DeepLinearConfig, s: np.ndarray, t1: float):
    """'auto' → Tsit5 unless its stability-limited step count would exceed the budget.

    The largest Hessian eigenvalue near the global minimum is about H s_1^{2−2/H} (per mode; a
    factor 2 is kept as margin); Tsit5's stability interval on the negative axis is about 3.5, so
    it needs ≳ λ t1 / 3.5 steps. Returns (name, diffrax solver or name, estimated explicit steps).

    Kvaerno5 is built with a full Newton root finder: diffrax's default chord iteration (Jacobian
    frozen over the step) fails to converge where a mode is being learned, and the step size then
    collapses (tens of thousands of rejected steps on depth 4, ε = 1e-4).
    """
    h = c.depth
    lam = 2.0 * h * s.max() ** (2.0 - 2.0 / h)
    explicit_steps = lam * t1 / 3.5
    name = c.solver
    if name == "auto":
        name = "tsit5" if explicit_steps < _EXPLICIT_STEP_BUDGET else "kvaerno5"
    if name == "kvaerno5":
        import diffrax
        import optimistix as optx

        root_finder = diffrax.with_stepsize_controller_tols(optx.Newton)()
        return name, diffrax.Kvaerno5(root_finder=root_finder), explicit_steps
    return name, name, explicit_steps


def _concatenate(a: Trajectory, b: Trajectory) -> Trajectory:
    """Trajectory `a` followed by `b` (b starts where a stops); solver statistics are summed."""
    cat = lambda x, y: jnp.concatenate([jnp.asarray(x), jnp.asarray(y)])
    stats = {}
    for k, v in a.stats.items():
        w = b.stats.get(k, v)
        stats[k] = (v and w) if isinstance(v, bool) else v + w
    info = {
        **a.info,
        "t1": b.info["t1"],
        "solver": "+".join(dict.fromkeys([*a.info["solver"].split("+"), b.info["solver"]])),
    }
    return Trajectory(
        cat(a.ts, b.ts),
        jax.tree_util.tree_map(cat, a.params, b.params),
        a.static,
        cat(a.loss, b.loss),
        cat(a.grad_norm, b.grad_norm),
        a.masses,
        stats,
        info,
    )


def _aligned_prediction(ts, u, s, depth):
    """H ≥ 3: align the balanced solution where u last crosses s/100 upwards before it is learned
    (reaches s/2), and predict the rest of the curve from there.

    The *last* upward crossing, not the first: while a stronger mode is being learned the weaker
    ones can spike transiently (cross-talk through the shared hidden layers) and fall back.

    Returns (alignment time t_a, predicted time u reaches s/2), NaN where undetermined.
    """
    target = s / 100.0
    learned = np.nonzero(u >= 0.5 * s)[0]
    if learned.size == 0:
        return np.nan, np.nan
    below = np.nonzero(u[: learned[0]] < target)[0]
    if below.size == 0:
        return np.nan, np.nan
    i = int(below[-1]) + 1  # first save at or above s/100 after the last one below it
    # Interpolate log u linearly in t between the saves around the crossing.
    t0, t1, u0, u1 = ts[i - 1], ts[i], max(u[i - 1], 1e-300), u[i]
    ta = t0 + (t1 - t0) * (np.log(target) - np.log(u0)) / (np.log(u1) - np.log(u0))
    return ta, ta + float(analytic.learning_time(s, target, depth, 0.5))


def _aligned_curve(ts, ta, s, depth):
    """The balanced solution through u(t_a) = s/100 on `ts` (NaN before t_a)."""
    curve = np.full(np.shape(ts), np.nan)
    if np.isfinite(ta):
        after = ts >= ta
        curve[after] = analytic.balanced_mode_strength(ts[after] - ta, s, s / 100.0, depth)
    return curve


def _first_crossing(ts, u, target):
    """First time u reaches `target`, linearly interpolated between saves (NaN if never)."""
    above = np.nonzero(u >= target)[0]
    if above.size == 0:
        return np.nan
    i = int(above[0])
    if i == 0:
        return float(ts[0])
    return float(ts[i - 1] + (ts[i] - ts[i - 1]) * (target - u[i - 1]) / (u[i] - u[i - 1]))


# The dense re-solve of each escape covers (t − t_j)·H s_j^{2−2/H} ∈ _ZOOM around its learning
# time t_j, with _ZOOM_SAVES equally spaced saves.
_ZOOM = (-30.0, 15.0)
_ZOOM_SAVES = 241


def _zoom(traj, data, timeline, c, s):
    """Re-solve each escape densely, starting from saved states (nothing is re-integrated from 0).

    The log-spaced saves of the main run are far coarser than an escape (which takes a time
    ~ 1/(H s^{2−2/H}) at t ~ ε^{−(H−2)}/s). For mode j: (1) bisect, re-solving the bracket of
    saves around the crossing u_j = s_j/2 with `_ZOOM_SAVES` saves, until the bracket is shorter
    than one time unit of the balanced ODE; (2) solve the window `_ZOOM` around it from the
    latest saved state before the window. Returns, per mode, (times, u_j on them) or None.
    """

    def solve(start, t0, t1, ts):
        _, solver_obj, _ = _choose_solver(c, s, t1 - t0)
        return flow(
            start,
            data,
            float(t1),
            t0=float(t0),
            solver=solver_obj,
            rtol=c.rtol,
            atol=c.atol,
            saveat=ts,
            max_steps=c.max_steps,
        )

    out = []
    for j in range(s.size):
        ts = np.asarray(traj.ts)
        u = np.asarray(timeline.mode_strengths[:, j])
        above = np.nonzero(u >= 0.5 * s[j])[0]
        if above.size == 0 or above[0] == 0:
            out.append(None)
            continue
        rate = c.depth * s[j] ** (2.0 - 2.0 / c.depth)
        starts = [(ts[i], traj, i) for i in range(above[0])]  # saved states before the crossing
        k, seg = int(above[0]), traj
        for _ in range(12):
            if (ts[k] - ts[k - 1]) * rate <= 1.0:
                break
            zts = np.linspace(ts[k - 1], ts[k], _ZOOM_SAVES)
            seg = solve(seg.at(k - 1), ts[k - 1], ts[k], zts)
            u = np.asarray(saddle_timeline(seg, data).mode_strengths[:, j])
            k = int(np.nonzero(u >= 0.5 * s[j])[0][0])
            ts = zts
            starts += [(ts[i], seg, i) for i in range(k)]
        tj = _first_crossing(ts[k - 1 : k + 1], u[k - 1 : k + 1], 0.5 * s[j])
        w0 = tj + _ZOOM[0] / rate
        w1 = min(tj + _ZOOM[1] / rate, float(traj.ts[-1]))
        t_start, seg_start, i_start = max(
            (st for st in starts if st[0] <= w0), key=lambda st: st[0], default=starts[0]
        )
        zts = np.linspace(max(w0, t_start), w1, _ZOOM_SAVES)
        window = solve(seg_start.at(i_start), t_start, w1, zts)
        out.append((zts, np.asarray(saddle_timeline(window, data).mode_strengths[:, j])))
    return out


@register(
    "deep-linear",
    "saddle-to-saddle gradient flow of a deep linear network: learning times, plateaus at the "
    "critical values, Hessians at the saddles, conservation laws",
    DeepLinearConfig,
)
def run(config: DeepLinearConfig, progress: RunContext) -> Result:
    c = config
    s = np.asarray(c.singular_values, dtype=float)
    h = c.depth
    key_data, key_model = jax.random.split(jax.random.PRNGKey(c.seed))
    data = linear_teacher(key_data, c.dim, c.dim, c.n, sorted(s, reverse=True))
    s = np.sort(s)[::-1]
    widths = [c.dim] * (h + 1)
    model = DeepLinear(widths, key_model, c.init_scale)

    # Horizon: 3× the weakest mode's balanced learning time from u0 ~ ε^H. The effective initial
    # strength of weak modes is smaller than that (their components along the hidden directions
    # of modes learned earlier decay), so an automatic horizon is extended (×4, at most 4 times)
    # until every mode is learned. Each extension continues the flow from where the previous
    # segment stopped (never re-integrates), with log-spaced saves.
    u0_guess = c.init_scale**h
    t_weakest = float(analytic.learning_time(s[-1], u0_guess, h, 0.5))
    t1 = c.t1 if c.t1 is not None else 3.0 * t_weakest + 10.0 / s[-1]
    extensions = 0 if c.t1 is not None else 4
    solvers_used: list[str] = []
    explicit_steps = 0.0
    traj = None
    with progress.task("flow", total=extensions + 1) as advance:
        for attempt in range(extensions + 1):
            solver, solver_obj, explicit_steps = _choose_solver(c, s, t1)
            solvers_used.append(solver)
            if traj is None:
                t0, start_model = 0.0, model
                ts = np.concatenate([[0.0], np.geomspace(t1 * 1e-5, t1, c.saves - 1)])
            else:
                t0, start_model = float(traj.ts[-1]), traj.final
                ts = np.geomspace(t0, t1, c.saves // 8 + 1)[1:]
            progress.log(f"flow on [{t0:.3g}, {t1:.3g}] with {solver}")
            try:
                segment = flow(
                    start_model,
                    data,
                    t1,
                    t0=t0,
                    solver=solver_obj,
                    rtol=c.rtol,
                    atol=c.atol,
                    saveat=ts,
                    max_steps=c.max_steps,
                )
            except (DivergenceError, SolverError) as err:
                # Keep everything computed so far: the runner saves err.trajectory.
                if traj is not None and err.trajectory is not None:
                    err.trajectory = _concatenate(traj, err.trajectory)
                raise
            traj = segment if traj is None else _concatenate(traj, segment)
            advance()
            timeline = saddle_timeline(traj, data)
            if len(timeline.order) == s.size or attempt == extensions:
                break
            t1 *= 4.0
    solver = "+".join(dict.fromkeys(solvers_used))

    # Plain gradient descent from the same init over the same horizon (iterate k ≈ θ(kη)), run
    # before the diagnostics so that a diverging step fails fast.
    gd = None
    if c.gd_lr is not None:
        steps = int(np.ceil(t1 / c.gd_lr))
        check(
            steps <= 50 * c.max_steps,
            "gd_lr",
            c.gd_lr,
            f"a step giving at most {50 * c.max_steps} steps over t1 = {t1:.3g}",
        )
        with progress.task(f"gradient descent ({steps} steps)", total=1) as advance:
            gd = descent(model, data, steps, c.gd_lr, save_every=max(1, steps // 2000))
            advance()

    with progress.task("diagnostics", total=2) as advance:
        drift = conservation_drift(traj)
        advance()
        # Hessians at the trajectory's plateau points and at the atlas points they represent.
        # (No index: the plateau's window held no save, e.g. a large init already past it.)
        spectra = [
            hessian_spectrum(traj.at(int(i)), data) if i is not None else np.full(1, np.nan)
            for i in timeline.plateau_indices
        ]
        atlas = critical_points(data, widths, subsets=timeline.visited_modes)
        advance()

    with progress.task("escapes (dense re-solves)", total=1) as advance:
        zooms = _zoom(traj, data, timeline, c, s)
        advance()

    tsn = np.asarray(traj.ts)
    # Learning times from the dense re-solves (the coarse saves only bracket them).
    measured = np.array(
        [
            _first_crossing(z[0], z[1], 0.5 * s[j]) if z is not None else np.nan
            for j, z in enumerate(zooms)
        ]
    )
    measured = np.where(np.isfinite(measured), measured, timeline.learn_times)
    zoom_curves = []
    if h == 2:
        method = "depth 2: balanced solution from the projected effective init |a_j + b_j|²/4"
        u0_eff = analytic.effective_balanced_init(model, data)
        predicted = np.asarray(analytic.learning_time(s, u0_eff, 2, 0.5), dtype=float)
        curves = np.stack(
            [analytic.balanced_mode_strength(tsn, s[j], u0_eff[j], 2) for j in range(s.size)],
            axis=1,
        )
        for j, z in enumerate(zooms):
            zoom_curves.append(
                None if z is None else analytic.balanced_mode_strength(z[0], s[j], u0_eff[j], 2)
            )
    else:
        method = (
            "depth ≥ 3: balanced solution aligned where u_j last crosses s_j/100 before "
            "being learned, predicting the time it reaches s_j/2 (the escape only: no "
            "linearisation exists at the non-strict origin; see learn_times_nominal for "
            "the scaling law from u_0 = ε^H)"
        )
        predicted = np.full(s.size, np.nan)
        curves = np.full((tsn.size, s.size), np.nan)
        for j, z in enumerate(zooms):
            ta, t_half = (
                _aligned_prediction(z[0], z[1], s[j], h) if z is not None else (np.nan, np.nan)
            )
            if not np.isfinite(ta):  # s/100 not inside the dense window: use the coarse saves
                ta, t_half = _aligned_prediction(tsn, timeline.mode_strengths[:, j], s[j], h)
            predicted[j] = t_half
            curves[:, j] = _aligned_curve(tsn, ta, s[j], h)
            zoom_curves.append(None if z is None else _aligned_curve(z[0], ta, s[j], h))
    rel_dev = np.abs(measured - predicted) / predicted
    # The scaling law alone: the balanced learning time from the nominal u_0 = ε^H.
    nominal = np.asarray(analytic.learning_time(s, c.init_scale**h, h, 0.5), dtype=float)
    plateau_dev = np.asarray(timeline.plateau_deviation)
    global_value = analytic.critical_value(data, tuple(range(min(c.dim, s.size))))
    final_loss = float(traj.loss[-1])
    order = [int(j) for j in timeline.order]

    saddles = []
    for i, (modes, point) in enumerate(zip(timeline.visited_modes, atlas, strict=True)):
        eig = spectra[i]
        scale = float(np.nanmax(np.abs(eig), initial=0.0))
        saddles.append(
            {
                "modes_learned": [int(j) for j in modes],
                "critical_value": float(timeline.critical_values[i]),
                "plateau_loss": float(timeline.plateau_losses[i]),
                "plateau_time": float(timeline.plateau_times[i]),
                "lambda_min_on_trajectory": float(eig[0]),
                "lambda_max_on_trajectory": float(eig[-1]),
                "n_negative_on_trajectory": int(np.sum(eig < -1e-8 * scale)),
                "atlas_kind": point.kind,
                "atlas_lambda_min": point.lambda_min,
                "atlas_unstable_dim": point.unstable_dim,
                "atlas_centre_dim": point.centre_dim,
            }
        )

    stats = traj.stats
    summary = {
        "depth": h,
        "dim": c.dim,
        "singular_values": s.tolist(),
        "init_scale": c.init_scale,
        "t1": t1,
        "t1_automatic": c.t1 is None,
        "solver": solver,
        "rtol": c.rtol,
        "atol": c.atol,
        "estimated_explicit_steps": explicit_steps,
        "solver_steps": stats["num_steps"],
        "solver_rejected_steps": stats["num_rejected_steps"],
        "function_evaluations": stats["function_evaluations"],
        "function_evaluations_exact": stats["function_evaluations_exact"],
        "modes_learned": len(order),
        "learn_order": order,
        "learned_in_decreasing_order_of_s": order == sorted(order),
        "learn_times_measured": measured.tolist(),
        "learn_times_predicted": predicted.tolist(),
        "learn_time_prediction_method": method,
        "learn_time_relative_deviations": rel_dev.tolist(),
        "learn_time_max_relative_deviation": float(np.nanmax(rel_dev)) if order else None,
        "learn_times_nominal": nominal.tolist(),
        "learn_time_nominal_ratios": (measured / nominal).tolist(),
        "critical_values_visited": np.asarray(timeline.critical_values).tolist(),
        "plateau_losses": np.asarray(timeline.plateau_losses).tolist(),
        "plateau_loss_deviations": plateau_dev.tolist(),
        "plateau_loss_max_abs_deviation": float(np.nanmax(np.abs(plateau_dev))),
        "saddle_kinds_visited": [sd["atlas_kind"] for sd in saddles],
        "saddle_lambda_min_visited": [sd["atlas_lambda_min"] for sd in saddles],
        "saddles_visited": saddles,
        "global_min_value": global_value,
        "final_loss": final_loss,
        "final_gap_to_global_min": final_loss - global_value,
        "final_grad_norm": float(traj.grad_norm[-1]),
        "conservation_drift_abs": drift.max_abs,
        "conservation_drift_relative": drift.relative,
        "conservation_drift_per_layer": drift.per_layer,
        "certified": bool(drift.relative <= 100 * c.rtol),
        "loss_normalisation": "F = (1/2n) sum_i |W x_i - y_i|^2",
    }

    if gd is not None:
        gd_times = np.asarray(saddle_timeline(gd, data).learn_times)
        summary.update(
            {
                "gd_lr": c.gd_lr,
                "gd_steps": int(gd.info["steps"]),
                "gd_final_loss": float(gd.loss[-1]),
                "gd_learn_times": gd_times.tolist(),
                "gd_learn_time_relative_differences": ((gd_times - measured) / measured).tolist(),
            }
        )

    metrics = traj.metrics_frame()
    for j in range(s.size):
        metrics[f"mode_strength_{j}"] = timeline.mode_strengths[:, j]
    for k in range(drift.series.shape[-1]):
        metrics[f"conservation_drift_C{k + 1}"] = drift.series[:, k]

    figures = _figures(
        tsn,
        traj,
        timeline,
        s,
        curves,
        measured,
        predicted,
        drift,
        spectra,
        saddles,
        atlas,
        global_value,
        h,
        c.rtol,
        zooms,
        zoom_curves,
        gd,
    )
    captions = {
        "loss": "Left: the loss gap F(t) − F* against t (log–log); dashed red lines: the critical "
        "values F_J − F* = ½ Σ_{j∉J} s_j² of the saddles visited (labelled by the set J "
        "of modes learned); dotted verticals: the time each mode was learned "
        "(u_j = s_j/2). Right: |∇F|, which dips at each saddle (circles: the save "
        "closest to it, where the plateau loss is read).",
        "modes": "Left: mode strengths u_j(t) = U_jᵀ W(t) V_j divided by s_j (solid) against the "
        "exact balanced solution of u' = H u^{2−2/H}(s − u) (dashed; " + method + "). "
        "Right: every escape in the time units of the balanced ODE, centred on its "
        "measured learning time: the measured curves collapse onto the balanced one.",
        "conservation": "Drift of the conservation laws |C_k(t) − C_k(0)|_F, "
        "C_k = W_{k+1}ᵀW_{k+1} − W_kW_kᵀ (exactly constant along the flow): the "
        "integrator's accuracy certificate, against 100·rtol·max_t|θ|².",
        "hessians": "Hessian spectra at each saddle visited: dots at the trajectory's closest "
        "approach (red: negative), bars at the exact balanced critical point with the "
        "same modes; its kind and λ_min are written below each column (symmetric log "
        "scale).",
    }
    notes = (
        f"Depth {h}, width {c.dim}, teacher singular values {', '.join(f'{x:g}' for x in s)}, "
        f"per-layer init scale {c.init_scale:g}, integrated with {solver} to t = {t1:.4g} "
        f"(rtol {c.rtol:g}). The network learns the modes one at a time in decreasing order of "
        "s_j, resting on a plateau at each critical value in between (saddle-to-saddle dynamics). "
        "For H ≥ 3 the origin is a non-strict saddle (zero Hessian) and the saddles that have "
        "learned the top modes are non-strict too: the escape is polynomial, not exponential."
    )
    return Result(
        summary=summary,
        metrics=metrics,
        trajectory=traj,
        figures=figures,
        captions=captions,
        notes=notes,
    )


def _modes_label(modes) -> str:
    return "J={" + ",".join(str(j + 1) for j in modes) + "}"


def _figures(
    ts,
    traj,
    timeline,
    s,
    curves,
    measured,
    predicted,
    drift,
    spectra,
    saddles,
    atlas,
    global_value,
    depth,
    rtol,
    zooms,
    zoom_curves,
    gd=None,
):
    import matplotlib.pyplot as plt

    colors = plt.cm.viridis(np.linspace(0.0, 0.88, s.size))
    t_plot = np.where(ts > 0, ts, np.nan)
    # Nothing happens long before the first mode is learned: start the time axes there.
    first = np.nanmin(measured) if np.any(np.isfinite(measured)) else ts[-1] * 1e-3
    t_left = max(float(np.nanmin(t_plot)), 0.05 * first)
    t_right = float(ts[-1])
    figures = {}

    def mark_learned(ax, labels=False):
        for j in range(s.size):
            if np.isfinite(measured[j]):
                ax.axvline(
                    measured[j],
                    color=colors[j],
                    ls=":",
                    lw=1.3,
                    label=f"mode {j + 1} learned (s={s[j]:g})" if labels else None,
                )

    # ---- loss: the gap to the global minimum on log axes, the critical values as lines
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 5.2), gridspec_kw={"width_ratios": [3, 2]})
    loss = np.asarray(traj.loss)
    gaps = np.asarray(timeline.critical_values) - global_value
    positive = gaps[gaps > 0]
    floor = 1e-4 * (positive.min() if positive.size else max(float(loss[0] - global_value), 1.0))
    gap = np.clip(loss - global_value, 0.1 * floor, None)  # below the axis once converged
    mark_learned(ax, labels=True)
    for i, g in enumerate(gaps):
        if g <= 0:
            continue
        ax.axhline(
            g,
            color="tab:red",
            ls="--",
            lw=0.8,
            alpha=0.6,
            label="critical values F_J − F*" if i == 0 else None,
        )
        ax.annotate(
            _modes_label(timeline.visited_modes[i]),
            (1.0, g),
            xycoords=("axes fraction", "data"),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=7.5,
            color="tab:red",
        )
    ax.loglog(t_plot, gap, color="k", lw=2, label="F(t) − F*")
    if gd is not None:
        gd_gap = np.clip(np.asarray(gd.loss)[1:] - global_value, 0.1 * floor, None)
        ax.loglog(
            np.asarray(gd.ts)[1:],
            gd_gap,
            color="tab:orange",
            lw=1.2,
            ls="-.",
            label=f"gradient descent, η = {gd.info['lr']:g}",
        )
    ax.set_xlim(t_left, t_right)
    ax.set_ylim(floor, gap.max() * 3)
    ax.set_xlabel("t")
    ax.set_ylabel("F(t) − F*   (F* = global minimum)")
    ax.set_title(f"Saddle-to-saddle: depth {depth}, plateaus at the critical values")
    ax.legend(fontsize=7.5, loc="lower left", framealpha=0.9)
    ax.grid(True, which="major", alpha=0.25)
    gnorm = np.asarray(traj.grad_norm)
    ax2.loglog(t_plot, np.clip(gnorm, 1e-300, None), color="k", lw=1.6)
    mark_learned(ax2)
    for k in timeline.plateau_indices:
        if k is not None and ts[k] > 0:
            ax2.plot(ts[k], gnorm[k], "o", ms=5, mfc="none", mec="tab:red")
    ax2.plot([], [], "o", ms=5, mfc="none", mec="tab:red", label="closest approach to a saddle")
    ax2.set_xlim(t_left, t_right)
    ax2.set_ylim(max(gnorm[gnorm > 0].min() * 0.3, 1e-16), gnorm.max() * 3)
    ax2.set_xlabel("t")
    ax2.set_ylabel("|∇F|")
    ax2.set_title("Gradient norm: dips at each saddle")
    ax2.legend(fontsize=7.5, loc="lower left")
    ax2.grid(True, which="major", alpha=0.25)
    fig.tight_layout()
    figures["loss"] = fig

    # ---- mode strengths: growth on log axes, and the collapse of every escape onto one curve
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 5.2))
    u = np.asarray(timeline.mode_strengths)
    for j in range(s.size):
        ax.loglog(
            t_plot,
            np.where(u[:, j] > 0, u[:, j] / s[j], np.nan),
            color=colors[j],
            lw=2,
            label=f"mode {j + 1} (s={s[j]:g})",
        )
    for j in range(s.size):
        ax.loglog(
            t_plot,
            curves[:, j] / s[j],
            color="k",
            ls="--",
            lw=0.9,
            label="exact balanced solution" if j == 0 else None,
        )
    ax.plot(
        predicted, np.full(s.size, 0.5), "x", color="k", ms=7, label="predicted time of u = s/2"
    )
    ax.axhline(0.5, color="grey", lw=0.6, ls=":")
    pos = u[u > 0] / np.repeat(s[None], u.shape[0], 0)[u > 0]
    ax.set_ylim(max(np.nanmin(pos) if pos.size else 1e-12, 1e-14), 2.0)
    ax.set_xlim(t_left, t_right)
    ax.set_xlabel("t")
    ax.set_ylabel("u_j(t) / s_j   (u_j = U_jᵀ W(t) V_j)")
    ax.set_title("Mode strengths: measured (solid) vs exact balanced solution (dashed)")
    ax.legend(fontsize=7, loc="lower right", ncol=2, framealpha=0.9)
    ax.grid(True, which="major", alpha=0.25)
    # time in the units of the balanced ODE v' = H s^{2−2/H} v^{2−2/H}(1 − v), v = u/s
    for j, z in enumerate(zooms):
        if z is None:
            continue
        tau = (z[0] - measured[j]) * depth * s[j] ** (2.0 - 2.0 / depth)
        ax2.plot(tau, z[1] / s[j], color=colors[j], lw=2.4, alpha=0.8, label=f"mode {j + 1}")
        ax2.plot(tau, zoom_curves[j] / s[j], color="k", ls="--", lw=0.9)
    ax2.plot([], [], color="k", ls="--", lw=0.9, label="balanced solution")
    ax2.set_xlim(*_ZOOM)
    ax2.set_ylim(-0.03, 1.05)
    ax2.set_xlabel("(t − t_j) · H s_j^{2−2/H}   (t_j: measured learning time)")
    ax2.set_ylabel("u_j / s_j")
    ax2.set_title("Each escape, rescaled: one universal curve")
    ax2.legend(fontsize=7, loc="lower right", ncol=2)
    ax2.grid(True, alpha=0.25)
    fig.tight_layout()
    figures["modes"] = fig

    # ---- conservation drift, against the certification threshold
    fig, ax = plt.subplots(figsize=(9, 4.6))
    series = drift.series
    for k in range(series.shape[-1]):
        ax.loglog(
            t_plot,
            np.where(series[:, k] > 0, series[:, k], np.nan),
            lw=1.5,
            label=f"|C_{k + 1}(t) − C_{k + 1}(0)|_F",
        )
    threshold = 100 * rtol * drift.scale
    ax.axhline(
        threshold,
        color="tab:red",
        ls="--",
        lw=1,
        label=f"certificate threshold 100·rtol·max|θ|² = {threshold:.1e}",
    )
    mark_learned(ax)
    ax.set_xlabel("t")
    ax.set_ylabel("drift (Frobenius norm)")
    ax.set_title(
        f"Conservation laws C_k = W_(k+1)ᵀW_(k+1) − W_kW_kᵀ: relative drift "
        f"{drift.relative:.1e} (rtol {rtol:g})"
    )
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, which="major", alpha=0.25)
    fig.tight_layout()
    figures["conservation"] = fig

    # ---- Hessian spectra: on the trajectory (dots) and at the exact critical point (bars)
    n = len(spectra)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.25 * n + 2.5), 5.4))
    for i, eig in enumerate(spectra):
        jitter = (np.arange(eig.size) % 9 - 4) * 0.035
        ax.scatter(
            i - 0.18 + jitter, eig, s=7, alpha=0.75, c=np.where(eig < 0, "tab:red", "tab:blue")
        )
        exact = np.asarray(atlas[i].eigenvalues)
        ax.scatter(
            np.full(exact.size, i + 0.22),
            exact,
            marker="_",
            s=90,
            lw=1.2,
            c=np.where(exact < -1e-8 * np.abs(exact).max(initial=1e-300), "darkred", "k"),
        )
        kind = saddles[i]["atlas_kind"].replace("_", " ")
        ax.text(
            i,
            -0.2,
            f"{kind}\nλ_min = {saddles[i]['atlas_lambda_min']:.1e}",
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="top",
            fontsize=7,
        )
    ax.set_yscale("symlog", linthresh=1e-6)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(range(n))
    ax.set_xticklabels(
        [_modes_label(sd["modes_learned"]) for sd in saddles], fontsize=7.5, rotation=20
    )
    ax.scatter([], [], s=7, c="tab:blue", label="on the trajectory (closest approach), λ > 0")
    ax.scatter([], [], s=7, c="tab:red", label="on the trajectory, λ < 0")
    ax.scatter([], [], marker="_", s=90, c="k", label="exact balanced critical point")
    ax.set_ylabel("Hessian eigenvalues (symlog, linear within ±1e-6)")
    ax.set_title("Hessian spectra at the saddles visited (J = modes learned)")
    ax.legend(fontsize=7.5, loc="upper left", framealpha=0.9)
    ax.set_xlim(-0.6, n - 0.4)
    fig.subplots_adjust(bottom=0.28)
    figures["hessians"] = fig
    return figures


__all__ = ["DeepLinearConfig", "run"]
