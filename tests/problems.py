"""Canonical small problems shared by the tests, each with what is known about it exactly.

- `quadratic()`: a one-layer linear model f(x) = Bx on data with Σ_xx ≠ I. Its risk is quadratic,
  F = ½tr(BΣ_xxBᵀ) − tr(BΣ_yxᵀ) + ½trΣ_yy (+ λ|B|²), so the flow B' = Σ_yx − B(Σ_xx + 2λI) has the
  matrix-exponential solution `quadratic_exact` B(t) = B* + (B₀ − B*) exp(−(Σ_xx + 2λI)t),
  B* = Σ_yx(Σ_xx + 2λI)⁻¹.
- `deep_linear()`: a depth-2 linear network (3 → 4 → 2) on whitened data with two modes.
- `random_deep_linear(seed, widths)`: a `DeepLinear` with Gaussian layers (numpy draws, so that
  property-based tests compile nothing per draw).
- `trajectory_through(models, ts, data)`: a `Trajectory` through given models at given times,
  without a solve (F and |∇F| evaluated at each, or zeros without data); with the exact balanced
  solution (`balanced_trajectory`) it is an exact gradient-flow trajectory.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import scipy.linalg

import gradflow as gf


def quadratic():
    data = gf.data.linear_teacher(jax.random.PRNGKey(0), 3, 2, 20, [1.5, 0.4], whiten=False)
    model = gf.models.DeepLinear([3, 2], jax.random.PRNGKey(1), init_scale=1.0)
    return model, data


def quadratic_exact(model, data, ts, l2=0.0):
    m = data.moments()
    a = np.asarray(m.sxx) + 2 * l2 * np.eye(3)
    b_star = np.asarray(m.syx) @ np.linalg.inv(a)
    b0 = np.asarray(model.weights[0])
    return np.stack([b_star + (b0 - b_star) @ scipy.linalg.expm(-a * t) for t in ts])


def deep_linear(key=1, data_key=2, widths=(3, 4, 2), n=10, s=(2.0, 0.5), init_scale=0.5):
    """(a `DeepLinear` of `widths`, a linear teacher's n samples with singular values s)."""
    data = gf.data.linear_teacher(jax.random.PRNGKey(data_key), widths[0], widths[-1], n, list(s))
    model = gf.models.DeepLinear(list(widths), jax.random.PRNGKey(key), init_scale=init_scale)
    return model, data


def leaves(tree):
    return [np.asarray(a) for a in jtu.tree_leaves(tree)]


def random_deep_linear(seed, widths, scale=0.7):
    rng = np.random.default_rng(seed)
    return gf.models.DeepLinear.from_weights(
        [
            scale / np.sqrt(widths[k]) * rng.standard_normal((widths[k + 1], widths[k]))
            for k in range(len(widths) - 1)
        ]
    )


def trajectory_through(models, ts, data=None, loss="half_mse", info=None):
    """The models at times `ts` as a `Trajectory` (Euclidean metric; `info` names `loss`)."""
    params = jtu.tree_map(
        lambda *a: jnp.stack(a), *(eqx.partition(m, m.trainable())[0] for m in models)
    )
    _, static = eqx.partition(models[0], models[0].trainable())
    ones = jtu.tree_map(lambda a: jnp.ones(()), eqx.partition(models[0], models[0].trainable())[0])
    if data is None:
        values = gnorm = jnp.zeros(len(models))
    else:
        problem, _ = gf.GradientFlowProblem.from_model(models[0], data, loss=loss)
        values, gnorm = jax.vmap(problem.metrics)(params)
    info = {"kind": "hand-made", "loss": loss, **(info or {})}
    return gf.Trajectory(jnp.asarray(ts, float), params, static, values, gnorm, ones, {}, info)


def balanced_trajectory(data, widths, u0, ts):
    """The exact gradient flow from `balanced_aligned_init(data, widths, u0)` (whitened data),
    sampled at `ts` from the closed-form mode strengths."""
    _, s, _, _ = gf.analytic.teacher_modes(data)
    u = gf.analytic.balanced_mode_strength(np.asarray(ts)[:, None], s, u0, len(widths) - 1)
    models = [gf.analytic.balanced_aligned_init(data, widths, row) for row in u]
    return trajectory_through(models, ts, data)
