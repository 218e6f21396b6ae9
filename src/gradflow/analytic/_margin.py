"""The max-margin (hard-margin SVM, no intercept) separator of labelled data, with a certificate
(docs/implicit-bias.md).

**Problem.** With z_i = y_i x_i (labels y_i = ±1), the max-margin separator is

    ŵ = argmin ½|w|²  subject to  z_iᵀw ≥ 1 for all i,

and its margin is γ̂ = 1/|ŵ|. It exists iff the data are separable by a hyperplane through the
origin. The KKT conditions characterise it (the problem is convex, the constraints affine):
there are α_i ≥ 0 with

    w = Σ_i α_i z_i (stationarity),  z_iᵀw ≥ 1 (primal feasibility),  α_i (z_iᵀw − 1) = 0
    (complementary slackness),

and then the dual value Σα_i − ½|Σα_i z_i|² equals the primal value ½|w|² (no duality gap).

**Solution.** A least-distance programme min |w| s.t. Zw ≥ 1 is solved exactly by the
non-negative least squares problem min_{u ≥ 0} |E u − f|, E = [Zᵀ; 1ᵀ] ((d+1) × n), f = e_{d+1}
(Lawson & Hanson, *Solving Least Squares Problems*, 1974, ch. 23): with r = E u − f ≠ 0,
w = −r_{1..d}/r_{d+1}; r = 0 means no w is feasible (not separable). The NNLS problem is solved by
the Lawson–Hanson active-set method (`scipy.optimize.nnls`, finite termination). The support
S = {i : z_iᵀw ≤ 1 + 1e-8} is then solved exactly: α_S solves (Z_S Z_Sᵀ) α_S = 1 (least squares
if Z_S has dependent rows), w = Z_Sᵀ α_S, and every KKT condition is checked to `tol`; the
residuals are returned (`MaxMargin`) and a failure raises.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._errors import ConfigError
from .._result import Record
from .._validation import check, positive


@dataclasses.dataclass(frozen=True)
class MaxMargin(Record):
    """The max-margin separator ŵ and its KKT certificate (`max_margin`).

    - `w`: ŵ (d,); `direction`: ŵ/|ŵ|; `margin`: γ̂ = 1/|ŵ| = min_i y_i x_iᵀŵ/|ŵ|.
    - `alpha`: the multipliers α (n,); `support`: the indices with α_i > 0.
    - `stationarity`: |ŵ − Σα_i y_i x_i|/|ŵ|; `feasibility`: max(0, 1 − min_i y_i x_iᵀŵ);
      `slackness`: max_i α_i |y_i x_iᵀŵ − 1|; `duality_gap`: |½|ŵ|² − (Σα − ½|Σα y x|²)|/(½|ŵ|²);
      `min_alpha`: min_i α_i (≥ −tol).
    """

    w: np.ndarray
    direction: np.ndarray
    margin: float
    alpha: np.ndarray
    support: tuple[int, ...]
    stationarity: float
    feasibility: float
    slackness: float
    duality_gap: float
    min_alpha: float


def max_margin(x, y, *, tol: float = 1e-9) -> MaxMargin:
    """The max-margin separator through the origin of inputs x (n, d) with labels y (n,) or (n, 1)
    in {−1, +1}, certified by its KKT conditions to `tol` (module docstring).

    **Raises:** `ConfigError` for labels not ±1, non-finite inputs, data not separable through the
    origin, or a certificate failing by more than `tol` (reported by name).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float).reshape(-1)
    tol = positive("tol", tol)
    check(x.ndim == 2 and x.shape[0] == y.size, "x", x.shape, "an (n, d) array, n = len(y)")
    check(bool(np.all(np.isfinite(x))), "x", "non-finite values", "finite inputs")
    check(bool(np.all(np.abs(y) == 1)), "y", "labels not in {-1, +1}", "labels ±1")
    Z = y[:, None] * x
    n, d = Z.shape
    E = np.vstack([Z.T, np.ones((1, n))])
    f = np.zeros(d + 1)
    f[-1] = 1.0
    from scipy.optimize import nnls  # imported here: scipy.optimize is ~0.4 s of an import

    u, _ = nnls(E, f, maxiter=50 * n)
    r = E @ u - f
    if abs(r[-1]) < 1e-12:  # |r| = 0: Zw ≥ 1 has no solution
        raise ConfigError("data", "not separable", "data separable by a hyperplane through 0")
    w = -r[:d] / r[-1]
    # the active constraints, then the exact solution on them
    support = np.nonzero(Z @ w <= 1 + 1e-8)[0]
    Zs = Z[support]
    alpha_s = np.linalg.lstsq(Zs @ Zs.T, np.ones(support.size), rcond=None)[0]
    w = Zs.T @ alpha_s
    alpha = np.zeros(n)
    alpha[support] = alpha_s
    margins = Z @ w
    norm2 = float(w @ w)
    dual = float(alpha.sum() - 0.5 * norm2)
    out = MaxMargin(
        w=w,
        direction=w / np.sqrt(norm2),
        margin=float(1.0 / np.sqrt(norm2)),
        alpha=alpha,
        support=tuple(int(i) for i in support[alpha_s > 0]),
        stationarity=float(np.linalg.norm(w - Z.T @ alpha) / np.sqrt(norm2)),
        feasibility=float(max(0.0, 1.0 - margins.min())),
        slackness=float(np.max(alpha * np.abs(margins - 1.0))),
        duality_gap=float(abs(0.5 * norm2 - dual) / (0.5 * norm2)),
        min_alpha=float(alpha.min()),
    )
    for name in ("stationarity", "feasibility", "slackness", "duality_gap"):
        value = getattr(out, name)
        check(value <= tol, "tol", tol, f"≥ the KKT residual {name} = {value:.3g} (not certified)")
    check(out.min_alpha >= -tol, "tol", tol, f"≥ −min α = {-out.min_alpha:.3g} (not certified)")
    return out
