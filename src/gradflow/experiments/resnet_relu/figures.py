"""The figures of `resnet-relu`: the trained weights against the layer, and the largest
successive difference against depth with the closed form."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from gradflow.plotting import figures_of, label_axes, panel, subplots, time_cmap


@dataclasses.dataclass(frozen=True)
class ReluFigures:
    """The per-(activation, L) `frame`, the trained weights {(activation, L): w}, the
    activations and the values of L."""

    frame: Any
    finals: dict
    activations: tuple[str, ...]
    halves: tuple[int, ...]


def relu_figures(r: ReluFigures) -> tuple[dict, dict]:
    """({stem: figure}, {stem: caption}) in the report's order."""
    return figures_of(r, (_weights, _differences))


def _weights(r: ReluFigures):
    fig, axes = subplots(len(r.activations))
    cmap = time_cmap()
    for a, activation in enumerate(r.activations):
        ax = axes[0, a]
        for i, half in enumerate(r.halves):
            w = r.finals[(activation, half)]
            k = np.arange(1, len(w) + 1)
            ax.plot(
                k / len(w),
                w,
                ".-",
                lw=0.8,
                ms=3,
                color=cmap(i / max(1, len(r.halves) - 1)),
                label=f"2L = {2 * half}",
            )
        ax.set_title(f"{activation}: trained weights", fontsize=10)
        label_axes(ax, "layer k/(2L)", "trained $w_k$", legend=7, grid=None)
    caption = (
        "Trained weights against the layer: with ReLU they alternate between −1/(2L) (dead odd "
        "layers) and w* (even layers), for every depth; with GELU they form a smooth profile."
    )
    return "weights", fig, caption


def _differences(r: ReluFigures):
    fig, ax = panel()
    for activation in r.activations:
        sub = r.frame[r.frame.activation == activation].sort_values("depth")
        ax.loglog(sub.depth, sub.max_diff, "o-", label=f"{activation}: max_k |w_(k+1) − w_k|")
    if "relu" in r.activations:
        sub = r.frame[r.frame.activation == "relu"].sort_values("depth")
        ax.loglog(sub.depth, sub.predicted_relu_diff, "k:", label="w* + 1/(2L) (closed form)")
    label_axes(ax, "depth 2L", "largest successive difference after training")
    caption = (
        "Largest successive difference of the trained weights against depth: Ω(1) for ReLU, "
        "matching w* + 1/(2L) with (1 + w*/(2L))^L = C; decaying like 1/L for GELU."
    )
    return "differences", fig, caption
