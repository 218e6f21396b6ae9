"""The objective F(θ) = risk(model_θ, data) + λ ∫ |θ|² dμ.

The risk is the model's own (`AbstractModel.risk`, by default (1/2n) Σ_i |f(x_i) − y_i|²), computed
from a sufficient statistic of the data (`AbstractModel.statistics`) that is prepared once per
solve. The L2 penalty is λ Σ_leaves m |θ|² with the masses m of the measure the parameters
discretise (m = 1 for models that discretise none), i.e. λ ∫∫ |θ|² dμ_s(θ) ds for a mean-field
model and λ |θ|² for an ordinary network.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu

from ._custom_types import Array, Float, PyTree


def trainable_masses(model) -> PyTree:
    """Masses of the trainable leaves, as a pytree with the structure of the trainable partition.

    Models without masses get 1.0 everywhere. Leaves are float64 arrays (never Python numbers) so
    that compiled solves do not specialise on their values.
    """
    params, _ = eqx.partition(model, model.trainable())
    declared = model.masses()
    if declared is None:
        return jtu.tree_map(lambda _: jnp.ones(()), params)
    declared, _ = eqx.partition(declared, model.trainable(), is_leaf=lambda x: x is None)
    return jtu.tree_map(lambda p, m: jnp.asarray(m, float), params, declared)


def l2_penalty(params: PyTree, masses: PyTree) -> Float[Array, ""]:
    """Σ_leaves Σ m |θ|² (the integral ∫|θ|² dμ of the particle measure)."""
    terms = jtu.tree_map(lambda p, m: jnp.sum(m * p**2), params, masses)
    return sum(jtu.tree_leaves(terms), start=jnp.zeros(()))


def make_objective(static, masses, l2):
    """F(params, stats) = risk(combine(params, static), stats) + l2 · Σ m |θ|²."""

    def objective(params, stats):
        model = eqx.combine(params, static)
        return model.risk(stats) + l2 * l2_penalty(params, masses)

    return objective


def value_and_grad(static, masses, l2):
    """(params, stats) → (F, ∇F) with respect to the trainable parameters."""
    return jax.value_and_grad(make_objective(static, masses, l2))
