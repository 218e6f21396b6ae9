"""The `saddles` experiment's figures."""

from __future__ import annotations

import numpy as np

from gradflow.plotting import label_axes, panel


def make_figures(esc, negatives, mf, rn, points):
    """{stem: figure} and {stem: caption}: escape times, negative starts, polishing histories."""
    figures, captions = {}, {}
    fig, ax = panel(6.4, 4.4)
    for (depth, modes), group in esc.groupby(["depth", "modes"]):
        line = ax.loglog(group["eps"], group["predicted"], "-", lw=1)[0]
        ax.loglog(
            group["eps"],
            group["measured"],
            "o",
            color=line.get_color(),
            label=f"H={depth}, J={modes}",
        )
    label_axes(
        ax,
        "ε (distance along the balanced escape direction)",
        "escape time (next mode at s/2)",
        legend=7,
        ncol=2,
    )
    figures["escape_times"] = fig
    captions["escape_times"] = (
        "Escape time from each deep-linear saddle moved by ε along the balanced direction of its "
        "first unlearned mode: flows (dots) against the closed form (lines); log(1/ε) for H = 2, "
        "ε^−(H−2) for H ≥ 3."
    )
    if negatives:
        fig, ax = panel(6.4, 4.0)
        for n in negatives:
            ax.plot(
                np.array(n["ts"]) / n["horizon"],
                np.abs(n["strength"]),
                label=f"H={n['depth']}, J={n['modes']}",
            )
        ax.set_yscale("log")
        label_axes(
            ax,
            "t / horizon (10 × the positive start's escape time)",
            "|mode strength| on the next mode",
            legend=7,
            grid="major",
        )
        figures["negative_starts"] = fig
        captions["negative_starts"] = (
            "Balanced starts whose product is negative on the next mode (H ≥ 3): the mode strength "
            "decays instead of escaping, although the ray expansion's sign alone says nothing."
        )
    fig, ax = panel(6.4, 4.0)
    for label, res in (("mean-field (L2)", mf), ("ResNet", rn)):
        ax.semilogy(np.arange(len(res.history)), res.history, "o-", label=f"{label}: {res.kind}")
    label_axes(ax, "Levenberg–Marquardt iteration", "|∇F| in the flow's metric", grid="major")
    figures["polishing"] = fig
    captions["polishing"] = (
        "gf.critical_point from the ends of a regularised mean-field flow (an isolated minimum) "
        "and of a ResNet flow stopped at risk 1e-4 (a zero-risk manifold): |∇F| per iteration."
    )
    fig, ax = panel(6.4, 4.0)
    labels = [f"H{p['depth']} {p['modes']}" for p in points]
    x = np.arange(len(points))
    ax.bar(x - 0.2, [p["orbit_dimension"] for p in points], 0.4, label="orbit dimension")
    ax.bar(
        x + 0.2, [p["unexplained_null_dimension"] for p in points], 0.4, label="null, unexplained"
    )
    ax.set_xticks(x, labels, rotation=90, fontsize=6)
    ax.set_ylabel("dimension")
    ax.legend(fontsize=8)
    fig.tight_layout()
    figures["orbits"] = fig
    captions["orbits"] = (
        "At each deep-linear critical point: the rescaling orbit's dimension and the Hessian null "
        "directions it does not explain (all of them at the origin for H ≥ 3)."
    )
    return figures, captions
