"""The figures of `lojasiewicz`, drawn from a `Figures` record."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


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


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def window(rec: Figures) -> tuple[np.ndarray, np.ndarray]:
    """(F − F∞ > 0, the fit window within it), as masks over the saves."""
    gap = rec.loss - rec.fit.f_inf
    ok = gap > 0
    lo, hi = rec.fit.window
    return ok, ok & (gap >= lo) & (gap <= hi)


def fit_figure(plt, rec: Figures, figs: dict, captions: dict) -> None:
    fit, gn = rec.fit, rec.grad_norm
    gap = rec.loss - fit.f_inf
    ok, sel = window(rec)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.loglog(gap[ok], gn[ok], ".", ms=3, color="0.5", label="flow")
    ax.loglog(gap[sel], gn[sel], ".", ms=4, color="C0", label="fit window")
    xs = np.geomspace(gap[ok].min(), gap[ok].max(), 50)
    label = f"c (F−F∞)^(1−ϑ): ϑ={fit.theta:.3f}, c={fit.c:.3g}"
    ax.loglog(xs, fit.c * xs ** (1 - fit.theta), "C3-", lw=1, label=label)
    ax.set_xlabel("F − F∞")
    ax.set_ylabel("|∇F|_G")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    figs["lojasiewicz_fit"] = fig
    captions["lojasiewicz_fit"] = (
        "|∇F| against F − F∞ (log-log) along the flow with the fitted Łojasiewicz line "
        "|∇F| = c (F − F∞)^(1−ϑ); slope 1/2 means ϑ = 1/2 (PL, exponential convergence)."
    )


def decay_figure(plt, rec: Figures, figs: dict, captions: dict) -> None:
    fit, t = rec.fit, rec.t
    gap = rec.loss - fit.f_inf
    ok, sel = window(rec)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
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
    ax.set_xlabel("flow time t")
    ax.set_ylabel("F − F∞")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    figs["gap_decay"] = fig
    captions["gap_decay"] = (
        "F(t) − F∞ with the decay the fitted (ϑ, c) predict on the fit window "
        "(exponential with rate c² when ϑ = 1/2, t^(−1/(1−2ϑ)) otherwise)."
    )


def path_figure(plt, rec: Figures, figs: dict, captions: dict) -> None:
    t = rec.t
    pos = t > 0
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.semilogx(t[pos], rec.path[pos], "-", label="∫|∇F|_G dt (speed)")
    ax.semilogx(t[pos], rec.polygon[pos], "--", label="polygon through saves")
    ax.set_xlabel("flow time t")
    ax.set_ylabel("cumulative path length (flow metric)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    figs["path_length"] = fig
    captions["path_length"] = (
        "Cumulative path length ∫_0^t |θ'|_G dt in the flow's own (conditional Wasserstein) "
        "metric: it levels off, i.e. the path has finite length as Łojasiewicz predicts."
    )


def figures(rec: Figures) -> tuple[dict, dict]:
    """({stem: figure}, {stem: caption}) for the run."""
    plt = _plt()
    figs, captions = {}, {}
    fit_figure(plt, rec, figs, captions)
    decay_figure(plt, rec, figs, captions)
    path_figure(plt, rec, figs, captions)
    return figs, captions
