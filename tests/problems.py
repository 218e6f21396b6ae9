"""Canonical small problems shared by the tests, each with what is known about it exactly.

- `quadratic()`: a one-layer linear model f(x) = Bx on data with Σ_xx ≠ I. Its risk is quadratic,
  F = ½tr(BΣ_xxBᵀ) − tr(BΣ_yxᵀ) + ½trΣ_yy (+ λ|B|²), so the flow B' = Σ_yx − B(Σ_xx + 2λI) has the
  matrix-exponential solution `quadratic_exact` B(t) = B* + (B₀ − B*) exp(−(Σ_xx + 2λI)t),
  B* = Σ_yx(Σ_xx + 2λI)⁻¹.
- `deep_linear()`: a depth-2 linear network (3 → 4 → 2) on whitened data with two modes.
"""

import jax
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


def deep_linear(key=1, data_key=2):
    data = gf.data.linear_teacher(jax.random.PRNGKey(data_key), 3, 2, 10, [2.0, 0.5])
    model = gf.models.DeepLinear([3, 4, 2], jax.random.PRNGKey(key), init_scale=0.5)
    return model, data


def leaves(tree):
    return [np.asarray(a) for a in jtu.tree_leaves(tree)]
