"""The figures of `resnet-pl`: risk and PL ratio along each width's flow, and the width sweep."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

import gradflow as gf
from gradflow.plotting import figures_of, label_axes, subplots, time_cmap


@dataclasses.dataclass(frozen=True)
class PLFigures:
    """The per-width `frame`, the trajectories {m: Trajectory}, n, the target risk, t_max, the
    PL floor and the separation's sentence (appended to the sweep's caption)."""

    frame: Any
    trajs: dict
    n: int
    target_risk: float
    t_max: float
    pl_floor: float
    statement: str


def pl_figures(r: PLFigures) -> tuple[dict, dict]:
    """({stem: figure}, {stem: caption}) in the report's order."""
    return figures_of(r, (_risk_and_pl, _width_sweep))


def _risk_and_pl(r: PLFigures):
    fig, axes = subplots(2)
    cmap = time_cmap()
    widths = sorted(r.trajs)
    for i, width in enumerate(widths):
        traj = r.trajs[width]
        color = cmap(i / max(1, len(widths) - 1))
        t = np.asarray(traj.ts)
        axes[0, 0].loglog(
            t[1:],
            2 * np.asarray(traj.loss)[1:],
            color=color,
            label=f"m = {width} (m/n = {width / r.n:.2g})",
        )
        axes[0, 1].loglog(t[1:], gf.diagnostics.pl_ratio(traj).ratio[1:], color=color)
    axes[0, 0].axhline(r.target_risk, color="k", ls=":", lw=1)
    axes[0, 0].set_ylabel("risk ℓ")
    axes[0, 1].set_ylabel(r"PL ratio $|\nabla F|_G^2/F$")
    for ax in axes[0]:
        label_axes(ax, "time t", legend=None)
    axes[0, 0].legend(fontsize=7)
    caption = (
        "Risk (left) and PL ratio |∇F|_G²/F (right) along the flow for each width (dotted: the "
        "target). A PL ratio bounded below by μ means ℓ ≤ ℓ(0) e^{−μt}."
    )
    return "risk_and_pl", fig, caption


def _width_sweep(r: PLFigures):
    from matplotlib.ticker import NullFormatter

    frame = r.frame
    fig, axes = subplots(2)
    # Runs stop where ℓ crosses the target, so the time to get there is what differs by width;
    # runs that did not get there are marked at t_max with their final risk.
    hit, miss = frame[frame.reached_target], frame[~frame.reached_target]
    axes[0, 0].loglog(hit.m_over_n, hit.time_to_target, "o-", label=f"ℓ = {r.target_risk:g}")
    axes[0, 0].loglog(
        miss.m_over_n, [r.t_max] * len(miss), "x", color="tab:red", ms=9, label="not by t_max"
    )
    for row in miss.itertuples():
        axes[0, 0].annotate(
            f"ℓ = {row.final_risk:.2g}", (row.m_over_n, r.t_max), fontsize=7, va="bottom"
        )
    axes[0, 0].set_ylabel("time to reach the target risk")
    axes[0, 1].loglog(frame.m_over_n, frame.pl_ratio_min, "o-", color="tab:green")
    positive = frame[frame.kernel_pl_bound_init > 0]
    axes[0, 1].loglog(
        positive.m_over_n,
        positive.kernel_pl_bound_init,
        "s--",
        color="tab:purple",
        label=r"worst case at init $(2/n)\lambda_{min}(K_G)$",
    )
    axes[0, 1].axhline(r.pl_floor, color="k", ls=":", lw=1, label="pl_floor")
    axes[0, 1].set_ylabel("PL ratio: minimum along the path")
    for ax in axes[0]:
        ax.axvline(1.0, color="tab:red", ls="--", lw=1, label="m = n")
        ax.set_xticks(list(frame.m_over_n), [f"{v:.3g}" for v in frame.m_over_n], fontsize=7)
        ax.xaxis.set_minor_formatter(NullFormatter())
        label_axes(ax, "m / n")
    caption = (
        "Time to reach the target risk (×: not reached by t_max, with the final risk) and minimum "
        "PL ratio along the path against the overparameterisation m/n "
        "(dashed: m = n); squares: the PL constant valid for every target at the tied init, "
        "(2/n) λ_min of the tangent kernel, shown where it is positive (it is 0 for m < n). "
        + r.statement
    )
    return "width_sweep", fig, caption
