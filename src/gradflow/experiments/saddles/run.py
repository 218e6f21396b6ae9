"""The `saddles` experiment's run (docs/critical-points.md, "Beyond the Hessian")."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.flatten_util import ravel_pytree

import gradflow as gf
from gradflow.experiments import Result, register

from .config import SaddlesConfig
from .figures import make_figures

if TYPE_CHECKING:  # the runner's context is loaded lazily by gradflow.experiments
    from gradflow.experiments import RunContext


def _moved(point, direction, eps):
    flat, unravel = ravel_pytree(point)
    return unravel(flat + eps * jnp.asarray(direction))


def _deep_linear(cfg, data, context):
    """Critical points of each depth, escape flows against the closed form, negative starts."""
    u, s, v, _ = gf.analytic.teacher_modes(data)
    points, escapes, negatives, probes = [], [], [], []
    for depth in cfg.depths:
        widths = [cfg.dim] * (depth + 1)
        records = gf.diagnostics.critical_points(data, widths)
        for p in records:
            points.append(
                dict(
                    depth=depth,
                    modes=list(p.modes),
                    kind=p.kind,
                    value=p.value,
                    critical_value=p.critical_value,
                    lambda_min=p.lambda_min,
                    n_negative=p.n_negative,
                    n_zero=p.n_zero,
                    escape_order=p.escape_order,
                    escape_mode=p.escape_mode,
                    orbit_dimension=p.orbit_dimension,
                    unexplained_null_dimension=p.unexplained_null_dimension,
                )
            )
        # escape flows along the balanced direction: every saddle for H = 2 (escape times of a few
        # 1/s); for H ≥ 3 the non-strict ones only: at a strict saddle the balanced path (order H,
        # times ∝ ε^−(H−2)) is unstable to the order-2 direction, which roundoff excites first
        saddles = [
            p
            for p in records
            if p.escape_mode is not None and (depth == 2 or p.kind == "nonstrict_saddle")
        ]
        with context.task(f"escape flows, H = {depth}", total=len(saddles) * len(cfg.eps)) as step:
            for p in saddles:
                for eps in cfg.eps:
                    predicted = float(p.balanced_escape_time(eps))
                    traj = gf.flow(
                        _moved(p.model, p.balanced_direction, eps),
                        data,
                        3 * predicted,
                        rtol=cfg.rtol,
                        atol=cfg.atol,
                        stop_below=p.escape_level(),
                        saveat=[0.0, 3 * predicted],
                    )
                    measured = traj.info.get("stopped_at")
                    measured = float("nan") if measured is None else float(measured)
                    escapes.append(
                        dict(
                            depth=depth,
                            modes=str(list(p.modes)),
                            kind=p.kind,
                            eps=eps,
                            predicted=predicted,
                            measured=measured,
                            relative_error=abs(measured - predicted) / predicted,
                        )
                    )
                    step()
        if depth < 3:
            continue
        # balanced starts whose product is negative on the next mode: flip the first layer's part
        for p in saddles:
            d = np.array(p.balanced_direction)
            d[: cfg.dim * cfg.dim] *= -1.0  # still balanced (signs cancel in C_k)
            start = _moved(p.model, d, cfg.negative_eps)
            horizon = 10 * float(p.balanced_escape_time(cfg.negative_eps))
            ts = np.linspace(0.0, horizon, 101)
            traj = gf.flow(start, data, horizon, rtol=cfg.rtol, atol=cfg.atol, saveat=ts)
            m = p.escape_mode
            path = jax.vmap(lambda x, m=m: u[:, m] @ x.product() @ v[:, m])(traj.models)
            negatives.append(
                dict(
                    depth=depth,
                    modes=str(list(p.modes)),
                    u0=float(path[0]),
                    u_end=float(path[-1]),
                    horizon=horizon,
                    min_loss_drop=float(p.critical_value - np.min(np.asarray(traj.loss))),
                    escaped=bool(np.min(np.asarray(traj.loss)) < p.escape_level()),
                    ts=ts.tolist(),
                    strength=np.asarray(path).tolist(),
                )
            )
        # the flow probe at the origin (H ≥ 3): an estimate of the escape order, against H
        origin = records[0]
        d = np.random.default_rng(cfg.seed).standard_normal(origin.model.parameter_count())
        est = gf.diagnostics.escape_probe(
            origin.model, data, [d / np.linalg.norm(d)], eps=cfg.probe_eps, t1=1e6
        )
        probes.append(
            dict(
                depth=depth, fitted_order=est.fitted_order, fit=est.fit, times=est.times[0].tolist()
            )
        )
    return points, escapes, negatives, probes


def _polish_mean_field(cfg, context):
    data = gf.data.teacher(jax.random.PRNGKey(cfg.seed), 2, 1, cfg.mf_n, kind="two_layer")
    model = gf.models.MeanFieldResNet(
        2,
        4,
        cfg.mf_layers,
        cfg.mf_particles,
        1,
        key=jax.random.PRNGKey(cfg.seed + 1),
        activation="tanh",
    )
    kw = dict(geometry="conditional_wasserstein", l2=cfg.l2)
    with context.task("mean-field flow and polish", total=None):
        short = gf.flow(
            model, data, cfg.mf_t1, rtol=1e-9, atol=1e-12, saveat=[0.0, cfg.mf_t1], **kw
        )
        g0 = float(short.grad_norm[0])
        res = gf.critical_point(short.final, data, gtol=1e-13 * g0, **kw)
        long = gf.flow(
            model, data, 15 * cfg.mf_t1, rtol=1e-12, atol=1e-15, saveat=[0.0, 15 * cfg.mf_t1], **kw
        )
    gap = float(
        np.max(np.abs(np.asarray(ravel_pytree(long.final)[0] - ravel_pytree(res.model)[0])))
    )
    return res, g0, gap, float(long.grad_norm[-1])


def _polish_resnet(cfg, context):
    data = gf.data.gaussian(jax.random.PRNGKey(cfg.seed), cfg.rn_n, 2, 2)
    model = gf.models.ResNet(
        2, 2, cfg.rn_width, cfg.rn_depth, 2, key=jax.random.PRNGKey(cfg.seed + 1)
    )
    with context.task("ResNet flow and polish", total=None):
        traj = gf.flow(model, data, 1e5, stop_below=cfg.rn_risk, saveat=[0.0, 1e5])
        res = gf.critical_point(traj.final, data)
    return res, float(traj.loss[-1])


# the line `gradflow list` shows
ABOUT = "deep-linear saddles beyond the Hessian (escape orders, times, orbits); critical points polished"


@register("saddles", ABOUT, SaddlesConfig)
def run(config: SaddlesConfig, context: RunContext) -> Result:
    cfg = config
    data = gf.data.linear_teacher(
        jax.random.PRNGKey(cfg.seed), cfg.dim, cfg.dim, cfg.n, list(cfg.singular_values)
    )
    points, escapes, negatives, probes = _deep_linear(cfg, data, context)
    mf, g0, gap, long_grad = _polish_mean_field(cfg, context)
    rn, rn_start = _polish_resnet(cfg, context)
    esc = pd.DataFrame(escapes)
    orders_ok = all(
        (p["escape_order"] == 2) == (p["kind"] == "strict_saddle")
        and (p["kind"] != "nonstrict_saddle" or p["escape_order"] == p["depth"])
        for p in points
    )
    summary = {
        "risk": "F = (1/2n) sum |f(x_i) - y_i|^2 (half_mse) for the deep linear nets and the ResNet",
        "critical_points": points,
        "escape_orders_as_predicted": bool(orders_ok),
        "escape_time_max_relative_error": float(esc["relative_error"].max()),
        "negative_starts": [
            {k: v for k, v in n.items() if k not in ("ts", "strength")} for n in negatives
        ],
        "negative_starts_escaped": any(n["escaped"] for n in negatives),
        "origin_probes": probes,
        "mean_field": {
            "kind": mf.kind,
            "certificate": mf.certificate,
            "iterations": mf.iterations,
            "grad_norm_flow_start": g0,
            "grad_norm_before": mf.grad_norm_start,
            "grad_norm_after": mf.grad_norm,
            "relative_to_flow_start": mf.grad_norm / g0,
            "lambda_min": mf.lambda_min,
            "gap_to_long_flow": gap,
            "long_flow_grad_norm": long_grad,
        },
        "resnet": {
            "risk_before": rn_start,
            "risk_after": rn.value,
            "kind": rn.kind,
            "certificate": rn.certificate,
            "iterations": rn.iterations,
            "grad_norm_after": rn.grad_norm,
            "unexplained_null_dimension": rn.unexplained_null_dimension,
            "parameters": rn.model.parameter_count(),
        },
    }
    notes = (
        "Deep linear networks (whitened teacher, s = "
        + ", ".join(f"{x:g}" for x in cfg.singular_values)
        + "): every critical point J with its Hessian facts, escape order (2 at strict saddles, H "
        "at non-strict ones), orbit dimension and the null directions the orbit does not explain. "
        "Escape times from ε along the balanced direction are measured by flowing (stopped where "
        "the next mode reaches s/2) against the closed form; balanced starts negative on the next "
        "mode do not escape for H ≥ 3. gf.critical_point polishes a regularised mean-field flow's "
        "end (an isolated minimum, quadratic convergence) and a ResNet flow stopped at risk "
        f"{cfg.rn_risk:g} (a zero-risk manifold: a degenerate minimum certified by F = 0)."
    )
    return Result.with_figures(
        make_figures(esc, negatives, mf, rn, points), summary=summary, metrics=esc, notes=notes
    )
