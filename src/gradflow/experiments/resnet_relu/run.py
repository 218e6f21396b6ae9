"""`resnet-relu`: the counter-example's networks of depth 2L flowed to their interpolating limit,
for ReLU (the layers split into dead odd ones and even ones at w*) and smooth activations; the
trained successive differences against the closed form w* + 1/(2L)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax.numpy as jnp
import numpy as np
import pandas as pd

import gradflow as gf
from gradflow.experiments import Result, checks, register
from gradflow.experiments import resnet_common as common

from .config import ReluConfig
from .figures import ReluFigures, relu_figures

if TYPE_CHECKING:  # the runner's context; `gradflow.runs` imports this package
    from gradflow.runs import RunContext

NOTES = (
    "Odd layers start at w = −1/(2L) < 0 with h > 0, so σ(w h) = 0 for ReLU: they are dead, "
    "their gradient is exactly zero and they never move; the L even layers all converge to "
    "w* with (1 + w*/(2L))^L = C (w* → 2 log C), so successive differences tend to "
    "w* + 1/(2L) = Ω(1) and the network does not approach a neural ODE. With GELU (C², the "
    "theory's assumption) every layer moves by nearly the same amount and the differences "
    "stay O(1/L). Flowed in the conditional-Wasserstein geometry (the limit is the same in "
    "either geometry; only the time scale differs)."
)


def _row(config, traj, activation, half) -> dict:
    """The trained weights' successive differences against the ReLU closed form."""
    w = np.asarray(traj.final.W).reshape(-1)
    diffs = np.abs(np.diff(w))
    w_star = gf.analytic.relu_fixed_point(half, config.C)
    predicted = gf.analytic.relu_successive_difference(half, config.C)
    return {
        "activation": activation,
        "half_depth": half,
        "depth": 2 * half,
        "max_diff": float(diffs.max()),
        "min_diff": float(diffs.min()),
        "predicted_relu_diff": predicted,
        "w_star": w_star,
        "max_rel_error_vs_prediction": float(np.max(np.abs(diffs / predicted - 1))),
        "final_risk": float(2 * traj.loss[-1]),
        "odd_layers_moved": float(np.max(np.abs(w[0::2] + 1 / (2 * half)))),
    }


def _flows(config, context):
    one_sample = lambda: gf.Dataset(jnp.array([[config.x]]), jnp.array([[config.C * config.x]]))
    data = common.user_data(config, in_dim=1, out_dim=1, default=one_sample)
    rows, finals = [], {}
    total = len(config.halves) * len(config.activations)
    with context.task("resnet-relu", total=total) as advance:
        for activation in config.activations:
            for half in config.halves:
                traj = gf.flow(
                    gf.models.relu_counter_example(half, activation),
                    data,
                    config.horizon,
                    geometry=common.GEOMETRY,
                    rtol=config.rtol,
                    atol=config.atol,
                    saveat=np.linspace(0, config.horizon, 41),
                    loss=config.loss,
                )
                rows.append(_row(config, traj, activation, half))
                finals[(activation, half)] = np.asarray(traj.final.W).reshape(-1)
                advance()
    return pd.DataFrame(rows), finals


def _summary(config, frame) -> dict:
    summary = {
        "loss": config.loss,
        "geometry": common.GEOMETRY,
        "C": config.C,
        "x": config.x,
        "horizon": config.horizon,
        "risk": checks.risk_text(
            config.loss, "ℓ = (f(x) − Cx)² = 2F", "ℓ = 2F, F the {loss} risk (gf.losses)"
        ),
    }
    for activation in config.activations:
        sub = frame[frame.activation == activation].sort_values("half_depth")
        summary[activation] = {
            "half_depths": sub.half_depth.tolist(),
            "max_diff": sub.max_diff.tolist(),
            "min_diff": sub.min_diff.tolist(),
            "final_risk": sub.final_risk.tolist(),
            "max_diff_slope": gf.fits.loglog_summary(sub.depth, sub.max_diff),
        }
    if "relu" in config.activations:
        sub = frame[frame.activation == "relu"].sort_values("half_depth")
        summary["relu"].update(
            {
                "w_star": sub.w_star.tolist(),
                "predicted_diff_w_star_plus_1_over_2L": sub.predicted_relu_diff.tolist(),
                "max_rel_error_vs_prediction": sub.max_rel_error_vs_prediction.tolist(),
                "odd_layers_max_displacement": sub.odd_layers_moved.tolist(),
                "w_star_limit_2_log_C": 2 * float(np.log(config.C)),
            }
        )
        summary["acceptance"] = {
            "relu_differences_within_5%_of_w*+1/(2L)_for_every_L": bool(
                (sub.max_rel_error_vs_prediction <= 0.05).all()
            )
        }
    return summary


@register(
    "resnet-relu",
    "The ReLU counter-example: trained successive differences stay Ω(1) (→ w* + 1/(2L)), not "
    "O(1/L) as with a smooth activation",
    ReluConfig,
)
def run_relu(config: ReluConfig, context: RunContext) -> Result:
    frame, finals = _flows(config, context)
    record = ReluFigures(frame, finals, tuple(config.activations), tuple(config.halves))
    return Result.with_figures(
        relu_figures(record), summary=_summary(config, frame), metrics=frame, notes=NOTES
    )
