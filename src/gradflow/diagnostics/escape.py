"""Symmetry orbits, lower bounds and flow probes of escape at critical points
(docs/critical-points.md).

**Rescaling orbit of a deep linear network.** The maps W_k ↦ G_k W_k G_{k−1}⁻¹ (G_0 = G_H = I,
G_k ∈ GL(n_k)) keep the product W = W_H⋯W_1, hence F. Differentiating at G = I along
G_k = I + s X_k gives the tangent (X_k W_k − W_k X_{k−1})_{k=1..H} (X_0 = X_H = 0); the orbit's
dimension at the point is the rank of this linear map of (X_1, …, X_{H−1}) ∈ Π gl(n_k)
(`rescaling_tangents`, `orbit_dimension`). Hand count: depth 2, hidden width n_1, product of rank
r, balanced: n_1² − (n_1 − r)² (the X with X W_1 = 0 and W_2 X = 0 act trivially); at the origin 0.
At a critical point F is constant on the orbit, so its tangent lies in the Hessian's null space;
the null space can be larger (at the origin with H ≥ 3 the Hessian vanishes).

**Flow probe** (`escape_probe`). Where the Hessian has a null space that no known symmetry
explains, its sign says nothing, and a ray expansion F(θ + εd) can miss escapes along curves. The
probe flows from θ + εd for unit directions d (in the flow's metric) and several ε and records the
escape time T(ε): the first time F falls `drop` below F(θ) (located on the dense output). For an
escape of order p (F decreasing like −c ε^p along the way out) the time scales as
T ~ log(1/ε)/λ for p = 2 and T ~ C ε^{−(p−2)} for p ≥ 3; the estimate is the log–log slope a
of T against 1/ε: `fitted_order` = 2 + a where a ≥ ½ (a power law), and 2 where a < ½ (a
logarithm's log–log slope, 1/log(1/ε), is below ½ for small ε). It is an estimate
(finite ε, a finite horizon), reported as such; no escape within `t1` is not a proof of stability.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .._result import Record
from .._validation import check
from ..losses import MSE, HalfMSE, as_loss
from ..models import AbstractModel

__all__ = [
    "EscapeEstimate",
    "escape_probe",
    "rescaling_tangents",
    "orbit_dimension",
    "symmetry_basis",
    "lower_bound_of",
]


def _flat_params(model):
    params, static = eqx.partition(model, model.trainable())
    flat, unravel = ravel_pytree(params)
    return flat, lambda x: eqx.combine(unravel(x), static)


def rescaling_tangents(model) -> np.ndarray:
    """The tangents of the rescaling orbit of a `DeepLinear` at `model`: a (P, Σ_{k<H} n_k²) matrix
    whose column (k, a, b) is the flattened (X W_k, −W_{k+1} X) for X = E_ab ∈ gl(n_k) (module
    docstring). Its rank is `orbit_dimension(model)`."""
    from ..models.deep_linear import DeepLinear

    check(isinstance(model, DeepLinear), "model", type(model).__name__, "a DeepLinear network")
    if len(model.weights) < 2:
        return np.zeros((model.parameter_count(), 0))
    return np.asarray(_tangent_matrix(tuple(jnp.asarray(w) for w in model.weights)))


@jax.jit
def _tangent_matrix(weights):
    """The Jacobian of the linearised action (compiled: shapes fix the hidden widths)."""
    from ..models.deep_linear import DeepLinear

    hidden = [w.shape[0] for w in weights[:-1]]

    def action(xs_flat):
        xs, start = [], 0
        for n in hidden:
            xs.append(xs_flat[start : start + n * n].reshape(n, n))
            start += n * n
        full = [None] + xs + [None]  # X_0 = X_H = 0
        tangent = []
        for k, w in enumerate(weights, start=1):
            t = jnp.zeros_like(w)
            if full[k] is not None:
                t = t + full[k] @ w
            if full[k - 1] is not None:
                t = t - w @ full[k - 1]
            tangent.append(t)
        return _flat_params(DeepLinear.from_weights(tangent))[0]

    return jax.jacfwd(action)(jnp.zeros(sum(n * n for n in hidden)))


def _rank(matrix: np.ndarray, rtol: float = 1e-10) -> tuple[int, np.ndarray]:
    if matrix.size == 0:
        return 0, np.zeros((matrix.shape[0], 0))
    u, s, _ = np.linalg.svd(matrix, full_matrices=False)
    r = int(np.sum(s > rtol * max(s[0], 1e-300))) if s.size else 0
    return r, u[:, :r]


def orbit_dimension(model) -> int:
    """The dimension of the rescaling orbit through a `DeepLinear` (rank of `rescaling_tangents`)."""
    return _rank(rescaling_tangents(model))[0]


def symmetry_basis(model, symmetries, system=None) -> np.ndarray:
    """An orthonormal basis (P, o) of the known symmetry tangents at `model`, in the scaled
    coordinates φ = m^{1/2}θ of `system` (θ itself without one).

    `symmetries`: 'auto' (the rescaling orbit for a `DeepLinear`, nothing otherwise), None, or a
    function model → list of tangent models / parameter pytrees (or a (P, k) array)."""
    from ..models.deep_linear import DeepLinear

    if symmetries is None:
        tangents = None
    elif symmetries == "auto":
        tangents = rescaling_tangents(model) if isinstance(model, DeepLinear) else None
    elif callable(symmetries):
        given = symmetries(model)
        if isinstance(given, np.ndarray | jax.Array):
            tangents = np.asarray(given, float)
        else:
            cols = []
            for t in given:
                if isinstance(t, AbstractModel):  # a tangent given as a model
                    t = eqx.partition(t, model.trainable())[0]
                cols.append(np.asarray(ravel_pytree(t)[0]))
            tangents = np.stack(cols, axis=1) if cols else None
    else:
        check(False, "symmetries", symmetries, "'auto', None or a function model -> tangents")
    p = model.parameter_count()
    if tangents is None:
        return np.zeros((p, 0))
    check(
        tangents.ndim == 2 and tangents.shape[0] == p,
        "symmetries",
        f"tangents of shape {tangents.shape}",
        f"tangents with {p} entries (the trainable parameter count)",
    )
    if system is not None:
        tangents = tangents * np.asarray(system.root_m)[:, None]
    return _rank(tangents)[1]


def lower_bound_of(model, data, loss, l2: float):
    """A lower bound of F that can be attained, or None: 0 for squared losses (F ≥ 0); for a linear
    network with l2 = 0, the global minimum value of its risk (the top min(k*, r) modes learned)."""
    from ..analytic import critical_value, teacher_modes
    from ..models import AbstractLinearModel, DeepLinear

    loss = as_loss(loss)
    if not isinstance(loss, HalfMSE | MSE):
        return None
    if isinstance(model, AbstractLinearModel) and float(l2) == 0.0:
        widths = model.widths if isinstance(model, DeepLinear) else model.to_layers().widths
        s = teacher_modes(data)[1]
        top = tuple(range(min(min(widths), s.size)))
        factor = 1.0 if isinstance(loss, HalfMSE) else 2.0 / data.out_dim
        return factor * critical_value(data, top)
    return 0.0


@dataclasses.dataclass(frozen=True)
class EscapeEstimate(Record):
    """A flow probe's escape times (see the module docstring; an estimate, not a proof).

    `eps` (the perturbation sizes), `times` (directions × eps: escape times, inf where the flow
    did not escape by `t1`), `escaped` (any finite), `direction` (the flat θ-direction with the
    most escapes, None if none), `drop` (the decrease of F that counts as escape), `t1`,
    `fitted_order` (2, or 2 + log–log slope; NaN with fewer than two finite times), `fit` ('log'
    for T linear in log(1/ε), 'power' for T ∝ ε^{−(p−2)}, '' without a fit).
    """

    eps: np.ndarray
    times: np.ndarray
    escaped: bool
    drop: float
    t1: float
    fitted_order: float
    fit: str
    direction: np.ndarray | None = dataclasses.field(default=None, repr=False)


def _fit_order(eps, times) -> tuple[float, str]:
    ok = np.isfinite(times)
    if ok.sum() < 2:
        return float("nan"), ""
    slope = float(np.polyfit(np.log(1.0 / eps[ok]), np.log(times[ok]), 1)[0])
    # T = a log(1/ε) + b has log–log slope 1/log(1/ε·e^{b/a}) < 1/2 for small ε; T ∝ ε^{−(p−2)}
    # has slope p − 2 ≥ 1
    if slope < 0.5:
        return 2.0, "log"
    return 2.0 + slope, "power"


def escape_probe(
    model,
    data,
    directions,
    eps=(1e-2, 3e-3, 1e-3),
    *,
    t1: float = 1e4,
    drop: float | None = None,
    geometry="euclidean",
    loss="half_mse",
    l2: float = 0.0,
    rtol: float = 1e-9,
    atol: float = 1e-12,
    max_steps: int = 50_000,
) -> EscapeEstimate:
    """Flow from model + ε·d for each direction d (flat θ-vectors, or models/pytrees of the
    parameters) and each ε; return the `EscapeEstimate` (module docstring).

    `drop`: the decrease of F counted as an escape (default 1e-2·(F − lower bound), or
    1e-2·max(|F|, 1e-12) without a bound). The flows use `gf.flow(..., stop_below=F − drop)`.
    """
    from .._flow import flow
    from .._problem import GradientFlowProblem

    flat, build = _flat_params(model)
    problem, params = GradientFlowProblem.from_model(
        model, data, geometry=geometry, loss=loss, l2=l2
    )
    value = float(problem.objective(params))
    if drop is None:
        bound = lower_bound_of(model, data, loss, l2)
        gap = value - bound if bound is not None else 0.0
        drop = 1e-2 * (gap if gap > 1e-12 else max(abs(value), 1e-12))
    eps = np.atleast_1d(np.asarray(eps, float))
    check(bool(np.all(eps > 0)), "eps", eps.tolist(), "positive perturbation sizes")
    dirs = []
    for d in directions:
        if isinstance(d, AbstractModel):
            d = _flat_params(d)[0]
        elif not isinstance(d, np.ndarray | jax.Array):
            d = ravel_pytree(d)[0]
        dirs.append(jnp.asarray(d, float))
    times = np.full((len(dirs), eps.size), np.inf)
    for i, d in enumerate(dirs):
        for j, e in enumerate(eps):
            traj = flow(
                build(flat + e * d),
                data,
                t1,
                geometry=geometry,
                loss=loss,
                l2=l2,
                rtol=rtol,
                atol=atol,
                saveat=[0.0, t1],
                stop_below=value - drop,
                max_steps=max_steps,
                throw=False,
            )
            stop = traj.info.get("stopped_at")
            if stop is not None:
                times[i, j] = stop
    counts = np.isfinite(times).sum(axis=1)
    best = int(np.argmax(counts)) if dirs else 0
    order, fit = _fit_order(eps, times[best]) if dirs else (float("nan"), "")
    return EscapeEstimate(
        eps=eps,
        times=times,
        escaped=bool(np.isfinite(times).any()),
        drop=float(drop),
        t1=float(t1),
        fitted_order=order,
        fit=fit,
        direction=np.asarray(dirs[best]) if dirs and counts[best] > 0 else None,
    )
