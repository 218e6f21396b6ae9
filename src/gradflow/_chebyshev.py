"""A stabilised explicit solver for the stiff tails of gradient flows: Runge–Kutta–Chebyshev.

Why it suits gradient flows. The Jacobian of θ' = −G⁻¹∇F(θ) is −G⁻¹∇²F, similar to the symmetric
−G^{-1/2}∇²F G^{-1/2}: its spectrum is real. Near a minimum it lies in [−ρ, 0] with ρ the largest
curvature, and the flow's slow exponential tail is stiff: an explicit Runge–Kutta method such as
Tsit5 must keep h ≲ 3.5/ρ however smooth the solution is. The s-stage RKC method (second order,
damped Chebyshev polynomials) is stable on the real interval [−β(s), 0] with β(s) ≈ 0.653 s², so
a step h costs s ≈ √(1.54 hρ) evaluations: the cost per unit time falls as √(ρ/h) as the
error-controlled step grows, instead of staying at ρ/3.5.

Reference: B. P. Sommeijer, L. F. Shampine, J. G. Verwer, "RKC: an explicit solver for parabolic
PDEs", J. Comput. Appl. Math. 88 (1998) 315–326 (the stage recursion, error estimate and
spectral-radius estimate below are theirs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import diffrax
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu

from ._solvers import AbstractCountingSolver

# The damping of the Chebyshev polynomials (w0 = 1 + ε/s²): ε = 2/13 keeps the stability
# polynomial at least ~0.95 in modulus away from 1 inside the interval, so that errors in stiff
# components are damped rather than merely not amplified (Sommeijer et al., §2).
DAMPING = 2.0 / 13.0
# s² ≈ 1.54 hρ + 1 puts hρ inside [−β(s), 0] with β(s) ≈ 0.653 s² for this damping.
STABILITY_CONSTANT = 1.54


def _axpy(a, x, y):
    return jtu.tree_map(lambda xi, yi: a * xi + yi, x, y)


def _norm(x):
    return jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in jtu.tree_leaves(x)))


def _combine(coeffs, trees):
    """Σ_i coeffs[i] · trees[i], leaf by leaf."""
    return jtu.tree_map(
        lambda *leaves: sum(c * leaf for c, leaf in zip(coeffs, leaves, strict=True)), *trees
    )


class RungeKuttaChebyshev(AbstractCountingSolver):
    r"""Second-order Runge–Kutta–Chebyshev (RKC) method for stiff problems whose Jacobian has a
    real (or nearly real) spectrum, such as gradient flows.

    One step from y₀ with size h and s stages (w₀ = 1 + ε/s², w₁ = T_s'(w₀)/T_s''(w₀),
    b_j = T_j''(w₀)/T_j'(w₀)², b₀ = b₁ = b₂, a_j = 1 − b_j T_j(w₀)):

    Y₁ = y₀ + b₁w₁ h f(Y₀),
    Y_j = (1 − μ_j − ν_j) y₀ + μ_j Y_{j−1} + ν_j Y_{j−2} + μ̃_j h f(Y_{j−1}) − a_{j−1} μ̃_j h f(Y₀),

    with μ_j = 2b_j w₀/b_{j−1}, ν_j = −b_j/b_{j−2}, μ̃_j = 2b_j w₁/b_{j−1}; y₁ = Y_s. The error
    estimate is (12(y₀ − y₁) + 6h(f(y₀) + f(y₁)))/15 (local order 3), and f(y₁) is reused by the
    next step. The number of stages is chosen per step from the step size and an estimate ρ of the
    spectral radius: s = ⌈√(1 + 1.54 hρ)⌉ (at least 2). ρ is tracked by a nonlinear power
    iteration on finite differences of f, many iterations at the start and one per step after
    (warm-started, so it keeps converging along the trajectory), times a safety factor.

    Each accepted step costs s + 1 evaluations of f (s − 1 stages, f(y₁), one power iteration).
    Dense output is cubic Hermite. Use with `diffrax.PIDController` (error order 3).

    **Arguments:**

    - `rho_safety`: factor on the estimated spectral radius (default 1.2, as in RKC).
    - `initial_power_iterations`: power iterations at the first step (default 30).
    - `max_stages`: the largest s; a step that needs more is rejected (its error is set to ∞)
      so that the controller shrinks it.
    """

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., diffrax.AbstractLocalInterpolation]] = (
        diffrax.ThirdOrderHermitePolynomialInterpolation.from_k
    )

    rho_safety: float = 1.2
    initial_power_iterations: int = 30
    max_stages: int = 2000

    def order(self, terms):
        return 2

    def error_order(self, terms):
        return 3

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)

    def evaluations(self, solver_state):
        """Evaluations since `init` by accepted steps: 1 + the initial power iterations at
        `init`, then s + 1 per accepted step."""
        return solver_state[3]

    # solver state: (f(y), power-iteration direction, spectral radius estimate, evaluations)

    def init(self, terms, t0, t1, y0, args):
        f0 = terms.vf(t0, y0, args)
        leaves, treedef = jtu.tree_flatten(y0)
        keys = jax.random.split(jax.random.PRNGKey(0), max(len(leaves), 1))
        # A fixed pseudo-random start: f(y₀) itself can be orthogonal to the stiffest direction
        # (e.g. at a symmetric initialisation).
        direction = jtu.tree_unflatten(
            treedef,
            [
                jax.random.normal(k, jnp.shape(x), jnp.result_type(x))
                for k, x in zip(keys[: len(leaves)], leaves, strict=True)
            ],
        )

        def body(_, carry):
            direction, _ = carry
            return _power_iteration(terms, t0, y0, args, f0, direction)

        direction, rho = lax.fori_loop(
            0,
            self.initial_power_iterations,
            body,
            (direction, jnp.zeros((), jnp.result_type(*leaves))),
        )
        evaluations = jnp.asarray(1 + self.initial_power_iterations, dtype=jnp.int64)
        return f0, direction, rho, evaluations

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del made_jump
        f0, direction, rho, evaluations = solver_state
        direction, rho_new = _power_iteration(terms, t0, y0, args, f0, direction)
        # The power iteration's Rayleigh-like estimate approaches ρ from below; keeping the
        # running maximum (a spectral radius rarely jumps down) avoids trusting one noisy update.
        rho = jnp.maximum(rho_new, 0.9 * rho)
        h = t1 - t0
        needed = jnp.ceil(jnp.sqrt(1.0 + STABILITY_CONSTANT * h * self.rho_safety * rho))
        stages = jnp.clip(needed, 2, self.max_stages).astype(jnp.int32)
        y1 = _rkc_stages(terms, t0, h, y0, args, f0, stages)
        f1 = terms.vf(t1, y1, args)
        y_error = jtu.tree_map(
            lambda a, b, fa, fb: (12.0 * (a - b) + 6.0 * h * (fa + fb)) / 15.0, y0, y1, f0, f1
        )
        too_stiff = needed > self.max_stages
        y_error = jtu.tree_map(lambda e: jnp.where(too_stiff, jnp.inf, e), y_error)
        k = jtu.tree_map(lambda a, b: jnp.stack([h * a, h * b]), f0, f1)
        dense_info = dict(y0=y0, y1=y1, k=k)
        evaluations = evaluations + stages.astype(evaluations.dtype) + 1
        return (
            y1,
            y_error,
            dense_info,
            (f1, direction, rho, evaluations),
            diffrax.RESULTS.successful,
        )


def _power_iteration(terms, t, y, args, fy, direction):
    """One step of the nonlinear power method: ρ ≈ |f(y + δv) − f(y)|/δ with |v| = 1 and δ a
    relative perturbation of y; returns the new direction (f(y + δv) − f(y), normalised)."""
    dtype = jnp.result_type(*jtu.tree_leaves(y))
    eps = jnp.sqrt(jnp.finfo(dtype).eps)
    delta = eps * jnp.maximum(_norm(y), 1.0)
    vnorm = jnp.maximum(_norm(direction), jnp.finfo(dtype).tiny)
    shifted = _axpy(delta / vnorm, direction, y)
    diff = jtu.tree_map(lambda a, b: a - b, terms.vf(t, shifted, args), fy)
    dnorm = _norm(diff)
    # A zero difference (linear f with the direction in its kernel) keeps the old direction.
    new_direction = jtu.tree_map(
        lambda d, v: jnp.where(dnorm > 0, d / jnp.maximum(dnorm, jnp.finfo(dtype).tiny), v / vnorm),
        diff,
        direction,
    )
    return new_direction, dnorm / delta


def _shift(c: dict, **new) -> dict:
    """The three-term recurrence's carry one stage on: each `name_prev` of `c` becomes
    `name_prev2`, and `new[name]` the new `name_prev`."""
    out = {f"{k}_prev": v for k, v in new.items()}
    out.update({f"{k}_prev2": c[f"{k}_prev"] for k in new})
    return out


def _rkc_stages(terms, t0, h, y0, args, f0, stages):
    """Y_s of the damped second-order Chebyshev recursion (Sommeijer et al. 1998, eq. 2.7)."""
    s = stages.astype(h.dtype if hasattr(h, "dtype") else jnp.float64)
    w0 = 1.0 + DAMPING / s**2
    # w1 = T_s'(w0)/T_s''(w0) in closed form (T_s(cosh θ) = cosh sθ).
    t1_ = w0**2 - 1.0
    t2_ = jnp.sqrt(t1_)
    arg = s * jnp.log(w0 + t2_)
    w1 = jnp.sinh(arg) * t1_ / (jnp.cosh(arg) * s * t2_ - w0 * jnp.sinh(arg))
    b = 1.0 / (2.0 * w0) ** 2  # b0 = b1 = b2 = T_2''/T_2'² = 1/(4w0²)
    mu_tilde = w1 * b
    y_prev = _axpy(h * mu_tilde, f0, y0)  # Y_1
    carry = dict(
        y_prev=y_prev,
        y_prev2=y0,
        theta_prev=mu_tilde,  # c_1: the stage's time fraction
        theta_prev2=jnp.zeros_like(mu_tilde),
        b_prev=b,
        b_prev2=b,
        z_prev=w0,  # T_1(w0)
        z_prev2=jnp.ones_like(w0),
        dz_prev=jnp.ones_like(w0),  # T_1'
        dz_prev2=jnp.zeros_like(w0),
        d2z_prev=jnp.zeros_like(w0),  # T_1''
        d2z_prev2=jnp.zeros_like(w0),
    )

    def body(_, c):
        z = 2.0 * w0 * c["z_prev"] - c["z_prev2"]
        dz = 2.0 * w0 * c["dz_prev"] - c["dz_prev2"] + 2.0 * c["z_prev"]
        d2z = 2.0 * w0 * c["d2z_prev"] - c["d2z_prev2"] + 4.0 * c["dz_prev"]
        b_j = d2z / dz**2
        a_prev = 1.0 - c["z_prev"] * c["b_prev"]
        mu = 2.0 * w0 * b_j / c["b_prev"]
        nu = -b_j / c["b_prev2"]
        mu_t = mu * w1 / w0
        f = terms.vf(t0 + h * c["theta_prev"], c["y_prev"], args)
        y = _combine(
            (1.0 - mu - nu, mu, nu, h * mu_t, -h * mu_t * a_prev),
            (y0, c["y_prev"], c["y_prev2"], f, f0),
        )
        theta = mu * c["theta_prev"] + nu * c["theta_prev2"] + mu_t * (1.0 - a_prev)
        return _shift(c, y=y, theta=theta, b=b_j, z=z, dz=dz, d2z=d2z)

    carry = lax.fori_loop(2, stages + 1, body, carry)
    return carry["y_prev"]
