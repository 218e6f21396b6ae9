"""The figure of `resnet-digits`: accuracy and trained smoothness for each activation and init."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from gradflow.experiments.resnet_common import INIT_COLORS
from gradflow.plotting import subplots


@dataclasses.dataclass(frozen=True)
class DigitsFigures:
    """The per-(activation, init) `frame`, the activations, the inits and the depth."""

    frame: Any
    activations: tuple[str, ...]
    inits: tuple[str, ...]
    depth: int


def digits_figures(r: DigitsFigures) -> tuple[dict, dict]:
    """({'table': figure}, {'table': caption})."""
    fig, axes = subplots(2)
    labels = [f"{a}\n{i}" for a in r.activations for i in r.inits]
    x = np.arange(len(labels))
    rows = [
        r.frame[(r.frame.activation == a) & (r.frame.init == i)].iloc[0]
        for a in r.activations
        for i in r.inits
    ]
    axes[0, 0].bar(x - 0.2, [row.train_accuracy for row in rows], 0.4, label="train")
    axes[0, 0].bar(x + 0.2, [row.test_accuracy for row in rows], 0.4, label="test")
    axes[0, 0].set_xticks(x, labels, fontsize=8)
    axes[0, 0].set_ylim(0, 1)
    axes[0, 0].set_ylabel("accuracy")
    axes[0, 0].legend(fontsize=8)
    colors = [INIT_COLORS.get(row.init) for row in rows]
    axes[0, 1].bar(x, [row.smoothness for row in rows], color=colors)
    axes[0, 1].set_yscale("log")
    axes[0, 1].set_xticks(x, labels, fontsize=8)
    axes[0, 1].set_ylabel(r"trained $\max_k |Z_{k+1}-Z_k|$")
    caption = (
        f"Digits, depth {r.depth}: train/test accuracy (left) and the largest successive "
        "difference of the trained weights (right, log) for each activation and init."
    )
    return {"table": fig}, {"table": caption}
