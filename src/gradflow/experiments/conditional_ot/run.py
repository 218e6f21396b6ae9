"""`conditional-ot`: for each initial spread s and particle count M, the conditional-Wasserstein
flow of a mean-field ResNet from a Gaussian measure to t1; where the risk reaches the threshold,
the PL ratio |∇F|²_G/F along the way, and how far the measure travelled.

**One compilation for a whole sweep.** A measure with M particles per layer is the same measure
when every particle is repeated r times (masses 1/(L·M·r)), and the flow keeps the copies
together (`MeanFieldResNet.replicate`), so runs with M dividing M_max share M_max's array shapes
and one compiled solve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.tree_util as jtu
import numpy as np
import pandas as pd

import gradflow as gf
from gradflow.experiments import Result, checks, params, register

from .config import ConditionalOTConfig
from .figures import Figures, figures

if TYPE_CHECKING:
    from gradflow.experiments import RunContext

GEOMETRY = "conditional_wasserstein"
# PL ratios are read where F is above round-off (|∇F|² and F are both ~ machine ε below).
ROUND_OFF = 1e-14


def save_times(t1: float, saves: int) -> np.ndarray:
    """t = 0 and `saves` log-spaced times from t1·1e-5 to t1."""
    return np.concatenate([[0.0], np.geomspace(t1 * 1e-5, t1, saves)])


def choose(cfg: ConditionalOTConfig, model, data) -> str:
    """The solver: `cfg.solver`, or for 'auto' `gf.choose_solver` from the curvature at the start
    with the step budget as the explicit method's limit. Above it RKC, never the dense implicit
    Kvaerno5: on the s = 8 quick runs (576 unknowns) Kvaerno5 had not reached t1 after 8 minutes
    where RKC took 37 s."""
    if cfg.solver != "auto":
        return cfg.solver
    problem, params = gf.GradientFlowProblem.from_model(
        model, data, geometry=GEOMETRY, loss=cfg.loss
    )
    rho = float(gf.largest_curvature(problem, params))
    size = sum(int(np.size(leaf)) for leaf in jtu.tree_leaves(params))
    return gf.choose_solver(rho, cfg.t1, size, budget=cfg.max_steps, dense_limit=0).name


def solve(cfg, model, data, ts, plan, solver, context, name):
    """(trajectory, status): one flow, in pieces with a checkpoint where its saves do not fit one
    batch (`plan.piece`)."""
    kwargs = dict(geometry=GEOMETRY, solver=solver, **params.flow_options(cfg))
    try:
        if plan.piece >= len(ts) - 1:
            return gf.flow(model, data, cfg.t1, saveat=ts, **kwargs), "ok"
        folder = context.checkpoint(name)
        return gf.flow_in_pieces(
            model, data, ts, piece=plan.piece, checkpoint=folder, **kwargs
        ), "ok"
    except (gf.SolverError, gf.DivergenceError) as err:
        return err.trajectory, "max_steps" if isinstance(err, gf.SolverError) else "diverged"


def outcome(run: dict) -> str:
    if run["converged"]:
        return "converged"
    return "slow (still decaying)" if run["last_decade_ratio"] < 0.1 else "stalled (plateau)"


def summarise(cfg, traj, factor, status, m, s, solver) -> tuple[dict, pd.DataFrame]:
    """The run's numbers and its series (t, loss, grad_norm, pl_ratio)."""
    loss, gn, tt = np.asarray(traj.loss), np.asarray(traj.grad_norm), np.asarray(traj.ts)
    valid = loss > 0
    pl = np.where(valid, gn**2 / np.where(valid, loss, 1.0), np.nan)
    pl_sel = pl[loss > ROUND_OFF] if np.any(loss > ROUND_OFF) else pl
    wc = None
    if m <= cfg.wc_max_particles:
        wc = gf.diagnostics.conditional_wasserstein(
            traj.at(0).deduplicate(factor), traj.final.deduplicate(factor)
        )
    below = gf.fits.first_below(tt, loss, cfg.threshold)
    i10 = int(np.searchsorted(tt, tt[-1] / 10))  # the last decade of time
    run = {
        "particles": m,
        "features": m * cfg.layers,
        "init_scale": float(s),
        "initial_risk": float(loss[0]),
        "final_risk": float(loss[-1]),
        "converged": bool(loss[-1] < cfg.threshold),
        "status": status,
        "t_reached": float(tt[-1]),
        "t_below_threshold": None if np.isnan(below) else below,
        "pl_ratio_min": float(np.nanmin(pl_sel)),
        "pl_ratio_final": float(pl_sel[-1]),
        "wc_travelled": wc,
        "path_length": float(np.asarray(traj.path_length())),
        "steps": int(np.asarray(traj.stats["num_steps"]).sum()),
        "solver": solver,
        "last_decade_ratio": float(loss[-1] / loss[i10]) if loss[i10] > 0 else 0.0,
    }
    run["outcome"] = outcome(run)
    frame = pd.DataFrame(
        {"particles": m, "init_scale": float(s), "t": tt, "loss": loss, "grad_norm": gn}
    )
    frame["pl_ratio"] = pl
    return run, frame


def separating(cfg, runs) -> dict:
    """Per scale, the smallest M from which every larger M in the sweep converges (or None)."""
    out = {}
    for s in cfg.init_scales:
        rs = [r for r in runs if r["init_scale"] == float(s)]
        out[str(float(s))] = next(
            (r["particles"] for i, r in enumerate(rs) if all(x["converged"] for x in rs[i:])), None
        )
    return out


NOT_CONVERGED_KEYS = (
    "particles",
    "init_scale",
    "initial_risk",
    "final_risk",
    "outcome",
    "last_decade_ratio",
    "status",
    "t_reached",
)


def summary_of(cfg, runs, q) -> dict:
    sep = separating(cfg, runs)
    s_small = float(min(cfg.init_scales))
    conv_small = [r for r in runs if r["init_scale"] == s_small and r["converged"]]
    return {
        "loss": cfg.loss,
        "risk": checks.risk_text(
            cfg.loss, "F = (1/2n) sum |f(x_i) - y_i|^2 (gradflow's normalisation)"
        ),
        "geometry": GEOMETRY,
        "n": cfg.samples(),
        "state_dim": q,
        "layers": cfg.layers,
        "t1": cfg.t1,
        "threshold": cfg.threshold,
        "separating_particles_per_layer": sep,
        "separating_features": {k: (v * cfg.layers if v else None) for k, v in sep.items()},
        "separating_particles_small_init": sep[str(s_small)],
        "min_pl_ratio_converged_small_init": (
            float(min(r["pl_ratio_min"] for r in conv_small)) if conv_small else None
        ),
        "not_converged": [
            {k: r[k] for k in NOT_CONVERGED_KEYS} for r in runs if not r["converged"]
        ],
        "runs": runs,
    }


# Particles per layer drawn in the particle-cloud figure (every k-th beyond it).
CLOUD_PARTICLES = 2048


def cloud(model, factor: int) -> np.ndarray:
    """The distinct particles (L, M, p) of a replicated model, thinned to ≤ CLOUD_PARTICLES per
    layer for the figure."""
    p = np.asarray(model.deduplicate(factor).particle_positions())
    return p[:, :: max(1, -(-p.shape[1] // CLOUD_PARTICLES))]


NOTES = (
    "Conditional-OT (conditional-Wasserstein) gradient flow of a mean-field ResNet, particles "
    "per layer M swept against the spread s of the Gaussian initial measure (which sets the "
    "initial risk and how saturated the tanh neurons start). The theory (local PL) predicts "
    "convergence to a global minimiser (risk -> 0, PL ratio |grad F|^2/F bounded below) when "
    "the number of features is large enough and the initial risk small; with few features "
    "the flow stalls on a plateau (the PL ratio collapses to 0). Runs with different M share "
    "one compiled solve: every measure is represented with M_max particles per layer by "
    "repeating particles, which leaves the measure and its flow unchanged. W_C travelled is "
    "the exact conditional Wasserstein distance between the initial and final measures; it is "
    "at most the path length in the flow's metric."
)


def incomplete(cfg, runs) -> list[str]:
    """Flows that did not reach t1 (step budget, divergence): they make the run incomplete."""
    return [
        f"M={r['particles']} s={r['init_scale']:g}: {r['status']} at t={r['t_reached']:.4g} "
        f"< t1={cfg.t1:g}"
        for r in runs
        if r["status"] != "ok"
    ]


# the line `gradflow list` shows
ABOUT = "mean-field ResNet, conditional-OT flow: features × initial scale, where it reaches 1e-8"


@register("conditional-ot", ABOUT, ConditionalOTConfig)
def run(cfg: ConditionalOTConfig, context: RunContext) -> Result:
    data, kmodel = cfg.data_and_model_key()
    checks.loss_data(cfg.loss, data)  # the generated targets (a file's: at validation)
    q = cfg.state_dim
    m_max, plan = max(cfg.particles), cfg.plan()
    ts = save_times(cfg.t1, plan.saves - 1)
    runs, frames, best, last = [], [], None, None
    with context.task("flows", total=len(cfg.particles) * len(cfg.init_scales)) as advance:
        for s in cfg.init_scales:
            for m in cfg.particles:
                k = jax.random.fold_in(kmodel, m)  # the same draw for each M across scales
                base = gf.models.MeanFieldResNet(
                    cfg.in_dim, q, cfg.layers, m, cfg.out_dim, key=k, init_scale=float(s)
                )
                model = base.replicate(m_max // m) if m_max % m == 0 else base
                factor = model.particles // m
                solver = choose(cfg, model, data)
                traj, status = solve(cfg, model, data, ts, plan, solver, context, f"M{m}-s{s:g}")
                r, frame = summarise(cfg, traj, factor, status, m, s, solver)
                runs.append(r)
                frames.append(frame)
                # keep one trajectory beside the current one: the largest converged M (smallest s)
                key_ = (r["particles"], -r["init_scale"])
                if r["converged"] and (best is None or key_ > best[0]):
                    best = (key_, traj, factor)
                last = (key_, traj, factor)
                context.log(
                    f"M={m} s={s}: risk {r['initial_risk']:.3g} -> {r['final_risk']:.3g} ({status})"
                )
                advance()
    (m_pick, neg_s), main, factor = best or last
    metrics = pd.concat(frames, ignore_index=True)
    record = Figures(
        threshold=cfg.threshold,
        t1=cfg.t1,
        runs=tuple(runs),
        metrics=metrics,
        start=cloud(main.at(0), factor),
        end=cloud(main.final, factor),
        picked=(m_pick, -neg_s),
    )
    return Result.with_figures(
        figures(record),
        summary=summary_of(cfg, runs, q),
        metrics=metrics,
        trajectory=main,
        notes=NOTES,
        incomplete=incomplete(cfg, runs),
    )
