"""The figures of `resnet-long`: the risk and the PL ratio along the flow, and the weights against
the layer at a sequence of times."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from gradflow.plotting import figures_of, label_axes, subplots, time_cmap


@dataclasses.dataclass(frozen=True)
class LongFigures:
    """The flow's trajectory, its PL ratio record, the fitted tail rate (or None), the target
    risk and the risk panel's title."""

    traj: Any
    pl: Any
    rate: float | None
    target_risk: float
    title: str


def long_figures(r: LongFigures) -> tuple[dict, dict]:
    """({stem: figure}, {stem: caption}) in the report's order."""
    return figures_of(r, (_risk, _weights_in_depth))


def _risk(r: LongFigures):
    t, risk = np.asarray(r.traj.ts), 2 * np.asarray(r.traj.loss)
    fig, axes = subplots(2)
    ax = axes[0, 0]
    ax.semilogy(t, risk, "-", color="tab:blue", label="risk ℓ = 2F")
    ax.axhline(r.target_risk, color="k", ls=":", lw=1, label=f"target {r.target_risk:g}")
    if r.rate is not None:
        tail = t >= t[-1] / 2
        c = np.polyfit(t[tail], np.log(risk[tail]), 1)
        ax.semilogy(
            t[tail],
            np.exp(np.polyval(c, t[tail])),
            "--",
            color="tab:orange",
            label=f"fit e^(−{r.rate:.3g} t)",
        )
    label_axes(ax, "time t", "risk")
    ax.set_title(r.title, fontsize=10)
    ax = axes[0, 1]
    ax.semilogx(t[1:], r.pl.ratio[1:], color="tab:green")
    ax.axhline(r.pl.min, color="k", ls=":", lw=1, label=f"min {r.pl.min:.3g}")
    label_axes(ax, "time t", r"PL ratio $|\nabla F|_G^2 / F$")
    caption = (
        "Left: the risk along the flow (semilog): exponential decay after a transient. Right: the "
        "PL ratio |∇F|²/F in the flow's metric, bounded away from zero along the trajectory."
    )
    return "risk", fig, caption


def _weights_in_depth(r: LongFigures):
    t = np.asarray(r.traj.ts)
    weights = r.traj.models.layer_weights()
    depth = weights["V"].shape[1]
    s = np.arange(1, depth + 1) / depth
    idx = np.unique(np.linspace(0, len(r.traj) - 1, 8).round().astype(int))
    cmap = time_cmap()
    fig, axes = subplots(2, 2, height=3.4)
    entries = ((0, 0), (2, 5), (7, 3), (11, 1))
    for p, (a, b) in enumerate(entries):
        ax = axes[p // 2, p % 2]
        leaf, (i, j) = ("V", (a, b)) if p < 2 else ("W", (b, a))
        # entries of small networks (a user's data of few dimensions) wrap around
        i, j = i % weights[leaf].shape[2], j % weights[leaf].shape[3]
        for c, k in enumerate(idx):
            series = weights[leaf][k, :, i, j]
            if leaf == "W":
                series = series - weights["W"][0, :, i, j]
            ax.plot(
                s,
                series,
                color=cmap(c / max(1, len(idx) - 1)),
                lw=1.2,
                label=f"t = {t[k]:.3g}" if p == 0 else None,
            )
        ax.set_title(
            f"{leaf}[{i},{j}]" + (" − W(0)" if leaf == "W" else "") + " against k/L", fontsize=10
        )
        if p // 2 == 1:  # bottom row only: a top-row label would run into the titles below
            ax.set_xlabel("layer s = k/L")
    axes[0, 0].legend(fontsize=7)
    caption = (
        "Four weight entries against the layer index at a sequence of times (lighter = later): "
        "smooth functions of depth at all times, converging as the risk vanishes."
    )
    return "weights_in_depth", fig, caption
