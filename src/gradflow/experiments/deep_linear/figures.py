"""`deep-linear`'s figures: loss and gradient norm, mode strengths, conservation, Hessians."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .escapes import ZOOM


@dataclasses.dataclass(frozen=True)
class FigureInputs:
    """Everything the figures draw (one run's results)."""

    traj: Any  # the main trajectory
    timeline: Any  # its saddle timeline
    s: np.ndarray  # singular values, decreasing
    predictions: Any  # escapes.Predictions
    drift: Any  # conservation drift record
    spectra: list  # Hessian spectra at the plateaus
    saddles: list  # the summary's saddle records
    atlas: list  # the exact critical points
    global_value: float
    depth: int
    rtol: float
    zooms: list  # per mode (times, u_j) of the dense re-solve, or None
    gd: Any = None  # gradient descent's trajectory, or None

    @property
    def ts(self) -> np.ndarray:
        return np.asarray(self.traj.ts)


def captions(method: str) -> dict[str, str]:
    """One sentence per figure; `method` names the balanced prediction drawn."""
    return {
        "loss": "Left: the loss gap F(t) − F* against t (log–log); dashed red lines: the critical "
        "values F_J − F* = ½ Σ_{j∉J} s_j² of the saddles visited (labelled by the set J "
        "of modes learned); dotted verticals: the time each mode was learned "
        "(u_j = s_j/2). Right: |∇F|, which dips at each saddle (circles: the save "
        "closest to it, where the plateau loss is read).",
        "modes": "Left: mode strengths u_j(t) = U_jᵀ W(t) V_j divided by s_j (solid) against the "
        "exact balanced solution of u' = H u^{2−2/H}(s − u) (dashed; " + method + "). "
        "Right: every escape in the time units of the balanced ODE, centred on its "
        "measured learning time: the measured curves collapse onto the balanced one.",
        "conservation": "Drift of the conservation laws |C_k(t) − C_k(0)|_F, "
        "C_k = W_{k+1}ᵀW_{k+1} − W_kW_kᵀ (exactly constant along the flow): the "
        "integrator's accuracy certificate, against 100·rtol·max_t|θ|².",
        "hessians": "Hessian spectra at each saddle visited: dots at the trajectory's closest "
        "approach (red: negative), bars at the exact balanced critical point with the "
        "same modes; its kind and λ_min are written below each column (symmetric log "
        "scale).",
    }


def make_figures(d: FigureInputs) -> dict:
    """{stem: matplotlib Figure}: loss, modes, conservation, hessians."""
    import matplotlib.pyplot as plt

    axes = _Axes(d, plt.cm.viridis(np.linspace(0.0, 0.88, d.s.size)))
    return {
        "loss": _loss(d, axes, plt),
        "modes": _modes(d, axes, plt),
        "conservation": _conservation(d, axes, plt),
        "hessians": _hessians(d, plt),
    }


def _modes_label(modes) -> str:
    return "J={" + ",".join(str(j + 1) for j in modes) + "}"


class _Axes:
    """The time axes shared by the figures, and the learning-time markers."""

    def __init__(self, d: FigureInputs, colors):
        ts, measured = d.ts, d.predictions.measured
        self.d, self.colors = d, colors
        self.t_plot = np.where(ts > 0, ts, np.nan)
        # Nothing happens long before the first mode is learned: start the time axes there.
        first = np.nanmin(measured) if np.any(np.isfinite(measured)) else ts[-1] * 1e-3
        self.left = max(float(np.nanmin(self.t_plot)), 0.05 * first)
        self.right = float(ts[-1])

    def mark_learned(self, ax, labels=False):
        s, measured = self.d.s, self.d.predictions.measured
        for j in range(s.size):
            if np.isfinite(measured[j]):
                ax.axvline(
                    measured[j],
                    color=self.colors[j],
                    ls=":",
                    lw=1.3,
                    label=f"mode {j + 1} learned (s={s[j]:g})" if labels else None,
                )


def _loss(d: FigureInputs, axes: _Axes, plt):
    """The gap to the global minimum on log axes with the critical values; |∇F|."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 5.2), gridspec_kw={"width_ratios": [3, 2]})
    loss = np.asarray(d.traj.loss)
    gaps = np.asarray(d.timeline.critical_values) - d.global_value
    positive = gaps[gaps > 0]
    floor = 1e-4 * (positive.min() if positive.size else max(float(loss[0] - d.global_value), 1.0))
    gap = np.clip(loss - d.global_value, 0.1 * floor, None)  # below the axis once converged
    axes.mark_learned(ax, labels=True)
    for i, g in enumerate(gaps):
        if g <= 0:
            continue
        label = "critical values F_J − F*" if i == 0 else None
        ax.axhline(g, color="tab:red", ls="--", lw=0.8, alpha=0.6, label=label)
        ax.annotate(
            _modes_label(d.timeline.visited_modes[i]),
            (1.0, g),
            xycoords=("axes fraction", "data"),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=7.5,
            color="tab:red",
        )
    ax.loglog(axes.t_plot, gap, color="k", lw=2, label="F(t) − F*")
    if d.gd is not None:
        gd_gap = np.clip(np.asarray(d.gd.loss)[1:] - d.global_value, 0.1 * floor, None)
        label = f"gradient descent, η = {d.gd.info['lr']:g}"
        ax.loglog(np.asarray(d.gd.ts)[1:], gd_gap, color="tab:orange", lw=1.2, ls="-.", label=label)
    ax.set_xlim(axes.left, axes.right)
    ax.set_ylim(floor, gap.max() * 3)
    ax.set_xlabel("t")
    ax.set_ylabel("F(t) − F*   (F* = global minimum)")
    ax.set_title(f"Saddle-to-saddle: depth {d.depth}, plateaus at the critical values")
    ax.legend(fontsize=7.5, loc="lower left", framealpha=0.9)
    ax.grid(True, which="major", alpha=0.25)
    gnorm = np.asarray(d.traj.grad_norm)
    ax2.loglog(axes.t_plot, np.clip(gnorm, 1e-300, None), color="k", lw=1.6)
    axes.mark_learned(ax2)
    for k in d.timeline.plateau_indices:
        if k is not None and d.ts[k] > 0:
            ax2.plot(d.ts[k], gnorm[k], "o", ms=5, mfc="none", mec="tab:red")
    ax2.plot([], [], "o", ms=5, mfc="none", mec="tab:red", label="closest approach to a saddle")
    ax2.set_xlim(axes.left, axes.right)
    ax2.set_ylim(max(gnorm[gnorm > 0].min() * 0.3, 1e-16), gnorm.max() * 3)
    ax2.set_xlabel("t")
    ax2.set_ylabel("|∇F|")
    ax2.set_title("Gradient norm: dips at each saddle")
    ax2.legend(fontsize=7.5, loc="lower left")
    ax2.grid(True, which="major", alpha=0.25)
    fig.tight_layout()
    return fig


def _modes(d: FigureInputs, axes: _Axes, plt):
    """Mode strengths on log axes; every escape rescaled onto the balanced one."""
    s, colors, pred = d.s, axes.colors, d.predictions
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 5.2))
    u = np.asarray(d.timeline.mode_strengths)
    for j in range(s.size):
        strength = np.where(u[:, j] > 0, u[:, j] / s[j], np.nan)
        ax.loglog(axes.t_plot, strength, color=colors[j], lw=2, label=f"mode {j + 1} (s={s[j]:g})")
    for j in range(s.size):
        label = "exact balanced solution" if j == 0 else None
        ax.loglog(axes.t_plot, pred.curves[:, j] / s[j], color="k", ls="--", lw=0.9, label=label)
    ax.plot(
        pred.predicted,
        np.full(s.size, 0.5),
        "x",
        color="k",
        ms=7,
        label="predicted time of u = s/2",
    )
    ax.axhline(0.5, color="grey", lw=0.6, ls=":")
    pos = u[u > 0] / np.repeat(s[None], u.shape[0], 0)[u > 0]
    ax.set_ylim(max(np.nanmin(pos) if pos.size else 1e-12, 1e-14), 2.0)
    ax.set_xlim(axes.left, axes.right)
    ax.set_xlabel("t")
    ax.set_ylabel("u_j(t) / s_j   (u_j = U_jᵀ W(t) V_j)")
    ax.set_title("Mode strengths: measured (solid) vs exact balanced solution (dashed)")
    ax.legend(fontsize=7, loc="lower right", ncol=2, framealpha=0.9)
    ax.grid(True, which="major", alpha=0.25)
    # time in the units of the balanced ODE v' = H s^{2−2/H} v^{2−2/H}(1 − v), v = u/s
    for j, z in enumerate(d.zooms):
        if z is None:
            continue
        tau = (z[0] - pred.measured[j]) * d.depth * s[j] ** (2.0 - 2.0 / d.depth)
        ax2.plot(tau, z[1] / s[j], color=colors[j], lw=2.4, alpha=0.8, label=f"mode {j + 1}")
        ax2.plot(tau, pred.zoom_curves[j] / s[j], color="k", ls="--", lw=0.9)
    ax2.plot([], [], color="k", ls="--", lw=0.9, label="balanced solution")
    ax2.set_xlim(*ZOOM)
    ax2.set_ylim(-0.03, 1.05)
    ax2.set_xlabel("(t − t_j) · H s_j^{2−2/H}   (t_j: measured learning time)")
    ax2.set_ylabel("u_j / s_j")
    ax2.set_title("Each escape, rescaled: one universal curve")
    ax2.legend(fontsize=7, loc="lower right", ncol=2)
    ax2.grid(True, alpha=0.25)
    fig.tight_layout()
    return fig


def _conservation(d: FigureInputs, axes: _Axes, plt):
    """The conservation laws' drift against the certification threshold."""
    fig, ax = plt.subplots(figsize=(9, 4.6))
    series = d.drift.series
    for k in range(series.shape[-1]):
        ax.loglog(
            axes.t_plot,
            np.where(series[:, k] > 0, series[:, k], np.nan),
            lw=1.5,
            label=f"|C_{k + 1}(t) − C_{k + 1}(0)|_F",
        )
    threshold = 100 * d.rtol * d.drift.scale
    ax.axhline(
        threshold,
        color="tab:red",
        ls="--",
        lw=1,
        label=f"certificate threshold 100·rtol·max|θ|² = {threshold:.1e}",
    )
    axes.mark_learned(ax)
    ax.set_xlabel("t")
    ax.set_ylabel("drift (Frobenius norm)")
    ax.set_title(
        f"Conservation laws C_k = W_(k+1)ᵀW_(k+1) − W_kW_kᵀ: relative drift "
        f"{d.drift.relative:.1e} (rtol {d.rtol:g})"
    )
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, which="major", alpha=0.25)
    fig.tight_layout()
    return fig


def _hessians(d: FigureInputs, plt):
    """Hessian spectra on the trajectory (dots) and at the exact critical point (bars)."""
    n = len(d.spectra)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.25 * n + 2.5), 5.4))
    for i, eig in enumerate(d.spectra):
        jitter = (np.arange(eig.size) % 9 - 4) * 0.035
        colors = np.where(eig < 0, "tab:red", "tab:blue")
        ax.scatter(i - 0.18 + jitter, eig, s=7, alpha=0.75, c=colors)
        exact = np.asarray(d.atlas[i].eigenvalues)
        negative = exact < -1e-8 * np.abs(exact).max(initial=1e-300)
        x = np.full(exact.size, i + 0.22)
        ax.scatter(x, exact, marker="_", s=90, lw=1.2, c=np.where(negative, "darkred", "k"))
        kind = d.saddles[i]["atlas_kind"].replace("_", " ")
        ax.text(
            i,
            -0.2,
            f"{kind}\nλ_min = {d.saddles[i]['atlas_lambda_min']:.1e}",
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="top",
            fontsize=7,
        )
    ax.set_yscale("symlog", linthresh=1e-6)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(range(n))
    labels = [_modes_label(sd["modes_learned"]) for sd in d.saddles]
    ax.set_xticklabels(labels, fontsize=7.5, rotation=20)
    ax.scatter([], [], s=7, c="tab:blue", label="on the trajectory (closest approach), λ > 0")
    ax.scatter([], [], s=7, c="tab:red", label="on the trajectory, λ < 0")
    ax.scatter([], [], marker="_", s=90, c="k", label="exact balanced critical point")
    ax.set_ylabel("Hessian eigenvalues (symlog, linear within ±1e-6)")
    ax.set_title("Hessian spectra at the saddles visited (J = modes learned)")
    ax.legend(fontsize=7.5, loc="upper left", framealpha=0.9)
    ax.set_xlim(-0.6, n - 0.4)
    fig.subplots_adjust(bottom=0.28)
    return fig
