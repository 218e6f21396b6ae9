"""Optimal transport between particle measures: W_2 and the conditional distance W_C.

**W_2.** For μ = Σ_i a_i δ_{x_i} and ν = Σ_j b_j δ_{y_j} (weights summing to 1),
W_2(μ, ν)² = min_{π ∈ Π(a, b)} Σ_ij π_ij |x_i − y_j|². Two methods:

- *exact*: for uniform weights the measures are replicated to k = lcm(n, m) equal atoms each, and
  the optimal plan between two uniform k-point clouds is a permutation (Birkhoff), found by
  `scipy.optimize.linear_sum_assignment`; for other weights, the transport linear program solved
  exactly by HiGHS (`scipy.optimize.linprog`). Exact to round-off.
- *sinkhorn*: the debiased Sinkhorn divergence of ott-jax (Feydy et al. 2019),
  S_ε = OT_ε(μ, ν) − ½ OT_ε(μ, μ) − ½ OT_ε(ν, ν), with OT_ε the entropic cost
  min_π ⟨C, π⟩ + ε KL(π | a⊗b) and C the squared Euclidean cost. Since 0 ≤ KL(π* | a⊗b) ≤
  log min(n, m) at the optimal plan π*, W_2² ≤ OT_ε(μ, ν) ≤ W_2² + ε log min(n, m), which gives the
  **bias bound** |S_ε − W_2²| ≤ ε log max(n, m) (up to the solver's tolerance). We return
  √max(S_ε, 0), so |Ŵ − W_2| ≤ (ε log max(n, m))^{1/2}. The default ε is 10⁻³ × the mean squared
  distance between the two clouds (stated in the result with `details=True`).

`wasserstein` returns the distance; `wasserstein_details` a `TransportResult` saying how it was
computed (method, ε, bias bound). `method="auto"` is exact when it is cheap (uniform weights with lcm(n, m) ≤ 1024, otherwise
n·m ≤ 10⁴) and Sinkhorn beyond.

**W_C.** For measures on [0, 1] × Θ with uniform s-marginal and conditionals μ_s, ν_s
(docs/mean-field.md), W_C(μ, ν)² = ∫_0^1 W_2(μ_s, ν_s)² ds. A layered particle model holds μ_s constant on each
layer interval ((k−1)/L, k/L], so the integral is a finite sum over the common refinement of the
two layer partitions (the mean over layers when both have the same L). `conditional_wasserstein`
returns W_C; `conditional_wasserstein_details` a `ConditionalTransport` with the per-interval
squared distances and the bias bound.

??? cite
    Peyré & Cuturi, "Computational Optimal Transport" (2019); Feydy, Séjourné, Vialard, Amari,
    Trouvé, Peyré, "Interpolating between optimal transport and MMD using Sinkhorn divergences"
    (AISTATS 2019); Cuturi et al., "Optimal Transport Tools (OTT)" (2022).
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import ConfigError
from .._result import Record
from .._validation import check, check_choice

EXACT_UNIFORM_MAX = 1024  # replicated size lcm(n, m) up to which 'auto' uses the assignment
EXACT_LP_MAX = 10_000  # n·m up to which 'auto' uses the exact LP for non-uniform weights
DEFAULT_RELATIVE_EPSILON = 1e-3


@dataclasses.dataclass(frozen=True)
class TransportResult(Record):
    """W_2 with how it was computed (the result of `wasserstein_details`).

    - `distance`: the estimate of W_2. `squared`: its square (S_ε itself for Sinkhorn).
    - `method`: 'assignment', 'lp' or 'sinkhorn'.
    - `epsilon`: the entropic ε (None for exact methods).
    - `bias_bound`: a bound on |squared − W_2²| (ε log max(n, m) for Sinkhorn, 0 for exact).
    """

    distance: float
    squared: float
    method: str
    epsilon: float | None
    bias_bound: float


def _weights(w, n: int, field: str):
    if w is None:
        return None
    w = np.asarray(w, dtype=float).reshape(-1)
    check(
        w.size == n and np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0,
        field,
        f"{w.size} weights" if w.size != n else "negative, zero-sum or non-finite weights",
        f"{n} non-negative finite weights with a positive sum",
    )
    w = w / w.sum()
    if np.allclose(w, 1.0 / n, rtol=1e-12, atol=0):
        return None  # uniform
    return w


def _cloud(x, field: str) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    check(x.ndim == 2 and x.shape[0] >= 1, field, x.shape, "an array of points (n, d)")
    check(bool(np.all(np.isfinite(x))), field, "non-finite entries", "finite points")
    return x


def _sq_cost(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|x_i − y_j|² computed from the differences (exact zero for equal points)."""
    from scipy.spatial.distance import cdist

    return cdist(x, y, "sqeuclidean")


def _exact_uniform(x, y) -> float:
    n, m = len(x), len(y)
    k = math.lcm(n, m)
    xr = np.repeat(x, k // n, axis=0)
    yr = np.repeat(y, k // m, axis=0)
    cost = _sq_cost(xr, yr)
    from scipy.optimize import linear_sum_assignment

    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].mean())


def _exact_lp(x, y, a, b) -> float:
    n, m = len(x), len(y)
    a = np.full(n, 1.0 / n) if a is None else a
    b = np.full(m, 1.0 / m) if b is None else b
    cost = _sq_cost(x, y)
    # equality constraints: row sums a, column sums b (one redundant constraint dropped)
    rows = np.kron(np.eye(n), np.ones((1, m)))
    cols = np.kron(np.ones((1, n)), np.eye(m))[:-1]
    from scipy.optimize import linprog

    res = linprog(
        cost.reshape(-1),
        A_eq=np.vstack([rows, cols]),
        b_eq=np.concatenate([a, b[:-1]]),
        bounds=(0, None),
        method="highs",
    )
    if not res.success:  # pragma: no cover - HiGHS solves every feasible transport LP
        raise RuntimeError(f"transport LP failed: {res.message}")
    return float(res.fun)


@partial(jax.jit, static_argnames=("max_iterations",))
def _sinkhorn_sq(x, y, a, b, epsilon, threshold, max_iterations: int):
    """Debiased Sinkhorn divergence S_ε (squared-Euclidean cost); vmappable."""
    from ott.geometry.pointcloud import PointCloud
    from ott.tools.sinkhorn_divergence import sinkhorn_divergence

    div, _ = sinkhorn_divergence(
        PointCloud,
        x,
        y,
        a=a,
        b=b,
        epsilon=epsilon,
        solve_kwargs={"threshold": threshold, "max_iterations": max_iterations},
    )
    return div


def _default_epsilon(x, y, a, b) -> float:
    a = np.full(len(x), 1.0 / len(x)) if a is None else a
    b = np.full(len(y), 1.0 / len(y)) if b is None else b
    mean_cost = float(a @ _sq_cost(x, y) @ b)
    return DEFAULT_RELATIVE_EPSILON * max(mean_cost, 1e-300)


def _choose(method: str, n: int, m: int, uniform: bool) -> str:
    if method == "exact":
        return "assignment" if uniform else "lp"
    if method == "sinkhorn":
        return "sinkhorn"
    if uniform and math.lcm(n, m) <= EXACT_UNIFORM_MAX:
        return "assignment"
    if not uniform and n * m <= EXACT_LP_MAX:
        return "lp"
    return "sinkhorn"


def wasserstein_details(
    a,
    b,
    weights_a=None,
    weights_b=None,
    method: str = "auto",
    epsilon: float | None = None,
    *,
    threshold: float = 1e-7,
    max_iterations: int = 20_000,
) -> TransportResult:
    """W_2 between the particle measures Σ_i (weights_a)_i δ_{a_i} and Σ_j (weights_b)_j δ_{b_j},
    W_2² = min over couplings π of Σ_ij π_ij |a_i − b_j|², with how it was computed.

    **Arguments:**

    - `a` (n, d), `b` (m, d): the points (1-D arrays are points on a line).
    - `weights_a`, `weights_b`: non-negative weights (normalised here); None = uniform.
    - `method`: 'exact' (assignment for uniform weights, replicated to lcm(n, m) atoms; LP
      otherwise), 'sinkhorn' (ott-jax, debiased), or 'auto' (exact when cheap; see the module).
    - `epsilon`: the entropic ε for Sinkhorn (absolute, in units of squared distance); default
      10⁻³ × the mean squared distance between the clouds.
    - `threshold`, `max_iterations`: Sinkhorn's stopping rule (marginal error) and budget.

    **Returns:** a `TransportResult`. For Sinkhorn, |W_2² − S_ε| ≤ ε log max(n, m).
    """
    check_choice("method", method, ("auto", "exact", "sinkhorn"))
    x, y = _cloud(a, "a"), _cloud(b, "b")
    check(
        x.shape[1] == y.shape[1], "b", y.shape, f"points of the same dimension as a ({x.shape[1]})"
    )
    wa, wb = _weights(weights_a, len(x), "weights_a"), _weights(weights_b, len(y), "weights_b")
    if epsilon is not None:
        check(np.isfinite(epsilon) and epsilon > 0, "epsilon", epsilon, "a positive number")
    how = _choose(method, len(x), len(y), wa is None and wb is None)
    if how == "assignment":
        sq, eps, bound = _exact_uniform(x, y), None, 0.0
    elif how == "lp":
        sq, eps, bound = _exact_lp(x, y, wa, wb), None, 0.0
    else:
        eps = float(epsilon) if epsilon is not None else _default_epsilon(x, y, wa, wb)
        wa_ = jnp.full(len(x), 1.0 / len(x)) if wa is None else jnp.asarray(wa)
        wb_ = jnp.full(len(y), 1.0 / len(y)) if wb is None else jnp.asarray(wb)
        sq = float(
            _sinkhorn_sq(
                jnp.asarray(x), jnp.asarray(y), wa_, wb_, eps, threshold, int(max_iterations)
            )
        )
        bound = eps * math.log(max(len(x), len(y), 2))
    return TransportResult(math.sqrt(max(sq, 0.0)), sq, how, eps, bound)


def wasserstein(a, b, *args, **kwargs) -> float:
    """W_2 between two particle measures: `wasserstein_details(a, b, ...).distance`, with the same
    arguments (weights_a, weights_b, method, epsilon, threshold, max_iterations)."""
    return wasserstein_details(a, b, *args, **kwargs).distance


# ---------------------------------------------------------------------------------------------
# conditional (layer-by-layer) distance


def layered_positions(obj, field: str = "model") -> np.ndarray:
    """Particle positions as (L, M, p): a particle model's `particle_positions()`, or an array.

    A non-layered model (e.g. `TwoLayerMeanField`) is one layer (L = 1); an (M, p) array too.
    """
    from ..models import AbstractModel, AbstractParticleModel

    if isinstance(obj, AbstractParticleModel):
        obj = obj.particle_positions()
    elif isinstance(obj, AbstractModel):
        raise ConfigError(
            field,
            type(obj).__name__,
            "a particle model (AbstractParticleModel: MeanFieldResNet, TwoLayerMeanField) or an "
            "array of positions (L, M, p)",
        )
    try:
        pos = np.asarray(obj, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(field, type(obj).__name__, "a particle model or an array") from None
    if pos.ndim == 2:
        pos = pos[None]
    check(pos.ndim == 3, field, pos.shape, "a particle model or an array (L, M, p)")
    return pos


def _intervals(la: int, lb: int):
    """Common refinement of the partitions of [0, 1] into la and lb equal intervals:
    [(length, layer_a, layer_b)]."""
    cuts = sorted(
        {Fraction(k, la) for k in range(la + 1)} | {Fraction(k, lb) for k in range(lb + 1)}
    )
    out = []
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        mid = (lo + hi) / 2
        out.append((float(hi - lo), int(mid * la), int(mid * lb)))
    return out


@dataclasses.dataclass(frozen=True)
class ConditionalTransport(Record):
    """W_C with how it was computed (the result of `conditional_wasserstein_details`).

    - `distance`: W_C = (Σ_i lengths_i · squared_i)^{1/2}.
    - `squared`: W_2(μ_s, ν_s)² on each interval of the common refinement of the two layer
      partitions (one per layer when both have the same L).
    - `lengths`: the intervals' lengths (summing to 1).
    - `method`: 'assignment', 'lp' or 'sinkhorn'; `epsilon`: the largest entropic ε used (None
      for exact methods).
    - `bias_bound`: a bound on |Σ_i lengths_i squared_i − W_C²| (0 for exact methods).
    """

    distance: float
    squared: np.ndarray
    lengths: np.ndarray
    method: str
    epsilon: float | None
    bias_bound: float


def conditional_wasserstein_details(
    model_a,
    model_b,
    method: str = "auto",
    epsilon: float | None = None,
    *,
    threshold: float = 1e-7,
    max_iterations: int = 20_000,
) -> ConditionalTransport:
    """W_C(μ, ν) = (∫_0^1 W_2(μ_s, ν_s)² ds)^{1/2} between two layered particle measures, with the
    per-interval squared distances and how they were computed.

    **Arguments:**

    - `model_a`, `model_b`: `MeanFieldResNet`s (or `TwoLayerMeanField`s, or arrays (L, M, p) of
      particle positions). The layer counts may differ: μ_s is constant on each layer interval and
      the integral runs over the common refinement.
    - `method`, `epsilon`, `threshold`, `max_iterations`: as for `wasserstein_details`, applied
      per layer pair. With Sinkhorn and equal shapes the layers are computed in one vmapped solve,
      and ε defaults to 10⁻³ × the mean over layers of the mean squared distance.

    **Returns:** a `ConditionalTransport`. Sinkhorn's bias on W_C² is at most
    ε log max(M_a, M_b).
    """
    check_choice("method", method, ("auto", "exact", "sinkhorn"))
    pa, pb = layered_positions(model_a, "model_a"), layered_positions(model_b, "model_b")
    check(
        pa.shape[-1] == pb.shape[-1], "model_b", pb.shape, f"particles of dimension {pa.shape[-1]}"
    )
    la, ma = pa.shape[:2]
    lb, mb = pb.shape[:2]
    how = _choose(method, ma, mb, True)
    if how == "sinkhorn" and la == lb:
        if epsilon is None:
            eps = DEFAULT_RELATIVE_EPSILON * float(
                np.mean([_sq_cost(pa[k], pb[k]).mean() for k in range(la)])
            )
        else:
            check(np.isfinite(epsilon) and epsilon > 0, "epsilon", epsilon, "a positive number")
            eps = float(epsilon)
        wa, wb = jnp.full(ma, 1.0 / ma), jnp.full(mb, 1.0 / mb)
        sq = jax.vmap(lambda x, y: _sinkhorn_sq(x, y, wa, wb, eps, threshold, int(max_iterations)))(
            jnp.asarray(pa), jnp.asarray(pb)
        )
        sq = np.asarray(sq)
        lengths = np.full(la, 1.0 / la)
        bound = eps * math.log(max(ma, mb, 2))
    else:
        parts = _intervals(la, lb)
        cache: dict[tuple[int, int], TransportResult] = {}
        for _, ka, kb in parts:
            if (ka, kb) not in cache:
                cache[(ka, kb)] = wasserstein_details(
                    pa[ka],
                    pb[kb],
                    method=method,
                    epsilon=epsilon,
                    threshold=threshold,
                    max_iterations=max_iterations,
                )
        results = [cache[(ka, kb)] for _, ka, kb in parts]
        sq = np.array([r.squared for r in results])
        lengths = np.array([length for length, _, _ in parts])
        bound = float(lengths @ np.array([r.bias_bound for r in results]))
        eps = max((r.epsilon for r in results if r.epsilon is not None), default=None)
    wc = math.sqrt(max(float(lengths @ sq), 0.0))
    return ConditionalTransport(wc, sq, lengths, how, eps, bound)


def conditional_wasserstein(model_a, model_b, *args, **kwargs) -> float:
    """W_C(μ, ν) = (∫_0^1 W_2(μ_s, ν_s)² ds)^{1/2}: `conditional_wasserstein_details(model_a,
    model_b, ...).distance`, with the same arguments (method, epsilon, threshold,
    max_iterations)."""
    return conditional_wasserstein_details(model_a, model_b, *args, **kwargs).distance
