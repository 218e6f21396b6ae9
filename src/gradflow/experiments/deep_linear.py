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

import jax
import numpy as np

from .. import analytic
from .._errors import check, check_choice
from ..data import linear_teacher
from ..diagnostics import (
    conservation_drift,
    critical_points,
    hessian_spectrum,
    saddle_timeline,
)
from ..models import DeepLinear
from ..solvers import SOLVERS, flow
from ._base import ExperimentConfig, Progress, Result, register

_DEFAULT_S = [4.0, 3.0, 2.2, 1.6, 1.2, 0.9, 0.65, 0.5]
_QUICK_S = [3.0, 1.8, 1.0, 0.6]


@dataclasses.dataclass
class DeepLinearConfig(ExperimentConfig):
    """Configuration of `deep-linear`.

    - `dim`: input = output = hidden width d. `depth`: number of layers H.
    - `singular_values`: the teacher's s_j (at most `dim`, distinct, positive); default
      4, 3, 2.2, 1.6, 1.2, 0.9, 0.65, 0.5 (quick: 3, 1.8, 1, 0.6 with dim 4).
    - `n`: number of samples (≥ dim, inputs whitened exactly).
    - `init_scale`: per-layer scale ε of the random init.
    - `t1`: horizon; None = 3× the predicted learning time of the weakest mode.
    - `solver`: 'auto', or one of tsit5, dopri5, dopri8, kvaerno5. `rtol`, `atol`: tolerances.
    - `saves`: number of log-spaced saved times.
    """

    dim: int = 8
    depth: int = 3
    singular_values: list[float] | None = None
    n: int = 256
    init_scale: float = 1e-3
    t1: float | None = None
    solver: str = "auto"
    rtol: float = 1e-10
    atol: float = 1e-12
    saves: int = 500

    def resolved(self) -> DeepLinearConfig:
        """The configuration with the quick variant and defaults applied."""
        c = dataclasses.replace(self)
        if c.quick:
            c.dim = min(c.dim, 4)
            c.saves = min(c.saves, 300)
            c.n = min(c.n, 64)
        if c.singular_values is None:
            c.singular_values = list(_QUICK_S if c.quick else _DEFAULT_S)[: c.dim]
        return c

    def validate(self) -> None:
        super().validate()
        for name in ("dim", "depth", "n", "saves"):
            v = getattr(self, name)
            check(isinstance(v, int) and v >= 1, name, v, "a positive integer")
        check(self.saves >= 10, "saves", self.saves, "an integer ≥ 10")
        check(np.isfinite(self.init_scale) and self.init_scale > 0, "init_scale",
              self.init_scale, "a positive number")
        check(np.isfinite(self.rtol) and self.rtol > 0, "rtol", self.rtol, "a positive number")
        check(np.isfinite(self.atol) and self.atol > 0, "atol", self.atol, "a positive number")
        check_choice("solver", self.solver, ["auto", *SOLVERS])
        if self.t1 is not None:
            check(np.isfinite(self.t1) and self.t1 > 0, "t1", self.t1, "a positive number or none")
        c = self.resolved()
        s = np.asarray(c.singular_values, dtype=float)
        check(1 <= s.size <= c.dim, "singular_values", list(s),
              f"between 1 and dim = {c.dim} values")
        check(bool(np.all(s > 0) and np.all(np.isfinite(s))), "singular_values", list(s),
              "positive numbers")
        check(len(set(s.tolist())) == s.size, "singular_values", list(s), "distinct values")
        check(c.n >= c.dim, "n", c.n, f"n ≥ dim = {c.dim} (inputs are whitened)")


def _choose_solver(c: DeepLinearConfig, s: np.ndarray, t1: float) -> tuple[str, float]:
    """'auto' → tsit5 unless the stability-limited step count would be large.

    The largest Hessian eigenvalue near the global minimum is about H s_1^{2−2/H} (per mode);
    Tsit5's stability interval on the negative axis is about 3.5, so it needs ≳ λ t1 / 3.5 steps.
    """
    h = c.depth
    lam = 2.0 * h * s.max() ** (2.0 - 2.0 / h)
    explicit_steps = lam * t1 / 3.5
    if c.solver != "auto":
        return c.solver, explicit_steps
    return ("tsit5" if explicit_steps < 2e5 else "kvaerno5"), explicit_steps


def _aligned_prediction(ts, u, s, depth):
    """H ≥ 3: align the balanced solution where u first reaches s/100, predict the rest.

    Returns (predicted time u reaches s/2, predicted curve on ts (NaN before alignment)).
    """
    target = s / 100.0
    above = np.nonzero(u >= target)[0]
    if above.size == 0 or above[0] == 0:
        return np.nan, np.full_like(ts, np.nan)
    i = int(above[0])
    # Interpolate log u linearly in t between the saves around the crossing.
    t0, t1, u0, u1 = ts[i - 1], ts[i], max(u[i - 1], 1e-300), u[i]
    ta = t0 + (t1 - t0) * (np.log(target) - np.log(u0)) / (np.log(u1) - np.log(u0))
    t_half = ta + float(analytic.learning_time(s, target, depth, 0.5))
    curve = np.full_like(ts, np.nan)
    after = ts >= ta
    curve[after] = analytic.balanced_mode_strength(ts[after] - ta, s, target, depth)
    return t_half, curve


@register(
    "deep-linear",
    "saddle-to-saddle gradient flow of a deep linear network: learning times, plateaus at the "
    "critical values, Hessians at the saddles, conservation laws",
    DeepLinearConfig,
)
def run(config: DeepLinearConfig, progress: Progress) -> Result:
    c = config.resolved()
    s = np.asarray(c.singular_values, dtype=float)
    h = c.depth
    key_data, key_model = jax.random.split(jax.random.PRNGKey(c.seed))
    data = linear_teacher(key_data, c.dim, c.dim, c.n, sorted(s, reverse=True))
    s = np.sort(s)[::-1]
    widths = [c.dim] * (h + 1)
    model = DeepLinear(widths, key_model, c.init_scale)

    # Horizon: the weakest mode's balanced learning time from u0 ~ ε^H, times 3.
    u0_guess = c.init_scale**h
    t_weakest = float(analytic.learning_time(s[-1], u0_guess, h, 0.5))
    t1 = c.t1 if c.t1 is not None else 3.0 * t_weakest + 10.0 / s[-1]
    solver, explicit_steps = _choose_solver(c, s, t1)
    ts = np.concatenate([[0.0], np.geomspace(t1 * 1e-6, t1, c.saves - 1)])

    with progress.task(f"flow to t1 = {t1:.3g} ({solver})", total=1) as advance:
        traj = flow(model, data, t1, solver=solver, rtol=c.rtol, atol=c.atol, saveat=ts,
                    max_steps=2_000_000)
        advance()

    with progress.task("diagnostics", total=3) as advance:
        timeline = saddle_timeline(traj, data)
        advance()
        drift = conservation_drift(traj)
        advance()
        # Hessians at the trajectory's plateau points and at the atlas points they represent.
        plateau_models = [traj.at(int(i)) for i in timeline.plateau_indices]
        spectra = [hessian_spectrum(m, data) for m in plateau_models]
        atlas = critical_points(data, widths, subsets=timeline.visited_modes)
        advance()

    tsn = np.asarray(traj.ts)
    measured = np.asarray(timeline.learn_times)
    if h == 2:
        method = "depth 2: balanced solution from the projected effective init |a_j + b_j|²/4"
        u0_eff = analytic.effective_balanced_init(model, data)
        predicted = np.asarray(analytic.learning_time(s, u0_eff, 2, 0.5), dtype=float)
        curves = np.stack([analytic.balanced_mode_strength(tsn, s[j], u0_eff[j], 2)
                           for j in range(s.size)], axis=1)
    else:
        method = ("depth ≥ 3: balanced solution aligned where u_j first reaches s_j/100, "
                  "predicting the time it reaches s_j/2")
        pairs = [_aligned_prediction(tsn, timeline.mode_strengths[:, j], s[j], h)
                 for j in range(s.size)]
        predicted = np.array([p[0] for p in pairs])
        curves = np.stack([p[1] for p in pairs], axis=1)
    rel_dev = np.abs(measured - predicted) / predicted
    plateau_dev = np.asarray(timeline.plateau_deviation)
    global_value = analytic.critical_value(data, tuple(range(min(c.dim, s.size))))
    final_loss = float(traj.loss[-1])
    order = [int(j) for j in timeline.order]

    saddles = []
    for i, (modes, point) in enumerate(zip(timeline.visited_modes, atlas, strict=True)):
        eig = spectra[i]
        scale = float(np.max(np.abs(eig))) if eig.size else 0.0
        saddles.append({
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
        })

    stats = traj.stats
    summary = {
        "depth": h,
        "dim": c.dim,
        "singular_values": s.tolist(),
        "init_scale": c.init_scale,
        "t1": t1,
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
        "learn_time_max_relative_deviation": float(np.nanmax(rel_dev)) if order else None,
        "critical_values_visited": np.asarray(timeline.critical_values).tolist(),
        "plateau_losses": np.asarray(timeline.plateau_losses).tolist(),
        "plateau_loss_max_abs_deviation": float(np.nanmax(np.abs(plateau_dev))),
        "saddles_visited": saddles,
        "global_min_value": global_value,
        "final_loss": final_loss,
        "final_gap_to_global_min": final_loss - global_value,
        "final_grad_norm": float(traj.grad_norm[-1]),
        "conservation_drift_abs": drift["max_abs"],
        "conservation_drift_relative": drift["relative"],
        "loss_normalisation": "F = (1/2n) sum_i |W x_i - y_i|^2",
    }

    metrics = traj.metrics_frame()
    for j in range(s.size):
        metrics[f"mode_strength_{j}"] = timeline.mode_strengths[:, j]
    for k in range(drift["series"].shape[-1]):
        metrics[f"conservation_drift_C{k + 1}"] = drift["series"][:, k]

    figures = _figures(tsn, traj, timeline, s, curves, measured, predicted, drift, spectra,
                       saddles, global_value, h)
    captions = {
        "loss": "Loss against log t. Dashed lines: the critical values of the saddles visited "
                "(½ Σ of the unlearned s_j² + const); dotted verticals: the time each mode was "
                "learned (u_j = s_j/2). Right: the gap to the global minimum, log scale.",
        "modes": "Mode strengths u_j(t) = U_jᵀ W(t) V_j divided by s_j (solid) against the exact "
                 "balanced solution u' = H u^{2−2/H}(s − u) (dashed; " + method + ").",
        "conservation": "Drift of the conservation laws |C_k(t) − C_k(0)|_F, "
                        "C_k = W_{k+1}ᵀW_{k+1} − W_kW_kᵀ: the integrator's accuracy certificate.",
        "hessians": "Hessian spectra at the trajectory's closest approach to each saddle visited "
                    "(symmetric log scale). Negative eigenvalues: strict saddle directions; the "
                    "atlas kind of the exact critical point is written above each column.",
    }
    notes = (
        f"Depth {h}, width {c.dim}, teacher singular values {', '.join(f'{x:g}' for x in s)}, "
        f"per-layer init scale {c.init_scale:g}, integrated with {solver} to t = {t1:.4g} "
        f"(rtol {c.rtol:g}). The network learns the modes one at a time in decreasing order of "
        "s_j, resting on a plateau at each critical value in between (saddle-to-saddle dynamics). "
        "For H ≥ 3 the origin is a non-strict saddle (zero Hessian) and the saddles that have "
        "learned the top modes are non-strict too: the escape is polynomial, not exponential."
    )
    return Result(summary=summary, metrics=metrics, trajectory=traj, figures=figures,
                  captions=captions, notes=notes)


def _figures(ts, traj, timeline, s, curves, measured, predicted, drift, spectra, saddles,
             global_value, depth):
    import matplotlib.pyplot as plt

    colors = plt.cm.viridis(np.linspace(0.0, 0.9, s.size))
    t_plot = np.where(ts > 0, ts, np.nan)
    figures = {}

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.6))
    loss = np.asarray(traj.loss)
    ax.semilogx(t_plot, loss, color="k", lw=2, label="loss F(t)")
    for i, cv in enumerate(timeline.critical_values):
        ax.axhline(cv, color="tab:red", ls="--", lw=0.8, alpha=0.7)
        modes = timeline.visited_modes[i]
        ax.text(t_plot[1], cv, f" J={{{','.join(str(j + 1) for j in modes)}}}", va="bottom",
                fontsize=7, color="tab:red")
    for j in range(s.size):
        if np.isfinite(measured[j]):
            ax.axvline(measured[j], color=colors[j], ls=":", lw=1.2)
    ax.set_xlabel("t (log scale)")
    ax.set_ylabel("F")
    ax.set_title(f"Saddle-to-saddle: depth {depth}, critical values (dashed)")
    gap = np.maximum(loss - global_value, 1e-300)
    ax2.loglog(t_plot, gap, color="k", lw=2)
    for j in range(s.size):
        if np.isfinite(measured[j]):
            ax2.axvline(measured[j], color=colors[j], ls=":", lw=1.2, label=f"mode {j + 1} learned")
    ax2.set_xlabel("t (log scale)")
    ax2.set_ylabel("F − F_min")
    ax2.set_title("Gap to the global minimum")
    ax2.legend(fontsize=7, loc="lower left", ncol=2)
    fig.tight_layout()
    figures["loss"] = fig

    fig, ax = plt.subplots(figsize=(9, 4.8))
    for j in range(s.size):
        ax.semilogx(t_plot, timeline.mode_strengths[:, j] / s[j], color=colors[j], lw=2,
                    label=f"mode {j + 1} (s={s[j]:g})")
        ax.semilogx(t_plot, curves[:, j] / s[j], color=colors[j], ls="--", lw=1)
        if np.isfinite(predicted[j]):
            ax.plot(predicted[j], 0.5, marker="x", color=colors[j], ms=8)
    ax.set_ylim(-0.05, 1.1)
    ax.set_xlabel("t (log scale)")
    ax.set_ylabel("u_j(t) / s_j")
    ax.set_title("Mode strengths (solid) vs exact balanced solution (dashed); × predicted s/2")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    figures["modes"] = fig

    fig, ax = plt.subplots(figsize=(8, 4.2))
    series = drift["series"]
    for k in range(series.shape[-1]):
        ax.loglog(t_plot, np.maximum(series[:, k], 1e-300), lw=1.5,
                  label=f"|C_{k + 1}(t) − C_{k + 1}(0)|")
    ax.set_xlabel("t (log scale)")
    ax.set_ylabel("Frobenius norm")
    ax.set_title(f"Conservation drift (relative {drift['relative']:.2e})")
    if series.shape[-1]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    figures["conservation"] = fig

    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(spectra) + 2), 4.6))
    for i, eig in enumerate(spectra):
        jitter = (np.arange(eig.size) % 7 - 3) * 0.04
        ax.scatter(i + jitter, eig, s=8, c=np.where(eig < 0, "tab:red", "tab:blue"), alpha=0.7)
        label = saddles[i]["atlas_kind"].replace("_", " ")
        ax.text(i, 1.02, label, transform=ax.get_xaxis_transform(), ha="center", fontsize=7,
                rotation=20)
    ax.set_yscale("symlog", linthresh=1e-6)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(range(len(spectra)))
    ax.set_xticklabels(["J={" + ",".join(str(j + 1) for j in sd["modes_learned"]) + "}"
                        for sd in saddles], fontsize=7, rotation=30)
    ax.set_ylabel("Hessian eigenvalues (symlog)")
    ax.set_title("Hessian spectra at the saddles visited", pad=28)
    fig.tight_layout()
    figures["hessians"] = fig
    return figures


__all__ = ["DeepLinearConfig", "run"]
