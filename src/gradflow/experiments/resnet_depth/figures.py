"""The figures of `resnet-depth`: smoothness in depth, distance to the neural ODE, distance to the
deep reference, and the weights of one network against the layer."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from gradflow.experiments.resnet_common import INIT_COLORS
from gradflow.plotting import figures_of, label_axes, panel, subplots, time_cmap


@dataclasses.dataclass(frozen=True)
class DepthFigures:
    """What the figures show: the per-(init, depth) `frame`, the `slopes` entries, the inits
    (all, and those compared with the reference), the depths and the save times, the distances
    to the reference ({init: depths × times}), the depths of the fits, an example trajectory
    (or None) and the reference depth."""

    frame: Any
    slopes: dict
    inits: tuple[str, ...]
    ref_inits: tuple[str, ...]
    depths: tuple[int, ...]
    ts: np.ndarray
    distances: dict
    fit: tuple[int, ...]
    example: Any
    ref_depth: int


def depth_figures(r: DepthFigures) -> tuple[dict, dict]:
    """({stem: figure}, {stem: caption}) in the report's order."""
    return figures_of(r, (_smoothness, _ode_gap, _distance_to_reference, _weights_in_depth))


def _label(init, entry, what=""):
    slope = entry["slope"]
    return f"{init}{what} (slope {slope:.2f})" if slope is not None else init


def _trained_and_init(ax, r: DepthFigures, init: str, trained: str, at_init: str) -> None:
    """Column `trained` against depth (filled) and, where all positive, `at_init` (hollow), with
    their fitted slopes in the labels."""
    sub = r.frame[r.frame.init == init].sort_values("depth")
    c, sl = INIT_COLORS.get(init), r.slopes[init]
    ax.loglog(sub.depth, sub[trained], "o-", color=c, label=_label(init, sl[trained], ", trained"))
    if (sub[at_init] > 0).all():
        label = f"{init}, init (slope {sl[at_init]['slope']:.2f})"
        ax.loglog(sub.depth, sub[at_init], "o--", mfc="none", color=c, label=label)


def _smoothness(r: DepthFigures):
    fig, axes = subplots(2)
    for init in r.inits:
        sub = r.frame[r.frame.init == init].sort_values("depth")
        c, sl = INIT_COLORS.get(init), r.slopes[init]
        _trained_and_init(axes[0, 0], r, init, "smoothness_trained", "smoothness_init")
        axes[0, 1].loglog(
            sub.depth,
            sub.aggregate_trained,
            "s-",
            color=c,
            label=_label(init, sl["aggregate_frobenius_trained"]),
        )
    d = np.asarray(r.depths, float)
    first = r.frame[r.frame.init == r.inits[0]].sort_values("depth")
    for ax, p, name in ((axes[0, 0], -1, "L^{-1}"), (axes[0, 1], -0.5, "L^{-1/2}")):
        y0 = first.smoothness_trained.iloc[0] if p == -1 else first.aggregate_trained.iloc[0]
        if y0 > 0:
            ax.loglog(d, y0 * (d / d[0]) ** p, "k:", lw=1, label=f"${name}$")
        label_axes(ax, "depth L")
    axes[0, 0].set_ylabel(r"$\max_{k,\,t\leq T} |Z_{k+1}-Z_k|$")
    axes[0, 0].set_title("smoothness in depth (the theorem's quantity)")
    axes[0, 1].set_ylabel(r"$\max_t (\sum_k |Z_{k+1}-Z_k|_F^2)^{1/2}$")
    axes[0, 1].set_title("aggregate Frobenius norm (not the theorem's)")
    caption = (
        "Left: max over layers and times of |Z_{k+1} − Z_k| (|V|_F + |W|_F) against depth, after "
        "training (filled) and at init (hollow; tied starts at exactly 0): slope −1 for tied and "
        f"smooth, 0 for iid (fit on L ≥ {r.fit[0]}). Right: the aggregate Frobenius norm over "
        "layers decays only like L^{-1/2}."
    )
    return "smoothness", fig, caption


def _ode_gap(r: DepthFigures):
    fig, ax = panel()
    for init in r.inits:
        _trained_and_init(ax, r, init, "ode_gap_trained", "ode_gap_init")
    ylabel = r"$\max_i |f_L(x_i) - f_{ODE}(x_i)|$"
    label_axes(ax, "depth L", ylabel, title="distance to the neural-ODE limit")
    caption = (
        "Largest output difference over the training inputs between the depth-L network and the "
        "neural ODE with linearly interpolated weights (diffrax, rtol = atol = 1e-10), at T "
        "(filled) and at init (hollow; tied starts as h' = 0, gap 0): slope −1 for smooth weights."
    )
    return "ode_gap", fig, caption


def _distance_to_reference(r: DepthFigures):
    import matplotlib.colors as mcolors

    if not r.ref_inits:
        return None
    fig, axes = subplots(len(r.ref_inits) + 1, width=5.6)
    for e, init in enumerate(r.ref_inits):
        ax, dist = axes[0, e], r.distances[init]
        positive = dist[dist > 0]
        vmin = positive.min() if positive.size else 1e-12
        mesh = ax.pcolormesh(
            r.ts,
            np.arange(len(r.depths)),
            np.maximum(dist, vmin),
            norm=mcolors.LogNorm(vmin=vmin, vmax=dist.max()),
            shading="nearest",
            cmap="viridis",
        )
        ax.set_yticks(np.arange(len(r.depths)), [str(x) for x in r.depths])
        ax.set_xlabel("training time t")
        ax.set_ylabel("depth L")
        ax.set_title(f"{init}: distance to depth {r.ref_depth}", fontsize=10)
        fig.colorbar(mesh, ax=ax)
        sub = r.frame[r.frame.init == init].sort_values("depth")
        entry = r.slopes[init]["distance_to_reference_final"]
        axes[0, -1].loglog(
            sub.depth,
            sub.distance_to_reference_final,
            "o-",
            color=INIT_COLORS.get(init),
            label=_label(init, entry, " at T"),
        )
    ylabel = r"$(\int_0^1 |Z^L(s)-Z^{ref}(s)|^2 ds)^{1/2}$ at T"
    label_axes(axes[0, -1], "depth L", ylabel)
    caption = (
        f"L² distance in depth between the weights of the depth-L network and of a depth-"
        f"{r.ref_depth} reference flowed from the same continuous init, against L and t "
        "(heat maps, log colour) and at T against L: it shrinks like 1/L at every time."
    )
    return "distance_to_reference", fig, caption


def _weights_in_depth(r: DepthFigures):
    if r.example is None:
        return None
    fig, axes = subplots(2)
    weights = r.example.models.layer_weights()
    depth = weights["V"].shape[1]
    s = np.arange(1, depth + 1) / depth
    cmap = time_cmap()
    for i in range(len(r.example)):
        color = cmap(i / max(1, len(r.example) - 1))
        for a, b in ((0, 0), (1, 2), (3, 1)):
            axes[0, 0].plot(s, weights["V"][i, :, a, b], color=color, lw=1)
            axes[0, 1].plot(
                s, weights["W"][i, :, b, a] - weights["W"][0, :, b, a], color=color, lw=1
            )
    axes[0, 0].set_title(f"tied init, L = {depth}: entries of V_k (lighter = later)", fontsize=10)
    axes[0, 1].set_title("entries of W_k − W_k(0)", fontsize=10)
    for ax in axes[0]:
        ax.set_xlabel("layer s = k/L")
    caption = (
        f"Three entries of V_k and of W_k − W_k(0) against k/L for the tied init at depth "
        f"{depth}, at the saved times (dark = t 0, light = T): smooth functions of depth at all "
        "times."
    )
    return "weights_in_depth", fig, caption
