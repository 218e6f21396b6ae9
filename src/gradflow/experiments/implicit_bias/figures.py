"""Figures of the `implicit-bias` experiment."""

from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figures(t, theta, norm, loss, fit, fit_from, mm) -> tuple[dict, dict]:
    """({stem: figure}, {stem: caption}): the angle against t with its fit (headline), and
    |w(t)| against log t with the slope |ŵ|."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.loglog(t, theta, ".", ms=3, label="angle(w(t), ŵ)")
    sel = t >= fit_from
    ax.loglog(
        t[sel], fit.a / (np.log(t[sel]) + fit.b), "-", label=f"{fit.a:.3g}/(log t + {fit.b:.3g})"
    )
    ax.axvline(fit_from, color="0.7", lw=0.8)
    ax.set_xlabel("t")
    ax.set_ylabel("angle to the max-margin direction (rad)")
    ax.legend()
    fig.tight_layout()
    fig2, ax2 = plt.subplots(figsize=(5, 3.5))
    pos = t > 1
    ax2.plot(np.log(t[pos]), norm[pos], ".", ms=3, label="|w(t)|")
    ax2.plot(np.log(t[pos]), np.linalg.norm(mm.w) * np.log(t[pos]), "-", lw=0.8, label="|ŵ| log t")
    ax2.set_xlabel("log t")
    ax2.set_ylabel("|w(t)|")
    ax2.legend()
    fig2.tight_layout()
    captions = {
        "angle": "The angle between w(t) and the certified max-margin direction against t, with "
        "the fit a/(log t + b) over the window right of the grey line.",
        "norm": "|w(t)| against log t: it grows like |ŵ| log t (Soudry et al. 2018).",
    }
    return {"angle": fig, "norm": fig2}, captions
