"""The Hessian of the objective: its full spectrum (dense) or its extremes (Lanczos).

F(θ) = risk_ℓ + l2 · Σ m|θ|² (`gradflow.GradientFlowProblem`, docs/objective.md; the loss ℓ is
`loss=`, 'half_mse' by default), differentiated with respect to the trainable
parameters flattened into one vector θ ∈ R^P (`jax.flatten_util.ravel_pytree` order). The Euclidean
Hessian is returned (what decides whether a critical point is a strict saddle: λ_min < 0).

- Dense (`k=None`): `jax.hessian` of F(θ), P × P, then `eigvalsh`; for P up to a few thousand.
- Lanczos (`k` given): m steps of the Lanczos iteration on Hessian-vector products
  v ↦ ∂_ε ∇F(θ + εv) (forward-over-reverse, `jax.jvp` of `jax.grad`), with *full
  reorthogonalisation* (every new vector is orthogonalised twice against all previous ones), so that
  the Ritz values are those of an orthonormal Krylov basis; on breakdown (β_j ≤ 1e-12·|T|, an
  invariant subspace) the iteration restarts with a fresh random vector orthogonal to the basis,
  which also lets it find repeated eigenvalues. With m = P the Ritz values are the whole spectrum;
  with m < P the extreme ones converge first. The k smallest and k largest Ritz values are returned.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .._problem import GradientFlowProblem
from .._validation import check

__all__ = ["hessian_spectrum", "hessian_matrix"]


def _flat(problem, params):
    """F as a function of the flattened parameters (built inside the compiled functions, so that
    the compilation cache keys on shapes only)."""
    flat, unravel = ravel_pytree(params)
    return flat, lambda x: problem.objective(unravel(x))


@eqx.filter_jit
def _dense(problem, params):
    flat, f = _flat(problem, params)
    return jax.hessian(f)(flat)


def hessian_matrix(model, data, l2: float = 0.0, loss="half_mse") -> np.ndarray:
    """The dense Hessian ∇²F (P × P) with respect to the flattened trainable parameters."""
    problem, params = GradientFlowProblem.from_model(model, data, l2=l2, loss=loss)
    return np.asarray(_dense(problem, params))


@eqx.filter_jit
def lanczos_eigenvalues(problem, params, m, key):
    """The m Ritz values of ∇²F at `params` (a `GradientFlowProblem`'s objective, flattened
    trainable parameters) from m steps of Lanczos with full reorthogonalisation, started at a
    random vector drawn from `key`: the extreme ones converge first (`hessian_spectrum`'s
    matrix-free method)."""
    flat, f = _flat(problem, params)
    grad = jax.grad(f)
    hvp = lambda v: jax.jvp(grad, (flat,), (v,))[1]
    n = flat.shape[0]

    def orthogonalise(w, basis):
        # Rows of `basis` not yet filled are zero, so they do not contribute.
        for _ in range(2):
            w = w - basis.T @ (basis @ w)
        return w

    def fresh(j, basis):
        w = jax.random.normal(jax.random.fold_in(key, j), (n,))
        w = orthogonalise(w, basis)
        return w / jnp.linalg.norm(w)

    q0 = jax.random.normal(key, (n,))
    basis = jnp.zeros((m + 1, n)).at[0].set(q0 / jnp.linalg.norm(q0))
    alpha = jnp.zeros(m)
    beta = jnp.zeros(m)

    def body(j, carry):
        basis, alpha, beta, anorm = carry
        q = basis[j]
        w = hvp(q)
        a = q @ w
        w = orthogonalise(w - a * q, basis)
        b = jnp.linalg.norm(w)
        anorm = jnp.maximum(anorm, jnp.abs(a) + b)
        breakdown = b <= 1e-12 * anorm
        nxt = jnp.where(breakdown, fresh(j + 1, basis), w / jnp.where(breakdown, 1.0, b))
        b = jnp.where(breakdown, 0.0, b)
        return basis.at[j + 1].set(nxt), alpha.at[j].set(a), beta.at[j].set(b), anorm

    basis, alpha, beta, _ = jax.lax.fori_loop(0, m, body, (basis, alpha, beta, jnp.zeros(())))
    t = jnp.diag(alpha) + jnp.diag(beta[:-1], 1) + jnp.diag(beta[:-1], -1)
    return jnp.linalg.eigvalsh(t)


def hessian_spectrum(
    model,
    data,
    k: int | None = None,
    l2: float = 0.0,
    *,
    loss="half_mse",
    iterations: int | None = None,
    key=None,
) -> np.ndarray:
    """Sorted eigenvalues of the Hessian of F with respect to the trainable parameters.

    **Arguments:**

    - `model`, `data`: the point θ and the data (F = risk + l2 · Σ m|θ|²).
    - `k`: None for the whole spectrum (dense `jax.hessian`, P × P); an integer for the k smallest
      and k largest Ritz values of a Lanczos iteration on Hessian-vector products.
    - `l2`: the L2 weight λ of the objective; `loss`: its loss (`gradflow.losses`).
    - `iterations`: Lanczos steps m (default min(P, 2k + 40)); m = P gives the exact spectrum.
    - `key`: `jax.random` key of the Lanczos start vector (default `PRNGKey(0)`).

    **Returns:** a float64 array, increasing: all P eigenvalues (dense), or the 2k extreme Ritz
    values [k smallest, k largest] (all m of them when m ≤ 2k).
    """
    problem, params = GradientFlowProblem.from_model(model, data, l2=l2, loss=loss)
    if k is None:
        h = _dense(problem, params)
        return np.asarray(jnp.linalg.eigvalsh(0.5 * (h + h.T)))
    p = model.parameter_count()
    check(isinstance(k, int | np.integer) and k >= 1, "k", k, "a positive integer or None")
    m = min(p, 2 * int(k) + 40) if iterations is None else int(iterations)
    check(1 <= m <= p, "iterations", iterations, f"an integer in 1..{p} (the parameter count)")
    key = jax.random.PRNGKey(0) if key is None else key
    ritz = np.asarray(lanczos_eigenvalues(problem, params, m, key))
    if m <= 2 * k:
        return ritz
    return np.concatenate([ritz[:k], ritz[-k:]])
