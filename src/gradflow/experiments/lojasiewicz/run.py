"""`lojasiewicz`: an L2-regularised conditional-Wasserstein flow of a tanh mean-field ResNet to a
long horizon, and what the Łojasiewicz–Simon theory says of it: |∇F| → 0, a finite path length,
and the decay of F − F∞ predicted by the fitted exponent ϑ (`gf.diagnostics.lojasiewicz_fit`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

import gradflow as gf
from gradflow.experiments import Result, checks, register

from .config import LojasiewiczConfig
from .figures import Figures, figures

if TYPE_CHECKING:
    from gradflow.experiments import RunContext

GEOMETRY = "conditional_wasserstein"
MAX_STEPS = 2_000_000  # per piece

NOTES = (
    "L2-regularised (λ = l2) conditional-Wasserstein gradient flow of a tanh mean-field "
    "ResNet, integrated to a long horizon. Theory (Łojasiewicz–Simon, analytic F): the flow "
    "converges to a critical point, |∇F| -> 0, the path length is finite, and F - F_inf decays "
    "exponentially if the fitted exponent ϑ is 1/2 (rate c² = the asymptotic PL ratio) and as "
    "t^(-1/(1-2ϑ)) otherwise. F_inf comes from a longer solve with tighter tolerances. The "
    "energy-dissipation residual certifies the solve: F(τ) + ∫|∇F|² dt = F(0). The tail is "
    "slow rather than stiff (the smallest Hessian eigenvalue in the flow's metric is small), "
    "so the explicit Tsit5 solver with a PID controller is the affordable choice; steps taken "
    "are in the summary."
)


def last_decade(t, path) -> float:
    """The fraction of the path length travelled in the last decade of time."""
    i = int(np.searchsorted(t, t[-1] / 10))
    return float((path[-1] - path[i]) / path[-1])


def fit_numbers(fit) -> dict:
    """The Łojasiewicz fit's numbers, under the summary's names."""
    return {
        "theta_lojasiewicz": fit.theta,
        "c_lojasiewicz": fit.c,
        "fit_r2": fit.r2,
        "fit_points": fit.n_points,
        "fit_window_gap": list(fit.window),
        "fit_window_t": list(fit.t_window),
        "decay_kind": fit.kind,
        "predicted_rate": fit.predicted_rate,
        "measured_rate": fit.measured_rate,
        "rate_relative_error": fit.rate_relative_error,
        "rate_curve_max_log10_error": fit.curve_log10_error,
        "rate_agrees": bool(fit.rate_relative_error < 0.1 and fit.curve_log10_error < 0.5),
        "pl_ratio_min_on_window": fit.pl_ratio_min,
    }


def summary_of(cfg, traj, data, fit, path, poly) -> dict:
    loss, gn = np.asarray(traj.loss), np.asarray(traj.grad_norm)
    t = np.asarray(traj.ts)
    theta = np.asarray(traj.final.particle_positions())
    mass = 1.0 / (cfg.layers * cfg.particles)
    # per-particle stationarity at the end: |∇_θ δF/δμ| = |∂F/∂θ_j| / m_j
    grads = gf.diagnostics.particle_gradients(traj.final, data, l2=cfg.l2, loss=cfg.loss)
    return {
        "loss": cfg.loss,
        "risk": checks.risk_text(
            cfg.loss,
            "F = (1/2n) sum |f(x_i) - y_i|^2 + l2 * integral |theta|^2 dmu "
            "(paper's lambda/2 = our l2)",
            "F = the {loss} risk (gf.losses) + l2 * integral |theta|^2 dmu",
        ),
        "geometry": GEOMETRY,
        "activation": "tanh",
        "layers": cfg.layers,
        "particles": cfg.particles,
        "l2": cfg.l2,
        "t1": cfg.t1,
        "solver": cfg.solver,
        "controller": cfg.controller,
        "steps": int(np.asarray(traj.stats["num_steps"])),
        "rejected_steps": int(np.asarray(traj.stats["num_rejected_steps"])),
        "F0": float(loss[0]),
        "F_final": float(loss[-1]),
        "F_inf": fit.f_inf,
        "F_inf_source": fit.f_inf_source,
        "F_inf_solve": fit.f_inf_solve,
        "grad_norm_final": float(gn[-1]),
        "grad_norm_below_1e-10": bool(gn[-1] < 1e-10),
        "max_particle_stationarity_residual": float(np.max(grads)),
        **fit_numbers(fit),
        "path_length": float(path[-1]),
        "path_length_polygon": float(poly[-1]),
        "path_length_last_decade_fraction": last_decade(t, path),
        "path_length_last_decade_fraction_polygon": last_decade(t, poly),
        "path_length_converged": bool(last_decade(t, path) < 0.01),
        "energy_dissipation": gf.diagnostics.energy_dissipation(traj).as_dict(),
        "second_moment_final": float(mass * np.sum(theta**2)),
        "second_moment_bound_F0_over_l2": float(loss[0] / cfg.l2),
        "max_particle_norm_sq": float(np.max(np.sum(theta**2, axis=-1))),
        "particle_norm_sq_bound": float(loss[0] / cfg.l2 / mass),
    }


def progress(advance):
    """`flow_in_pieces`'s progress(done, total) as steps of a `RunContext` task."""
    reported = [0]

    def report(done: int, total: int) -> None:
        advance(done - reported[0])
        reported[0] = done

    return report


# the line `gradflow list` shows
ABOUT = "L2-regularised Wasserstein flow (tanh): Łojasiewicz exponent, rate, finite path length"


@register("lojasiewicz", ABOUT, LojasiewiczConfig)
def run(cfg: LojasiewiczConfig, context: RunContext) -> Result:
    data, kmodel = cfg.data_and_model_key()
    checks.loss_data(cfg.loss, data)  # the generated targets (a file's: at validation)
    model = cfg.model(kmodel)
    ts = np.concatenate([[0.0], np.geomspace(cfg.t1 * 1e-7, cfg.t1, cfg.saves)])
    pieces = -(-(len(ts) - 1) // cfg.piece)
    with context.task("flow (pieces)", total=pieces) as advance:
        traj = gf.flow_in_pieces(
            model,
            data,
            ts,
            piece=min(cfg.piece, len(ts) - 1),
            checkpoint=context.checkpoint("flow"),
            progress=progress(advance),
            geometry=GEOMETRY,
            l2=cfg.l2,
            rtol=cfg.rtol,
            atol=cfg.atol,
            solver=cfg.solver,
            controller=cfg.controller,
            max_steps=MAX_STEPS,
            loss=cfg.loss,
        )
    with context.task("F_inf (longer, tighter solve)", total=None):
        fit = gf.diagnostics.lojasiewicz_fit(traj, data=data, extend=cfg.extend, loss=cfg.loss)
    path = gf.diagnostics.cumulative_path_length(traj, "speed")
    poly = gf.diagnostics.cumulative_path_length(traj, "polygon")
    record = Figures(
        t=np.asarray(traj.ts),
        loss=np.asarray(traj.loss),
        grad_norm=np.asarray(traj.grad_norm),
        fit=fit,
        path=np.asarray(path),
        polygon=np.asarray(poly),
    )
    summary = summary_of(cfg, traj, data, fit, path, poly)
    return Result.with_figures(figures(record), summary=summary, trajectory=traj, notes=NOTES)
