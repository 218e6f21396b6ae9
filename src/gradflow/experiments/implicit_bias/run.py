"""Experiment `implicit-bias`: the direction of logistic regression's gradient flow on separable
data against the max-margin separator (Soudry et al. 2018; docs/implicit-bias.md).

Data: x_i ~ N(0, I_d) and labels y_i = sign(w*ᵀx_i) of a random teacher w* (generic separable
data through the origin). Model: the linear score f(x) = wᵀx as `gf.models.Wrapped` of a pure
function, from w = 0. Risk: F(w) = (1/n) Σ log(1 + e^{−y_i wᵀx_i}) (`loss="logistic"`), which has
no minimiser. The flow w' = −∇F(w) is integrated in s = log(1 + t) (`clock="log"`) to t1 = 1e40.

Theory: w(t) = ŵ log t + ρ(t) with ρ bounded, ŵ the max-margin separator (`gf.analytic.max_margin`,
certified by its KKT conditions). Hence the angle between w(t) and ŵ decays like a/(log t + b)
(fitted by `gf.fits.inverse_log_fit` over t ≥ fit_from, where it must also decrease
monotonically), |w(t)|/log t → |ŵ|, and F(w(t)) ~ 1/t. The diagnostics that assume an attained
minimum (PL ratio, Łojasiewicz fit, critical points) refuse this loss; gradient descent with a
fixed step, like the flow, runs without any divergence alarm while |w| grows like log t.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import gradflow as gf
from gradflow.experiments import Result, register

from .config import ImplicitBiasConfig
from .figures import figures

if TYPE_CHECKING:  # the runner imports the experiments: a run-time import would be a cycle
    from gradflow.experiments import RunContext


def score(params, x):
    """f(x) = wᵀx for one sample x (d,), as a (1,) output."""
    return jnp.reshape(params["w"] @ x, (1,))


def separable_data(seed: int, n: int, dim: int) -> gf.Dataset:
    """x ~ N(0, I_d), y = sign(w*ᵀx) with w* ~ N(0, I_d) (labels ±1, one column)."""
    kx, kw = jax.random.split(jax.random.PRNGKey(seed))
    x = jax.random.normal(kx, (n, dim))
    teacher = jax.random.normal(kw, (dim,))
    y = jnp.where(x @ teacher >= 0, 1.0, -1.0)[:, None]
    return gf.Dataset(x, y)


def angle(u, v) -> np.ndarray:
    """The angle between the rows of u and the vector v, as 2 arcsin(|û − v̂|/2) (accurate for
    small angles, unlike arccos of the cosine)."""
    u = np.asarray(u) / np.linalg.norm(u, axis=-1, keepdims=True)
    v = np.asarray(v) / np.linalg.norm(v)
    return 2.0 * np.arcsin(np.minimum(np.linalg.norm(u - v, axis=-1) / 2.0, 1.0))


def refusals(traj, data, dim: int) -> dict:
    """The message each minimum-assuming diagnostic refuses the logistic loss with."""
    checks = {
        "pl_ratio": lambda: gf.diagnostics.pl_ratio(traj),
        "lojasiewicz_fit": lambda: gf.diagnostics.lojasiewicz_fit(traj),
        "critical_points": lambda: gf.diagnostics.critical_points(data, [dim, 1], loss="logistic"),
    }
    out = {}
    for name, call in checks.items():
        try:
            call()
        except gf.ConfigError as err:
            out[name] = str(err)
        else:
            out[name] = None  # not refused: the summary's check fails
    return out


# the line `gradflow list` shows
ABOUT = "logistic regression on separable data: the flow's direction → the max-margin one, ~1/log t"


@register("implicit-bias", ABOUT, ImplicitBiasConfig)
def run(config: ImplicitBiasConfig, context: RunContext) -> Result:
    cfg = config
    data = separable_data(cfg.seed, cfg.n, cfg.dim)
    x, y = np.asarray(data.x), np.asarray(data.y)[:, 0]
    mm = gf.analytic.max_margin(x, y)
    context.log(f"max-margin: margin {mm.margin:.4g}, support {list(mm.support)} (KKT certified)")
    model = gf.models.Wrapped(score, params={"w": jnp.zeros(cfg.dim)}, in_dim=cfg.dim, out_dim=1)
    ts = np.concatenate([[0.0], np.geomspace(1e-2, cfg.t1, cfg.saves)])
    with context.task("flow", total=2) as advance:
        traj = gf.flow(
            model,
            data,
            cfg.t1,
            loss="logistic",
            clock="log",
            saveat=ts,
            rtol=cfg.rtol,
            atol=cfg.atol,
            max_steps=cfg.max_steps,
        )
        advance()
        # fixed-step GD: |w| grows like log k, the loss like 1/k, and nothing raises
        gd = gf.descent(model, data, cfg.descent_steps, 1.0, loss="logistic")
        advance()
    t = np.asarray(traj.ts)[1:]
    w = np.asarray(traj.params.params["w"])[1:]
    loss = np.asarray(traj.loss)[1:]
    theta = angle(w, mm.w)
    window = t >= cfg.fit_from
    fit = gf.fits.inverse_log_fit(t[window], theta[window])
    monotone = bool(np.all(np.diff(theta[window]) < 0))
    norm = np.linalg.norm(w, axis=-1)
    w_gd = np.asarray(gd.final.params["w"])
    summary = {
        "loss": "logistic: (1/n) sum log(1 + exp(-y_i w.x_i)) (no minimiser on separable data)",
        "clock": "log (the solver steps in s = log(1 + t))",
        "n": cfg.n,
        "dim": cfg.dim,
        "t1": cfg.t1,
        "max_margin": {
            "margin": mm.margin,
            "support": list(mm.support),
            "norm": float(np.linalg.norm(mm.w)),
            "kkt": {
                k: getattr(mm, k)
                for k in ("stationarity", "feasibility", "slackness", "duality_gap", "min_alpha")
            },
        },
        "a": fit.a,
        "b": fit.b,
        "fit_from": cfg.fit_from,
        "fit_points": fit.n,
        "fit_max_relative_residual": fit.max_relative_residual,
        "final_angle": float(theta[-1]),
        "angle_decreasing_over_fit_window": monotone,
        "norm_over_log_t_final": float(norm[-1] / np.log(t[-1])),
        "loss_times_t_final": float(loss[-1] * t[-1]),
        "flow_steps": int(np.asarray(traj.stats["num_steps"])),
        "flow_result": str(traj.result),
        "descent": {
            "steps": cfg.descent_steps,
            "lr": 1.0,
            "result": gd.info["result"],
            "final_loss": float(np.asarray(gd.loss)[-1]),
            "final_norm": float(np.linalg.norm(w_gd)),
            "final_angle": float(angle(w_gd[None], mm.w)[0]),
        },
        "refusals": refusals(traj, data, cfg.dim),
    }
    metrics = pd.DataFrame(
        {"t": t, "loss": loss, "norm": norm, "angle": theta, "fit_window": window}
    )
    notes = (
        f"The angle to the max-margin direction falls to {theta[-1]:.3g} rad at t = {t[-1]:.3g} "
        f"and follows a/(log t + b) with a = {fit.a:.3g}, b = {fit.b:.3g} for t ≥ {cfg.fit_from:g} "
        f"(max relative residual {fit.max_relative_residual:.2g}); |w(t)|/log t → |ŵ| = "
        f"{np.linalg.norm(mm.w):.4g} (now {summary['norm_over_log_t_final']:.4g})."
    )
    return Result.with_figures(
        figures(t, theta, norm, loss, fit, cfg.fit_from, mm),
        summary=summary,
        metrics=metrics,
        trajectory=traj,
        notes=notes,
    )
