"""`mean-field-limit`: for each M, the flow of the first M particles of every layer of one draw
against the flow of the first 2M, compared at t1: W_C between the two measures, the distance
between the networks' outputs, and the distance between the shared particles' trajectories
(a synchronous coupling), over M and seeds.

Every measure is flowed with the array shapes of the largest 2M by repeating its particles
(`MeanFieldResNet.replicate`, the same measure and flow), so all runs share one compiled solve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import numpy as np
import pandas as pd

import gradflow as gf
from gradflow.experiments import Result, checks, register

from .config import MeanFieldLimitConfig
from .figures import Figures, figures

if TYPE_CHECKING:
    from gradflow.experiments import RunContext

GEOMETRY = "conditional_wasserstein"


def solve(cfg, model, data, ts, plan, context, name):
    """One flow, in pieces with a checkpoint where its saves do not fit one batch."""
    kwargs = dict(geometry=GEOMETRY, rtol=cfg.rtol, atol=cfg.atol, loss=cfg.loss)
    if plan.piece >= len(ts) - 1:
        return gf.flow(model, data, cfg.t1, saveat=ts, **kwargs)
    folder = context.checkpoint(name)
    return gf.flow_in_pieces(model, data, ts, piece=plan.piece, checkpoint=folder, **kwargs)


def flows(cfg, data, context) -> tuple[dict, dict, dict, pd.DataFrame]:
    """For every seed and size M: the start and end measures (M particles), the outputs at the
    end on the data, and the risk series."""
    kmodel = cfg.keys()[1]
    sizes, q = cfg.sizes(), cfg.state_dim
    m_max, plan = max(sizes), cfg.plan()
    ts = np.linspace(0.0, cfg.t1, plan.saves)
    initials, finals, outputs, frames = {}, {}, {}, []
    with context.task("flows", total=cfg.seeds * len(sizes)) as advance:
        for seed in range(cfg.seeds):
            key = jax.random.fold_in(kmodel, seed)
            full = gf.models.MeanFieldResNet(
                cfg.in_dim, q, cfg.layers, m_max, cfg.out_dim, key=key, init_scale=cfg.init_scale
            )
            for m in sizes:
                # nested draws: the M-particle measure is the first M particles of every layer
                positions = (full.u[:, :m], full.w[:, :m], full.b[:, :m])
                base = gf.models.MeanFieldResNet(
                    cfg.in_dim, q, cfg.layers, m, cfg.out_dim, positions=positions
                )
                model = base.replicate(m_max // m)
                traj = solve(cfg, model, data, ts, plan, context, f"seed{seed}-M{m}")
                end = traj.final.deduplicate(m_max // m)
                initials[(seed, m)], finals[(seed, m)] = base, end
                outputs[(seed, m)] = np.asarray(end(data.x))
                frames.append(
                    pd.DataFrame(
                        {
                            "seed": seed,
                            "particles": m,
                            "t": np.asarray(traj.ts),
                            "loss": np.asarray(traj.loss),
                        }
                    )
                )
                advance()
    return initials, finals, outputs, pd.concat(frames, ignore_index=True)


def rms(a, b) -> float:
    """(mean over rows of |a − b|²)^{1/2}, rows along the last-but-one axis."""
    return float(np.sqrt(np.mean(np.sum((np.asarray(a) - np.asarray(b)) ** 2, axis=-1))))


def pair(cfg, m, initials, finals, outputs) -> dict:
    """The distances between the M and 2M runs at t1 (and W_C at t = 0), mean over seeds."""
    wc_t, wc_0, out_d, coupled = [], [], [], []
    exact = 2 * m <= cfg.wc_max_particles
    for seed in range(cfg.seeds):
        a, b = finals[(seed, m)], finals[(seed, 2 * m)]
        if exact:
            wc_t.append(gf.diagnostics.conditional_wasserstein(a, b, method="exact"))
            a0, b0 = initials[(seed, m)], initials[(seed, 2 * m)]
            wc_0.append(gf.diagnostics.conditional_wasserstein(a0, b0, method="exact"))
        out_d.append(rms(outputs[(seed, m)], outputs[(seed, 2 * m)]))
        # the shared particles: the first M of each layer of the 2M run
        coupled.append(rms(a.particle_positions(), b.particle_positions()[:, :m]))
    return {
        "particles": m,
        "wc_final": float(np.mean(wc_t)) if exact else None,
        "wc_initial": float(np.mean(wc_0)) if exact else None,
        "wc_final_per_seed": wc_t if exact else None,
        "output_distance": float(np.mean(out_d)),
        "coupled_distance": float(np.mean(coupled)),
    }


def slope(pairs, key) -> float | None:
    """The log-log slope of `key` against M over the pairs where it was computed (None if fewer
    than two, or any value is not positive)."""
    xs = [p["particles"] for p in pairs if p[key] is not None]
    ys = [p[key] for p in pairs if p[key] is not None]
    if len(xs) < 2 or min(ys) <= 0:
        return None
    return float(gf.fits.loglog_slope(xs, ys).slope)


EXPLANATION = (
    "W_2 between two independent empirical measures of a smooth law in R^p shrinks "
    "like M^(-1/p) (p = particle dimension) for p > 4, so W_C between the M and 2M "
    "runs is dominated by the sampling of the initial measure, which the flow carries "
    "along; the flow itself converges at the Monte-Carlo rate M^(-1/2) (propagation "
    "of chaos), visible in the network outputs and in the synchronous coupling "
    "(distance between the trajectories of the shared particles)."
)


def summary_of(cfg, pairs, dims) -> dict:
    wc = [p["wc_final"] for p in pairs if p["wc_final"] is not None]
    return {
        "loss": cfg.loss,
        "geometry": GEOMETRY,
        "layers": cfg.layers,
        "t1": cfg.t1,
        "particle_dimension": dims,
        "seeds": cfg.seeds,
        "pairs": pairs,
        "wc_final_slope": slope(pairs, "wc_final"),
        "wc_initial_slope": slope(pairs, "wc_initial"),
        "output_distance_slope": slope(pairs, "output_distance"),
        "coupled_distance_slope": slope(pairs, "coupled_distance"),
        "wc_decreasing": bool(all(b < a for a, b in zip(wc[:-1], wc[1:], strict=True))),
        "theory": {
            "output_distance_slope": -0.5,
            "coupled_distance_slope": -0.5,
            "wc_slope_large_M": -1.0 / dims,
            "explanation": EXPLANATION,
        },
    }


@register(
    "mean-field-limit",
    "particle-count sweep: W_C between the M- and 2M-particle flows shrinks as M grows",
    MeanFieldLimitConfig,
)
def run(cfg: MeanFieldLimitConfig, context: RunContext) -> Result:
    data = cfg.dataset(cfg.keys()[0])
    checks.loss_data(cfg.loss, data)  # the generated targets (a file's: at validation)
    initials, finals, outputs, metrics = flows(cfg, data, context)
    pairs = [pair(cfg, m, initials, finals, outputs) for m in sorted(set(cfg.particles))]
    dims = 2 * cfg.state_dim + 1
    notes = (
        "Mean-field limit: the flow with M particles per layer against the one with 2M (the first "
        "M particles of each layer shared), at time t1. W_C(μ^M_t, μ^2M_t) decreases with M; the "
        "network outputs and the shared particles' trajectories converge at the Monte-Carlo rate "
        "1/√M; W_C itself is limited by the sampling of the initial measure in dimension "
        f"p = {dims} (rate M^(-1/p) for large M)."
    )
    return Result.with_figures(
        figures(Figures(t1=cfg.t1, dims=dims, pairs=tuple(pairs), metrics=metrics)),
        summary=summary_of(cfg, pairs, dims),
        metrics=metrics,
        notes=notes,
    )
