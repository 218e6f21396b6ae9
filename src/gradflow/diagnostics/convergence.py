"""Convergence diagnostics: the Polyak–Łojasiewicz ratio along a trajectory, and log-log slopes.

PL ratio. Along the gradient flow of F in a metric G, dF/dt = −|∇F|_G², so a bound
|∇F|_G² ≥ μ (F − F_∞) on the path gives F(t) − F_∞ ≤ (F(0) − F_∞) e^{−μt}. `pl_ratio` reads
|∇F|_G from the trajectory (`Trajectory.grad_norm`, the gradient's norm *in the flow's metric*,
|∇F|_G² = Σ_j |∇_{θ_j}F|²/m_j) and returns |∇F|_G²/(F − F_∞) at the saved times and its minimum.
For a ResNet flowed in the `conditional_wasserstein` geometry (masses 1/L per layer) this is
(|∂F/∂A|² + L Σ_k |∂F/∂Z_k|² + |∂F/∂B|²)/F, the left-hand side of the local PL inequality of
Marion et al. (Prop. 5), with gradflow's F = ℓ/2 (ℓ = (1/n)Σ|f − y|², the paper's risk):
the paper's μ is twice this ratio. A trajectory made with `descent` stores the same metric norm.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from .._errors import ConfigError
from .._problem import trainable_masses
from .._trajectory import Trajectory
from .._validation import check
from ..data import Dataset
from ..geometry import as_geometry


class PLRatio(NamedTuple):
    """Result of `pl_ratio`.

    - `ratio`: |∇F|_G²/(F − F_∞) at each saved time (NaN where F − F_∞ ≤ floor).
    - `min`: its minimum over the saved times where it is defined.
    - `t_min`: the time of the minimum.
    - `valid`: boolean mask of the saved times used.
    """

    ratio: np.ndarray
    min: float
    t_min: float
    valid: np.ndarray


def pl_ratio(trajectory: Trajectory, f_inf: float = 0.0, floor: float = 1e-20) -> PLRatio:
    """The PL ratio |∇F|_G²/(F − F_∞) along a trajectory, and its minimum.

    **Arguments:**

    - `trajectory`: a `Trajectory` (single, or an ensemble: then every array has a leading
      member axis and `min`/`t_min` are per member).
    - `f_inf`: F_∞, the limit value (0 for an interpolating network).
    - `floor`: saved points with F − F_∞ ≤ floor are left out (there the ratio is round-off).

    **Returns:** a `PLRatio`.
    """
    check(np.isfinite(f_inf), "f_inf", f_inf, "a finite number")
    check(np.isfinite(floor) and floor >= 0, "floor", floor, "a non-negative number")
    gap = np.asarray(trajectory.loss) - f_inf
    gnorm = np.asarray(trajectory.grad_norm)
    valid = gap > floor
    ratio = np.where(valid, gnorm**2 / np.where(valid, gap, 1.0), np.nan)
    ts = np.asarray(trajectory.ts)
    if not valid.any():
        raise ConfigError("trajectory", "F − F_∞ ≤ floor everywhere", "some saved F above floor")
    if ratio.ndim == 1:
        i = int(np.nanargmin(ratio))
        return PLRatio(ratio, float(ratio[i]), float(ts[i]), valid)
    idx = np.nanargmin(ratio, axis=1)
    return PLRatio(ratio, ratio[np.arange(len(idx)), idx], ts[idx], valid)


class KernelPL(NamedTuple):
    """Result of `tangent_kernel_pl`.

    - `eigenvalues`: the spectrum of K_G = J G⁻¹ Jᵀ (ascending), J = ∂f(X)/∂θ.
    - `lambda_min`: its smallest eigenvalue.
    - `bound`: (2/n) λ_min, a PL constant valid for every residual at this θ.
    - `rank`: the numerical rank of K_G (eigenvalues above 1e-10 × the largest).
    - `size`: n·d', the number of fitted values (K_G is size × size).
    """

    eigenvalues: np.ndarray
    lambda_min: float
    bound: float
    rank: int
    size: int


@eqx.filter_jit
def _tangent_kernel(params, static, metric_masses, x, batch):
    def outputs(p):
        return eqx.combine(p, static)(x).reshape(-1)

    _, pullback = jax.vjp(outputs, params)
    _, pushforward = jax.linearize(outputs, params)

    def column(e):
        (g,) = pullback(e)
        return pushforward(jtu.tree_map(lambda gi, m: gi / m, g, metric_masses))

    eye = jnp.eye(x.shape[0] * eqx.combine(params, static).out_dim)
    return jax.lax.map(column, eye, batch_size=batch)


def tangent_kernel_pl(model, data: Dataset, geometry="euclidean", batch: int = 32) -> KernelPL:
    """The worst-case PL constant of the squared loss at θ, from the tangent kernel.

    With F = (1/2n)|f(X) − Y|² and r = f(X) − Y ∈ R^{nd'}: ∇F = Jᵀr/n, so in the metric G
    |∇F|²_G = rᵀ K_G r / n² ≥ (2/n) λ_min(K_G) · F, with K_G = J G⁻¹ Jᵀ (G⁻¹ = the geometry's
    velocity factor: 1/mass per leaf). A positive λ_min means the PL inequality holds at θ
    whatever the targets; `pl_ratio` measures it for the actual residual instead (≥ this bound).
    For a ResNet at the tied init (V = 0, every W_k = W) in the conditional-Wasserstein geometry,
    K_G = (1/m) ΦΦᵀ ⊗ I_{d'} with Φ_i = σ(W A x_i/√q): singular when m < n, which is why Marion
    et al. (Prop. 5) need m ≳ n.

    Cost: n·d' vector–Jacobian and Jacobian–vector products (`batch` at a time).

    **Returns:** a `KernelPL`.
    """
    if not isinstance(data, Dataset):
        raise ConfigError("data", type(data).__name__, "a gradflow.data.Dataset")
    check(isinstance(batch, int) and batch >= 1, "batch", batch, "a positive integer")
    geometry = as_geometry(geometry)
    geometry.check_model(model)
    metric = geometry.metric_masses(trainable_masses(model))
    params, static = eqx.partition(model, model.trainable())
    kernel = np.asarray(_tangent_kernel(params, static, metric, data.x, batch))
    kernel = 0.5 * (kernel + kernel.T)  # symmetric up to rounding
    eig = np.linalg.eigvalsh(kernel)
    rank = int(np.sum(eig > 1e-10 * max(eig[-1], 0.0))) if eig[-1] > 0 else 0
    lam = float(eig[0])
    return KernelPL(eig, lam, 2.0 * lam / data.n, rank, int(kernel.shape[0]))


class Slope(NamedTuple):
    """Least-squares fit log y = intercept + slope · log x: the slope, its standard error, the
    intercept (natural log) and the number of points."""

    slope: float
    stderr: float
    intercept: float
    n: int


def loglog_slope(xs, ys) -> Slope:
    """The least-squares slope of log y against log x, with its standard error.

    stderr = sqrt(Σ r_i² / (n − 2) / Σ (log x_i − mean)²) (NaN for two points).

    **Raises:** `ConfigError` unless xs, ys are ≥ 2 positive finite numbers of equal length, with
    at least two distinct xs.
    """
    x = np.asarray(xs, dtype=float).reshape(-1)
    y = np.asarray(ys, dtype=float).reshape(-1)
    ok = (
        x.size == y.size
        and x.size >= 2
        and np.all(np.isfinite(x))
        and np.all(np.isfinite(y))
        and np.all(x > 0)
        and np.all(y > 0)
    )
    check(ok, "xs, ys", (list(x), list(y)), "two equal-length lists of ≥ 2 positive finite numbers")
    lx, ly = np.log(x), np.log(y)
    sxx = np.sum((lx - lx.mean()) ** 2)
    check(sxx > 0, "xs", list(x), "at least two distinct values")
    slope = float(np.sum((lx - lx.mean()) * (ly - ly.mean())) / sxx)
    intercept = float(ly.mean() - slope * lx.mean())
    resid = ly - (intercept + slope * lx)
    stderr = float(np.sqrt(np.sum(resid**2) / (x.size - 2) / sxx)) if x.size > 2 else float("nan")
    return Slope(slope, stderr, intercept, int(x.size))


def exponential_rate(ts, values, t_from: float | None = None, floor: float = 1e-20) -> float:
    """Least-squares rate r of values ≈ c e^{−r t}, over the saved times t ≥ t_from with
    values > floor (e.g. the risk's exponential decay after a transient)."""
    t = np.asarray(ts, dtype=float)
    v = np.asarray(values, dtype=float)
    keep = (v > floor) & np.isfinite(v)
    if t_from is not None:
        keep &= t >= t_from
    check(keep.sum() >= 2, "values", int(keep.sum()), "at least two points above floor")
    slope = np.polyfit(t[keep], np.log(v[keep]), 1)[0]
    return float(-slope)
