"""Per-particle stationarity |∇_θ δF/δμ(θ_j)| = |∂F/∂θ_j|/m_j: finite differences, and invariance
under repeating every particle (it is a function of the measure)."""

import equinox as eqx
import jax
import numpy as np
import pytest

import gradflow as gf

L2 = 0.1


def _problem():
    data = gf.data.tanh_teacher(jax.random.PRNGKey(0), 6, 2, 1)
    model = gf.models.MeanFieldResNet(2, 4, 2, 3, 1, key=jax.random.PRNGKey(1))
    return model, data


def test_particle_gradients_are_finite_differences_over_the_mass():
    model, data = _problem()
    g = gf.diagnostics.particle_gradients(model, data, l2=L2)
    assert g.shape == (2, 3)
    problem, params = gf.GradientFlowProblem.from_model(model, data, l2=L2)
    F = jax.jit(lambda p: problem.objective(p))
    # central differences in every coordinate θ = (u ∈ R^4, w ∈ R^4, b) of particle (k=1, j=2),
    # whose mass is 1/(L·M) = 1/6
    h, k, j, mass = 1e-6, 1, 2, 1.0 / 6
    coords = [("u", (k, j, i)) for i in range(4)] + [("w", (k, j, i)) for i in range(4)]
    partial = []
    for field, index in [*coords, ("b", (k, j))]:
        leaf = getattr(params, field)

        def at(delta, field=field, leaf=leaf, index=index):
            return float(
                F(eqx.tree_at(lambda p: getattr(p, field), params, leaf.at[index].add(delta)))
            )

        partial.append((at(h) - at(-h)) / (2 * h))
    np.testing.assert_allclose(g[k, j], np.linalg.norm(partial) / mass, rtol=1e-6)


def test_particle_gradients_do_not_change_when_particles_repeat():
    model, data = _problem()
    g = gf.diagnostics.particle_gradients(model, data)
    g3 = gf.diagnostics.particle_gradients(model.replicate(3), data)
    np.testing.assert_allclose(g3, np.repeat(g, 3, axis=1), rtol=1e-12)
    linear = gf.models.DeepLinear([2, 1], key=jax.random.PRNGKey(0))
    with pytest.raises(gf.ConfigError, match="model"):
        gf.diagnostics.particle_gradients(linear, data)
