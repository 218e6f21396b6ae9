"""Polish a point to a critical point of F and classify it (`gf.critical_point`, docs/critical-points.md).

**The solve.** Write φ = m^{1/2} θ for the trainable parameters θ (flattened) and the masses m of
the flow's metric (m = 1 for the Euclidean geometry), and r(φ) = m^{−1/2} ∇F(θ): the gradient in
the metric, whose norm is the `grad_norm` a flow reports. Critical points are the zeros of r, and
r's Jacobian K = m^{−1/2} ∇²F m^{−1/2} is symmetric. Levenberg–Marquardt on r = 0 takes the step

    δ = −(K² + μ I)⁻¹ K r,      μ = ν |r|,

the minimiser of |r + Kδ|² + μ|δ|². The choice μ ∝ |r| (Yamashita–Fukushima, Fan–Yuan) gives
quadratic convergence wherever the zeros form a smooth manifold and |r| bounds the distance to it
(a "local error bound"): degenerate critical sets such as symmetry orbits or zero-risk manifolds
are handled without knowing them, because the damping fixes the component of δ along the null
space of K. At non-strict points, where F grows slower than quadratically off the critical set,
the error bound fails and the convergence is only linear. A step is accepted when the actual
decrease of |r|² is at least 1e-4 of the one the linear model predicts; ν shrinks (÷4) after
good steps and grows (×4) after poor or rejected ones.

- `method='dense'`: K is formed (forward-over-reverse autodiff) and diagonalised once per
  iteration, K = QΛQᵀ, so δ = −Q diag(λ/(λ² + μ)) Qᵀ r for every trial μ (P up to a few thousand).
- `method='krylov'`: matrix-free; (K² + μI)δ = −Kr is solved by conjugate gradients (lineax) on
  Hessian-vector products, two per CG step.

**The spectrum and the kind.** At the polished point, the known symmetry directions (the tangent
space T of a group orbit along which F is constant; deep linear networks: the rescalings
W_k ↦ G_k W_k G_{k−1}⁻¹, `symmetry_tangents`) lie in the null space of K. They are quotiented out:
the spectrum reported is that of K restricted to T^⊥ (PᵀKP for an orthonormal basis P of T^⊥);
by Sylvester's law its inertia is that of ∇²F on T^⊥. Counting with the zero tolerance
|λ| ≤ tol·max|λ|:

- a negative eigenvalue → 'strict_saddle' (escape of order 2 along its eigenvector);
- none and no zero → 'minimum' (T = 0) or 'degenerate_minimum' (a non-trivial orbit of minima);
- zeros left over (a null space no known symmetry explains): 'degenerate_minimum' if F is at a
  lower bound of F (0 for a squared loss; the deep-linear global minimum value when known), else
  a flow probe along the leftover directions (`diagnostics.escape_probe`): an escape found →
  'nonstrict_saddle', none → 'inconclusive' (never a guess).
"""

from __future__ import annotations

import dataclasses
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jax.flatten_util import ravel_pytree

from ._problem import GradientFlowProblem
from ._result import Record, not_json
from ._validation import check, check_choice
from .losses import as_loss

__all__ = ["CriticalPointResult", "critical_point", "KINDS"]

KINDS = ("minimum", "degenerate_minimum", "strict_saddle", "nonstrict_saddle", "inconclusive")


@dataclasses.dataclass(frozen=True)
class CriticalPointResult(Record):
    """A polished critical point and its classification (see `critical_point`).

    `model` (at the point), `value` (F there), `grad_norm` (|∇F|_G after), `grad_norm_start`
    (before), `converged` (grad_norm ≤ gtol), `iterations` (LM iterations, accepted or not),
    `history` (|∇F|_G after each iteration), `method`, `kind` (one of `KINDS`), `certificate` (what
    decided it: 'hessian', 'lower_bound', 'escape' or 'none'), `orbit_dimension` (rank of the known
    symmetry tangents), `eigenvalues` (of the Hessian in the metric on the orbit's complement:
    all of them dense, the Lanczos extremes matrix-free), `lambda_min`, `lambda_max`, `n_negative`,
    `n_zero`, `n_positive` (counts in `eigenvalues`), `unexplained_null_dimension` (= n_zero, dense
    only), `escape_order` (2 for a strict saddle, None otherwise: a probe's fit is in `escape`),
    `escape_direction` (flat θ-vector, unit in the metric; None if none known), `escape` (the
    `EscapeEstimate` of the flow probe, if one ran), `solve_seconds` (wall time of the
    Levenberg–Marquardt solve alone, without the classification).
    """

    value: float
    converged: bool
    history: np.ndarray = dataclasses.field(repr=False)
    method: str = "dense"
    kind: str = "inconclusive"
    certificate: str = "none"
    orbit_dimension: int = 0
    eigenvalues: np.ndarray = dataclasses.field(default=None, repr=False)
    lambda_min: float = float("nan")
    lambda_max: float = float("nan")
    n_negative: int = 0
    n_zero: int = 0
    n_positive: int = 0
    unexplained_null_dimension: int | None = None
    escape_order: int | None = None
    escape_direction: np.ndarray | None = dataclasses.field(default=None, repr=False)
    escape: object = None
    solve_seconds: float = float("nan")
    model: object = not_json(default=None, repr=False)

    DERIVED = ("grad_norm", "grad_norm_start", "iterations")

    @property
    def grad_norm(self) -> float:
        """|∇F|_G at the point (after the last iteration)."""
        return float(self.history[-1])

    @property
    def grad_norm_start(self) -> float:
        """|∇F|_G at the start."""
        return float(self.history[0])

    @property
    def iterations(self) -> int:
        """Levenberg–Marquardt iterations (each records one entry of `history`)."""
        return len(self.history) - 1


# ---- the residual r(φ) = m^{-1/2} ∇F and its Jacobian -----------------------------------------


class _System(eqx.Module):
    """r(φ) and friends for one problem, as pure functions of the flat scaled parameters φ."""

    problem: GradientFlowProblem
    template: object  # the parameters' pytree: unravelled inside traces (no static closure)
    root_m: jax.Array

    def theta(self, phi):
        return ravel_pytree(self.template)[1](phi / self.root_m)

    def value(self, phi):
        return self.problem.objective(self.theta(phi))

    def residual(self, phi):
        g = jax.grad(self.problem.objective)(self.theta(phi))
        return ravel_pytree(g)[0] / self.root_m

    def jvp(self, phi, v):
        return jax.jvp(self.residual, (phi,), (v,))[1]


@eqx.filter_jit
def _residual(system, phi):
    return system.residual(phi)


@eqx.filter_jit
def _value_residual(system, phi):
    return system.value(phi), system.residual(phi)


@eqx.filter_jit
def _dense_jacobian(system, phi):
    k = jax.jacfwd(system.residual)(phi)
    return jnp.linalg.eigh(0.5 * (k + k.T))


@eqx.filter_jit
def _krylov_step(system, phi, r, mu):
    jv = lambda v: system.jvp(phi, v)  # noqa: E731
    op = lx.FunctionLinearOperator(
        lambda v: jv(jv(v)) + mu * v,
        jax.ShapeDtypeStruct(phi.shape, phi.dtype),
        tags=lx.positive_semidefinite_tag,
    )
    rhs = -jv(r)
    sol = lx.linear_solve(
        op, rhs, lx.CG(rtol=1e-12, atol=1e-30, max_steps=4 * phi.size), throw=False
    )
    delta = sol.value
    return delta, r + jv(delta)


def _setup(model, data, geometry, loss, l2):
    problem, params = GradientFlowProblem.from_model(
        model, data, geometry=geometry, loss=loss, l2=l2
    )
    flat, _ = ravel_pytree(params)
    masses = jax.tree_util.tree_map(
        lambda p, m: jnp.broadcast_to(m, p.shape), params, problem.metric_masses
    )
    root_m = jnp.sqrt(ravel_pytree(masses)[0])
    return problem, _System(problem, params, root_m), flat * root_m


def _levenberg_marquardt(system, phi, method, gtol, max_iterations):
    """The damped Gauss–Newton iteration of the module docstring; returns (φ, history): |r|
    at the start and after each iteration."""
    r = np.asarray(_residual(system, phi))
    norm = float(np.linalg.norm(r))
    history, nu, iterations, rejected = [norm], 1e-2, 0, 0
    while norm > gtol and iterations < max_iterations:
        iterations += 1
        if method == "dense":
            lam, q = (np.asarray(a) for a in _dense_jacobian(system, phi))
            qr = q.T @ r
        accepted = False
        for _ in range(12):  # trial damping values within one iteration
            mu = nu * norm
            if method == "dense":
                delta = -q @ (lam / (lam**2 + mu) * qr)
                predicted = np.linalg.norm(r + q @ (lam * (q.T @ delta)))
            else:
                step = _krylov_step(system, phi, jnp.asarray(r), jnp.asarray(mu))
                delta, lin = (np.asarray(a) for a in step)
                predicted = float(np.linalg.norm(lin))
            trial = phi + jnp.asarray(delta)
            r_new = np.asarray(_residual(system, trial))
            new = float(np.linalg.norm(r_new))
            gain = norm**2 - predicted**2
            rho = (norm**2 - new**2) / gain if gain > 0 else -1.0
            if np.isfinite(new) and new < norm and rho > 1e-4:
                accepted = True
                nu = nu / 4 if rho > 0.75 else (nu * 4 if rho < 0.25 else nu)
                nu = max(nu, 1e-12)
                phi, r, norm = trial, r_new, new
                break
            nu *= 4
        history.append(norm)
        rejected = 0 if accepted else rejected + 1
        if rejected >= 2:  # no step decreases |r|: the roundoff floor
            break
    return phi, np.array(history)


def critical_point(
    model,
    data,
    *,
    geometry="euclidean",
    loss="half_mse",
    l2: float = 0.0,
    method: str = "auto",
    gtol: float = 1e-12,
    max_iterations: int = 50,
    symmetries="auto",
    tol: float = 1e-8,
    lower_bound="auto",
    probe: bool = True,
    probe_eps: float = 1e-2,
    probe_t1: float = 1e4,
    lanczos_k: int = 8,
) -> CriticalPointResult:
    """Polish `model` to a critical point of F = risk + l2·Σm|θ|² and classify it.

    See the module docstring for the mathematics (Levenberg–Marquardt on the gradient system,
    the quotient by known symmetries, the kinds).

    **Arguments:**

    - `model`, `data`: the start (typically a flow's end, any `gf.models` model including
      `Wrapped`) and its `Dataset`.
    - `geometry`, `loss`, `l2`: the objective and the metric, as in `gf.flow`. Losses that attain
      no minimum (cross-entropy, logistic) are refused: their flows have no critical point to end at.
    - `method`: 'dense', 'krylov' (matrix-free) or 'auto' (dense up to 3000 parameters).
    - `gtol`: the target for |∇F|_G (absolute); `max_iterations`: the LM budget.
    - `symmetries`: 'auto' (deep linear networks: the rescaling orbit; others: none), None, or a
      function model → list of tangent models/pytrees (directions along which F is constant).
    - `tol`: relative zero tolerance for eigenvalues (|λ| ≤ tol·max|λ|).
    - `lower_bound`: a known lower bound of F ('auto': 0 for squared losses, and for a deep linear
      network with l2 = 0 its global minimum value), or None.
    - `probe`, `probe_eps`, `probe_t1`: the flow probe for unexplained null spaces.
    - `lanczos_k`: number of extreme eigenvalues for `method='krylov'`.

    **Returns:** a `CriticalPointResult`. **Raises:** `ConfigError` for invalid arguments.
    """
    from ._loss_checks import require_minimum
    from .diagnostics.escape import escape_probe, lower_bound_of, symmetry_basis

    loss = as_loss(loss)
    require_minimum(loss, "critical_point", "looks for a point where the gradient vanishes")
    check_choice("method", method, ("auto", "dense", "krylov"))
    check(gtol >= 0, "gtol", gtol, "a number ≥ 0")
    check(int(max_iterations) >= 1, "max_iterations", max_iterations, "a positive integer")
    check(0 < tol < 1, "tol", tol, "a number in (0, 1)")
    problem, system, phi0 = _setup(model, data, geometry, loss, l2)
    p = phi0.size
    if method == "auto":
        method = "dense" if p <= 3000 else "krylov"
    started = time.perf_counter()
    phi, history = _levenberg_marquardt(system, phi0, method, float(gtol), int(max_iterations))
    solve_seconds = time.perf_counter() - started
    value = float(_value_residual(system, phi)[0])
    point = problem.model(system.theta(phi))
    basis = symmetry_basis(point, symmetries, system)  # (P, o), orthonormal, in φ coordinates
    if method == "dense":
        lam, q = (np.asarray(a) for a in _dense_jacobian(system, phi))
        # Keep only tangents that are null to the zero tolerance: near a degenerate part of an
        # orbit (small singular values of the action) a normalised tangent is null only up to
        # O(|∇F|/σ²), and quotienting it could hide a negative direction.
        scale = float(np.max(np.abs(lam))) if lam.size else 0.0
        basis = basis[:, np.linalg.norm((q * lam) @ (q.T @ basis), axis=0) <= tol * scale]
    o = basis.shape[1]
    fields = dict(
        value=value,
        converged=bool(history[-1] <= gtol),
        history=history,
        method=method,
        solve_seconds=solve_seconds,
        orbit_dimension=o,
        model=point,
    )
    bound = lower_bound_of(point, data, loss, l2) if lower_bound == "auto" else lower_bound
    at_bound = bound is not None and value - bound <= 1e-9 * max(1.0, abs(bound))
    if method == "dense":
        comp = np.linalg.svd(np.eye(p) - basis @ basis.T)[0][:, : p - o] if o else np.eye(p)
        kq = comp.T @ (q * lam) @ q.T @ comp
        eig, vec = np.linalg.eigh(0.5 * (kq + kq.T))
        vec = comp @ vec
    else:
        from .diagnostics import lanczos_eigenvalues

        m = min(p, 2 * lanczos_k + 40)
        eig, vec = (
            np.asarray(lanczos_eigenvalues(problem, system.theta(phi), m, jax.random.PRNGKey(0))),
            None,
        )
    scale = float(np.max(np.abs(eig))) if eig.size else 0.0
    n_neg = int(np.sum(eig < -tol * scale))
    n_pos = int(np.sum(eig > tol * scale))
    n_zero = int(eig.size - n_neg - n_pos)
    fields.update(
        eigenvalues=eig,
        lambda_min=float(eig[0]) if eig.size else float("nan"),
        lambda_max=float(eig[-1]) if eig.size else float("nan"),
        n_negative=n_neg,
        n_zero=n_zero,
        n_positive=n_pos,
        unexplained_null_dimension=n_zero if method == "dense" else None,
    )
    root_m = np.asarray(system.root_m)
    if n_neg > 0:
        d = vec[:, 0] / root_m if vec is not None else None
        fields.update(kind="strict_saddle", certificate="hessian", escape_order=2)
        fields["escape_direction"] = None if d is None else d / np.linalg.norm(d * root_m)
    elif n_zero == 0 and method == "dense":
        fields.update(kind="minimum" if o == 0 else "degenerate_minimum", certificate="hessian")
    elif at_bound:
        fields.update(kind="degenerate_minimum", certificate="lower_bound")
    elif probe and vec is not None:
        # random unit combinations of the centre basis (seeded): a basis vector itself can lie in
        # a critical subset (at the deep-linear origin, e.g. one entry of W_1 alone)
        centre = vec[:, n_neg : n_neg + n_zero]
        mix = np.random.default_rng(0).standard_normal((n_zero, 2))
        combos = centre @ (mix / np.linalg.norm(mix, axis=0))
        directions = [combos[:, i] / root_m for i in range(2)]
        est = escape_probe(
            point,
            data,
            [s * d for d in directions for s in (1.0, -1.0)],
            eps=(probe_eps,),
            t1=probe_t1,
            geometry=geometry,
            loss=loss,
            l2=l2,
        )
        fields["escape"] = est
        if est.escaped:
            fields.update(kind="nonstrict_saddle", certificate="escape")
            fields["escape_direction"] = est.direction
    return CriticalPointResult(**fields)
