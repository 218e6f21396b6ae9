"""The figures of `lojasiewicz`, drawn from a `Figures` record."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from gradflow.plotting import figures_of, label_axes, panel


@dataclasses.dataclass(frozen=True)
class Figures:
    """The saved series t, F, |∇F|_G, the Łojasiewicz fit (`gf.diagnostics.LojasiewiczFit`) and
    the cumulative path length (from the speed, and along the polygon through the saves)."""

    t: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    fit: Any
    path: np.ndarray
    polygon: np.ndarray


def window(rec: Figures) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(F − F∞, where it is > 0, the fit window within that), the last two as masks over the
    saves."""
    gap = rec.loss - rec.fit.f_inf
    ok = gap > 0
    lo, hi = rec.fit.window
    return gap, ok, ok & (gap >= lo) & (gap <= hi)


SIZE = (6.5, 4.5)


def fit_figure(rec: Figures):
    fit, gn = rec.fit, rec.grad_norm
    gap, ok, sel = window(rec)
    fig, ax = panel(*SIZE)
    ax.loglog(gap[ok], gn[ok], ".", ms=3, color="0.5", label="flow")
    ax.loglog(gap[sel], gn[sel], ".", ms=4, color="C0", label="fit window")
    xs = np.geomspace(gap[ok].min(), gap[ok].max(), 50)
    label = f"c (F−F∞)^(1−ϑ): ϑ={fit.theta:.3f}, c={fit.c:.3g}"
    ax.loglog(xs, fit.c * xs ** (1 - fit.theta), "C3-", lw=1, label=label)
    label_axes(ax, "F − F∞", "|∇F|_G", grid="major")
    caption = (
        "|∇F| against F − F∞ (log-log) along the flow with the fitted Łojasiewicz line "
        "|∇F| = c (F − F∞)^(1−ϑ); slope 1/2 means ϑ = 1/2 (PL, exponential convergence)."
    )
    return "lojasiewicz_fit", fig, caption


def decay_figure(rec: Figures):
    fit, t = rec.fit, rec.t
    gap, ok, sel = window(rec)
    fig, ax = panel(*SIZE)
    ax.loglog(t[ok & (t > 0)], gap[ok & (t > 0)], "-", color="C0", label="F − F∞ (measured)")
    tw = t[sel]
    if tw.size:
        if fit.kind == "power":
            pred = fit.predicted_gap(tw, tw[0], gap[sel][0])
            label = f"predicted ~ t^{fit.predicted_rate:.3g}"
        else:
            pred = gap[sel][0] * np.exp(-fit.predicted_rate * (tw - tw[0]))
            label = f"predicted exp(−{fit.predicted_rate:.3g} t)"
        ax.loglog(tw, pred, "--", color="C3", lw=1.5, label=label)
    label_axes(ax, "flow time t", "F − F∞", grid="major")
    caption = (
        "F(t) − F∞ with the decay the fitted (ϑ, c) predict on the fit window "
        "(exponential with rate c² when ϑ = 1/2, t^(−1/(1−2ϑ)) otherwise)."
    )
    return "gap_decay", fig, caption


def path_figure(rec: Figures):
    t = rec.t
    pos = t > 0
    fig, ax = panel(*SIZE)
    ax.semilogx(t[pos], rec.path[pos], "-", label="∫|∇F|_G dt (speed)")
    ax.semilogx(t[pos], rec.polygon[pos], "--", label="polygon through saves")
    label_axes(ax, "flow time t", "cumulative path length (flow metric)", grid="major")
    caption = (
        "Cumulative path length ∫_0^t |θ'|_G dt in the flow's own (conditional Wasserstein) "
        "metric: it levels off, i.e. the path has finite length as Łojasiewicz predicts."
    )
    return "path_length", fig, caption


def figures(rec: Figures) -> tuple[dict, dict]:
    """({stem: figure}, {stem: caption}) for the run."""
    return figures_of(rec, (fit_figure, decay_figure, path_figure))
