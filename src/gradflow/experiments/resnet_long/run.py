"""`resnet-long`: one network flowed (RKC by default) from its init until the paper's risk
ℓ = 2F crosses the target; the exponential tail, the PL ratio along the path, the smoothness of
the weights in depth at all times, and the time expressed as the paper's GD steps."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

import gradflow as gf
from gradflow.experiments import Result, register
from gradflow.experiments import resnet_common as common

from .config import LongConfig
from .figures import LongFigures, long_figures
from .problem import long_problem

if TYPE_CHECKING:  # the runner's context; `gradflow.runs` imports this package
    from gradflow.runs import RunContext

dg = gf.diagnostics

NOTES = (
    "The flow (conditional-Wasserstein geometry) rather than GD: the theory is about the "
    "flow. The exponential tail is stiff: near the minimum L·∇²F has eigenvalues up to ρ ≈ 8 "
    "while the risk decays at rate ~1e-3, so an explicit fifth-order method (Tsit5) is "
    "pinned at its stability limit h ≈ 3.5/ρ ≈ 0.4 (≈120k gradient evaluations to ℓ = 1e-7). "
    "The default solver is Runge–Kutta–Chebyshev ('rkc', second order, stable on [−0.65 s², "
    "0] with s stages; a gradient flow's Jacobian has a real spectrum), whose steps grow with "
    "the accuracy the tail allows: ~11k evaluations. The paper's GD step is 2·lr/L = 0.01 "
    "time units (see benchmarks/resnet.py). Theory (Thm. 6): "
    "with m ≳ n and L ≳ √(nq) a local PL inequality holds, the risk decays exponentially and "
    "the weights stay a discretisation of a smooth function of depth for all times. " + common.UNITS
)


def _summary(config, traj, data, wall) -> dict:
    risk, t = 2 * np.asarray(traj.loss), np.asarray(traj.ts)
    t_hit = traj.info["stopped_at"]  # the time ℓ crossed the target (None: not within t_max)
    pl = dg.pl_ratio(traj)
    smooth = dg.depth_smoothness(traj)
    gd_steps = lambda time_: gf.analytic.resnet_gd_steps(time_, config.paper_lr, config.depth)
    return {
        **common.risk_head(config.loss),
        "target_risk": config.target_risk,
        "reached_target": t_hit is not None,
        "time_to_target": t_hit,
        "final_time": float(t[-1]),
        "final_risk": float(risk[-1]),
        "initial_risk": float(risk[0]),
        "exponential_rate_tail": common.tail_rate(traj),
        "pl_ratio_min": pl.min,
        "pl_ratio_min_time": pl.t_min,
        "pl_ratio_final": float(pl.ratio[-1]) if np.isfinite(pl.ratio[-1]) else None,
        "pl_ratio_note": "|∇F|_G²/F with the conditional-Wasserstein metric; the paper's μ (for "
        "ℓ) is twice this",
        "smoothness_max_over_t": smooth.max_diff,
        "smoothness_max_over_t_scaled_by_L": smooth.scaled,
        "ode_gap_final": dg.ode_gap(traj.final, data.x),
        "solver": config.solver,
        "solver_steps": int(np.sum(traj.stats["num_steps"])),
        "function_evaluations": int(np.sum(traj.stats["function_evaluations"])),
        "function_evaluations_exact": bool(traj.stats["function_evaluations_exact"]),
        "paper_gd_steps_equivalent_to_time_to_target": gd_steps(t_hit) if t_hit else None,
        "paper_gd_steps_equivalent_to_final_time": gd_steps(float(t[-1])),
        "flow_wall_time_s": wall,
    }


@register(
    "resnet-long",
    "A deep ResNet (L = 64, m = 64, n = 50) flowed to risk 1e-7: exponential convergence, PL "
    "ratio, weights smooth in depth at all times (Marion et al. 2024, Fig. 2)",
    LongConfig,
)
def run_long(config: LongConfig, context: RunContext) -> Result:
    model, data = long_problem(config)
    start = time.perf_counter()
    traj = common.flow_to_level(model, data, config, context, "resnet-long: flow", "flow")
    summary = _summary(config, traj, data, time.perf_counter() - start)
    record = LongFigures(
        traj=traj,
        pl=dg.pl_ratio(traj),
        rate=summary["exponential_rate_tail"],
        target_risk=config.target_risk,
        title=f"L = {config.depth}, m = {config.width}, n = {data.n}, "
        + (f"{config.init_scheme} init" if config.init is None else "init from file"),
    )
    return Result.with_figures(long_figures(record), summary=summary, trajectory=traj, notes=NOTES)
