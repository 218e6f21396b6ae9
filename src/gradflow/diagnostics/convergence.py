"""Convergence diagnostics: the Polyak–Łojasiewicz ratio along a trajectory, and the worst-case PL
constant at a point from the tangent kernel (docs/objective.md, docs/resnets.md).

**PL ratio.** Along the gradient flow of F in a metric G, dF/dt = −|∇F|_G², so a bound
|∇F|_G² ≥ μ (F − F_∞) on the path gives F(t) − F_∞ ≤ (F(0) − F_∞) e^{−μt}. `pl_ratio` reads
|∇F|_G from the trajectory (`Trajectory.grad_norm`, the gradient's norm *in the flow's metric*,
|∇F|_G² = Σ_j |∇_{θ_j}F|²/m_j) and returns |∇F|_G²/(F − F_∞) at the saved times and its minimum.
For a ResNet flowed in the `conditional_wasserstein` geometry (masses 1/L per layer) this is
(|∂F/∂A|² + L Σ_k |∂F/∂Z_k|² + |∂F/∂B|²)/F, the left-hand side of the local PL inequality of
Marion et al. (Prop. 5), with gradflow's F = ℓ/2 (ℓ = (1/n)Σ|f − y|², the paper's risk):
the paper's μ is twice this ratio. A trajectory made with `descent` stores the same metric norm.

Both measure F near a minimiser and refuse a loss without one (cross-entropy, logistic):
there F → inf F only as |θ| → ∞ and the ratio to F − F_∞ says nothing about convergence.
(Log-log slopes and exponential rates are in `gradflow.fits`.)
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from .._errors import ConfigError
from .._loss_checks import require_minimum, squared_loss_factor, trajectory_loss
from .._problem import GradientFlowProblem
from .._result import Record
from .._trajectory import Trajectory
from .._validation import check
from ..data import Dataset
from ..losses import as_loss, loss_name


@dataclasses.dataclass(frozen=True)
class PLRatio(Record):
    """Result of `pl_ratio`.

    - `ratio`: |∇F|_G²/(F − F_∞) at each saved time (NaN where F − F_∞ ≤ floor).
    - `min`: its minimum over the saved times where it is defined.
    - `t_min`: the time of the minimum.
    - `valid`: boolean mask of the saved times used.
    - `f_inf`: the F_∞ the ratio was taken against.
    """

    ratio: np.ndarray
    min: float
    t_min: float
    valid: np.ndarray
    f_inf: float


def pl_ratio(
    trajectory: Trajectory, f_inf: float = 0.0, floor: float = 1e-20, *, loss=None
) -> PLRatio:
    """The PL ratio |∇F|_G²/(F − F_∞) along a trajectory, and its minimum.

    At each saved time t_i: ratio_i = g_i²/(F_i − F_∞), with F_i = `trajectory.loss` and
    g_i = `trajectory.grad_norm` (|∇F|_G, the gradient's norm in the flow's metric). A lower bound
    μ on it along the path gives F(t) − F_∞ ≤ (F(0) − F_∞) e^{−μt}.

    **Arguments:**

    - `trajectory`: a `Trajectory` (single, or an ensemble: then every array has a leading
      member axis and `min`/`t_min` are per member).
    - `f_inf`: F_∞, the limit value (0 for an interpolating network).
    - `floor`: saved points with F − F_∞ ≤ floor are left out (there the ratio is round-off).
    - `loss`: the loss the trajectory was flowed with (default: the one `trajectory.info` names);
      a loss that does not attain its minimum is refused.

    **Returns:** a `PLRatio`.
    """
    require_minimum(
        trajectory_loss(trajectory, loss), "pl_ratio", "divides |∇F|² by F − F_∞ at a minimiser"
    )
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
        return PLRatio(ratio, float(ratio[i]), float(ts[i]), valid, float(f_inf))
    idx = np.nanargmin(ratio, axis=1)
    return PLRatio(ratio, ratio[np.arange(len(idx)), idx], ts[idx], valid, float(f_inf))


@dataclasses.dataclass(frozen=True)
class KernelPL(Record):
    """Result of `tangent_kernel_pl`.

    - `eigenvalues`: the spectrum of K_G = J G⁻¹ Jᵀ (ascending), J = ∂f(X)/∂θ.
    - `lambda_min`: its smallest eigenvalue.
    - `bound`: (4κ/n) λ_min, a PL constant valid for every residual at this θ ((2/n) λ_min for
      half_mse, κ = ½; (4/(n d')) λ_min for mse, κ = 1/d').
    - `rank`: the numerical rank of K_G (eigenvalues above 1e-10 × the largest).
    - `size`: n·d', the number of fitted values (K_G is size × size).
    """

    eigenvalues: np.ndarray
    lambda_min: float
    bound: float
    rank: int
    size: int
    loss: str


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


def tangent_kernel_pl(
    model, data: Dataset, geometry="euclidean", batch: int = 32, *, loss="half_mse"
) -> KernelPL:
    """The worst-case PL constant of a squared loss at θ, from the tangent kernel.

    With a squared loss F = (κ/n)|f(X) − Y|² (κ = ½ for 'half_mse', 1/d' for 'mse') and the
    residual r = f(X) − Y ∈ R^{nd'}: ∇F = (2κ/n) Jᵀr, so in the metric G
    |∇F|²_G = (4κ²/n²) rᵀ K_G r ≥ (4κ²/n²) λ_min(K_G) |r|² = (4κ/n) λ_min(K_G) · F, with
    K_G = J G⁻¹ Jᵀ (G⁻¹ = the geometry's velocity factor: 1/mass per leaf). A positive λ_min means
    the PL inequality holds at θ whatever the targets; `pl_ratio` measures it for the actual
    residual instead (≥ this bound). For a ResNet at the tied init (V = 0, every W_k = W) in the
    conditional-Wasserstein geometry, K_G = (1/m) ΦΦᵀ ⊗ I_{d'} with Φ_i = σ(W A x_i/√q): singular
    when m < n, which is why Marion et al. (Prop. 5) need m ≳ n.

    Only squared losses have this bound: other losses are refused (cross-entropy and logistic,
    which attain no minimum, with that reason).

    Cost: n·d' vector–Jacobian and Jacobian–vector products (`batch` at a time).

    **Returns:** a `KernelPL`.
    """
    loss = as_loss(loss)
    require_minimum(loss, "tangent_kernel_pl", "bounds |∇F|² below by a multiple of F − min F")
    if not isinstance(data, Dataset):
        raise ConfigError("data", type(data).__name__, "a gradflow.data.Dataset")
    kappa = squared_loss_factor(
        loss, data.out_dim, "the tangent-kernel bound is for squared losses"
    )
    check(isinstance(batch, int) and batch >= 1, "batch", batch, "a positive integer")
    problem, params = GradientFlowProblem.from_model(model, data, geometry=geometry, loss=loss)
    metric = problem.metric_masses
    kernel = np.asarray(_tangent_kernel(params, problem.static, metric, data.x, batch))
    kernel = 0.5 * (kernel + kernel.T)  # symmetric up to rounding
    eig = np.linalg.eigvalsh(kernel)
    rank = int(np.sum(eig > 1e-10 * max(eig[-1], 0.0))) if eig[-1] > 0 else 0
    lam = float(eig[0])
    bound = 4.0 * kappa * lam / data.n
    return KernelPL(eig, lam, bound, rank, int(kernel.shape[0]), loss_name(loss))
