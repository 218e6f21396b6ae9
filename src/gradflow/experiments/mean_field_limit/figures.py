"""The figures of `mean-field-limit`, drawn from a `Figures` record."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

import gradflow as gf
from gradflow.plotting import figures_of, label_axes, panel, pyplot


@dataclasses.dataclass(frozen=True)
class Figures:
    """The comparison time t1, the particle dimension p, the (M, 2M) pairs' distances and the
    risk series (seed, particles, t, loss)."""

    t1: float
    dims: int
    pairs: tuple[dict, ...]
    metrics: pd.DataFrame


def distances(rec: Figures):
    fig, ax = panel(6.8, 4.6)
    for key, label, mk in (
        ("wc_final", f"W_C(μ^M, μ^2M) at t={rec.t1:g}", "o-"),
        ("wc_initial", "W_C at t=0 (sampling)", "s--"),
        ("output_distance", "|f^M − f^2M| on the data", "^-"),
        ("coupled_distance", "shared particles' distance", "v-"),
    ):
        pts = [(p["particles"], p[key]) for p in rec.pairs if p[key] is not None]
        if len(pts) < 2:
            continue
        x, y = (np.array(v, float) for v in zip(*pts, strict=True))
        if np.all(y > 0):
            fit = gf.fits.loglog_slope(x, y).slope
            ax.loglog(x, y, mk, label=f"{label} (slope {fit:.2f})")
    x = np.array([p["particles"] for p in rec.pairs], float)
    ref = rec.pairs[0]["output_distance"] * (x / x[0]) ** -0.5
    ax.loglog(x, ref, "k:", lw=1, label="M^(-1/2)")
    label_axes(ax, "particles per layer M", "distance between the M and 2M runs", legend=7)
    caption = (
        "Distances between the flows with M and 2M particles per layer at the final time "
        "(mean over seeds): conditional Wasserstein W_C (and at t = 0), output distance and "
        "synchronous-coupling distance, with slopes; W_C is limited by sampling in dimension "
        f"{rec.dims}."
    )
    return "mean_field_limit", fig, caption


def risks(rec: Figures):
    fig, ax = panel(6.5, 4.2)
    cmap = pyplot().get_cmap("viridis")
    frame = rec.metrics
    sizes = sorted(frame.particles.unique())
    for i, m in enumerate(sizes):
        g = frame[(frame.seed == 0) & (frame.particles == m)]
        ax.semilogy(g.t, g.loss, color=cmap(i / max(len(sizes) - 1, 1)), label=f"M={m}")
    label_axes(ax, "flow time t", "risk", legend=7, grid="major")
    caption = (
        "Risk along the flow for each particle count (seed 0): the curves converge as M grows."
    )
    return "risk_by_particles", fig, caption


def figures(rec: Figures) -> tuple[dict, dict]:
    """({stem: figure}, {stem: caption}) for the run."""
    return figures_of(rec, (distances, risks))
