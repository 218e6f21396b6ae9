"""`resnet-pl`: for each width m, the tied-init network flowed until ℓ < target or t_max; the PL
ratio along its path, and the PL constant valid for every target at init (the tangent kernel's
smallest eigenvalue), against the overparameterisation m/n."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import numpy as np
import pandas as pd

import gradflow as gf
from gradflow.experiments import Result, register
from gradflow.experiments import resnet_common as common

from .config import PLConfig
from .figures import PLFigures, pl_figures
from .separation import SEPARATION_NOTE, separation

if TYPE_CHECKING:  # the runner's context; `gradflow.runs` imports this package
    from gradflow.runs import RunContext

dg = gf.diagnostics


def _width_row(config, context, data, model, width):
    """The flow of the width-m network and its row: convergence, PL ratio, kernel at init."""
    label = f"  m={width}: flow"
    traj = common.flow_to_level(model, data, config, context, label, f"width-{width}")
    risk = 2 * np.asarray(traj.loss)
    pl = dg.pl_ratio(traj)
    kernel = dg.tangent_kernel_pl(
        model, data, common.GEOMETRY, loss=config.loss
    )  # the worst case at init
    t_hit = traj.info["stopped_at"]  # ℓ crossed the target (None: not within t_max)
    row = {
        "width": width,
        "m_over_n": width / data.n,
        "final_risk": float(risk[-1]),
        "final_time": float(traj.ts[-1]),
        "final_rate": common.tail_rate(traj),  # ℓ ≈ c e^{−rate·t}, last half of the run
        "reached_target": t_hit is not None,
        "time_to_target": t_hit,
        "pl_ratio_min": pl.min,
        "pl_ratio_min_time": pl.t_min,
        "pl_ratio_final": float(pl.ratio[-1]),
        "keeps_pl": bool(pl.min > config.pl_floor),
        "kernel_pl_bound_init": kernel.bound,
        "kernel_rank_init": kernel.rank,
        "kernel_size": kernel.size,
        "solver_steps": int(np.sum(traj.stats["num_steps"])),
    }
    context.log(
        f"resnet-pl m={width}: risk {risk[-1]:.3g} at t={float(traj.ts[-1]):.3g}"
        f", min PL ratio {pl.min:.3g}"
    )
    return row, traj


def _flows(config, context):
    key_data, key_model = jax.random.split(jax.random.PRNGKey(config.seed))
    data = common.user_data(
        config,
        max_dim=config.dim,
        default=lambda: gf.data.gaussian(key_data, config.n, config.dim, config.dim),
    )
    rows, trajs = [], {}
    with context.task("resnet-pl: widths", total=len(config.widths)) as advance:
        for width in sorted(config.widths):
            model = gf.models.ResNet(
                data.in_dim,
                config.dim,
                width,
                config.depth,
                data.out_dim,
                key=key_model,
                activation=config.activation,
                init="tied",
            )
            row, trajs[width] = _width_row(config, context, data, model, width)
            rows.append(row)
            advance()
    return pd.DataFrame(rows), trajs, data


@register(
    "resnet-pl",
    "Width m against n: the PL constant valid for every target at init (tangent kernel) is 0 "
    "for m < n and positive for m ≥ n; each width's flow to risk 1e-8 with its PL ratio "
    "(Marion et al. 2024, Prop. 5 / Thm. 6)",
    PLConfig,
)
def run_pl(config: PLConfig, context: RunContext) -> Result:
    frame, trajs, data = _flows(config, context)
    split = separation(frame, config.target_risk, config.pl_floor)
    good = frame[frame.reached_target & frame.keeps_pl]
    summary = {
        **common.risk_head(config.loss),
        "n": data.n,
        "depth": config.depth,
        "target_risk": config.target_risk,
        "t_max": config.t_max,
        "pl_floor": config.pl_floor,
        "per_width": {col: frame[col].tolist() for col in frame.columns},
        "separation": split,
        "separation_note": SEPARATION_NOTE,
        "acceptance": {
            "some_width_reaches_target_with_pl_bounded_away_from_zero": bool(len(good)),
        },
    }
    record = PLFigures(
        frame, trajs, data.n, config.target_risk, config.t_max, config.pl_floor,
        split["statement"],
    )  # fmt: skip
    notes = (
        f"Each width is flowed (adaptive '{config.solver}', conditional-Wasserstein geometry) "
        "from the tied init until ℓ < target or t_max. Prop. 5/Thm. 6: with m ≳ n (and "
        "L ≳ √(nq)) a local PL inequality |∇ℓ|² ≥ μ ℓ holds along the flow and the risk decays "
        "exponentially to 0; the PL ratio reported is |∇F|_G²/F (μ = 2× this for ℓ). "
        + common.UNITS
    )
    return Result.with_figures(pl_figures(record), summary=summary, metrics=frame, notes=notes)
