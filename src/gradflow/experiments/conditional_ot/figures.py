"""The figures of `conditional-ot`, drawn from a `Figures` record."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd

from gradflow.plotting import figures_of, label_axes, panel, pyplot

STYLES = ["-", "--", ":", "-."]


@dataclasses.dataclass(frozen=True)
class Figures:
    """What the figures show: the threshold and horizon, every run's numbers, the series
    (particles, init_scale, t, loss, grad_norm, pl_ratio), and the particles θ = (u, w, b) at the
    start and end of the run `picked` = (M, s), as (L, M, p) arrays."""

    threshold: float
    t1: float
    runs: tuple[dict, ...]
    metrics: pd.DataFrame
    start: np.ndarray
    end: np.ndarray
    picked: tuple[int, float]


CURVES = (
    (
        "loss",
        "risk_curves",
        "risk F(t)",
        "Risk along the conditional-OT flow, one curve per (particles per layer M, init scale s); "
        "the dotted line is the {threshold:g} target.",
    ),
    (
        "pl_ratio",
        "pl_ratio",
        "PL ratio |∇F|²/F",
        "PL ratio |∇F|²_G/F along each flow (shown while F > 1e-14, above round-off): bounded "
        "below for the runs that converge, collapsing towards 0 where a run stalls on a plateau.",
    ),
)


def curve(spec: tuple[str, str, str, str], rec: Figures):
    """One of `CURVES` (column, stem, y label, caption) against t, one line per (M, s)."""
    col, stem, ylabel, cap = spec
    ms = sorted({r["particles"] for r in rec.runs})
    scales = sorted({r["init_scale"] for r in rec.runs})
    cmap = pyplot().get_cmap("viridis")
    colour = {m: cmap(i / max(len(ms) - 1, 1)) for i, m in enumerate(ms)}
    fig, ax = panel(7.5, 4.5)
    for (m, s), g in rec.metrics.groupby(["particles", "init_scale"]):
        g = g[(g.t > 0) & (g[col] > 0) & ((g.loss > 1e-14) if col == "pl_ratio" else True)]
        style = STYLES[scales.index(s) % 4]
        ax.loglog(g.t, g[col], style, color=colour[m], lw=1.3, label=f"M={m}, s={s:g}")
    if col == "loss":
        ax.axhline(rec.threshold, color="k", ls=":", lw=0.8)
    label_axes(ax, "flow time t", ylabel, legend=7, ncol=2, grid="major")
    return stem, fig, cap.format(threshold=rec.threshold)


def final_and_transport(rec: Figures):
    """Final risk and W_C travelled against M, one line per scale."""
    fig, axes = pyplot().subplots(1, 2, figsize=(10, 4))
    for j, s in enumerate(sorted({r["init_scale"] for r in rec.runs})):
        rs = [r for r in rec.runs if r["init_scale"] == s]
        x = [r["particles"] for r in rs]
        risk = [max(r["final_risk"], 1e-20) for r in rs]
        axes[0].loglog(x, risk, "o" + STYLES[j % 4], label=f"s={s:g}")
        wc = [np.nan if r["wc_travelled"] is None else r["wc_travelled"] for r in rs]
        axes[1].loglog(x, wc, "o" + STYLES[j % 4], label=f"s={s:g}")
    axes[0].axhline(rec.threshold, color="k", ls=":", lw=0.8)
    label_axes(axes[0], "particles per layer M", f"risk at t = {rec.t1:g}", grid="major")
    label_axes(axes[1], "particles per layer M", "W_C(μ_0, μ_T)", grid="major")
    caption = (
        "Left: final risk against the number of particles per layer (one line per init scale; "
        "the dotted line is the target). Right: conditional Wasserstein distance between the "
        "initial and final measures (how far the features moved: small = lazy)."
    )
    return "final_risk_and_transport", fig, caption


def clouds(rec: Figures):
    """The picked run's particles at start and end on the two principal components."""
    p0, p1 = rec.start, rec.end
    s_k = (np.arange(p0.shape[0]) + 0.5) / p0.shape[0]
    both = np.concatenate([p0.reshape(-1, p0.shape[-1]), p1.reshape(-1, p1.shape[-1])])
    mean = both.mean(0)
    _, _, vt = np.linalg.svd(both - mean, full_matrices=False)
    fig, axes = pyplot().subplots(1, 2, figsize=(10, 4.3), sharex=True, sharey=True)
    for ax, p, title in ((axes[0], p0, "initialisation"), (axes[1], p1, f"t = {rec.t1:g}")):
        z = (p.reshape(-1, p.shape[-1]) - mean) @ vt[:2].T
        colours = np.repeat(s_k, p.shape[1])
        sc = ax.scatter(z[:, 0], z[:, 1], c=colours, cmap="plasma", s=14, vmin=0, vmax=1)
        ax.set_title(title)
        ax.set_xlabel("PC 1 of θ = (u, w, b)")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("PC 2")
    fig.colorbar(sc, ax=axes, label="layer s")
    m, s = rec.picked
    caption = (
        f"Particles θ = (u, w, b) of the run M={m}, s={s:g}, "
        "projected on the two principal components of all particles (start and end together), "
        "coloured by their layer s; the layer coordinate never moves, only θ does."
    )
    return "particle_clouds", fig, caption


def figures(rec: Figures) -> tuple[dict, dict]:
    """({stem: figure}, {stem: caption}) for the run."""
    makers = [functools.partial(curve, spec) for spec in CURVES]
    return figures_of(rec, (*makers, final_and_transport, clouds))
