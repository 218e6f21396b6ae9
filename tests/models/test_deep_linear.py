"""Deep linear networks: the gradient of the risk against its closed form and central
differences, and the structure of the adjacency form (property-based)."""

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from problems import random_deep_linear

import gradflow as gf
from gradflow.models.deep_linear import chain


def _closed_form_velocity(weights, m):
    """Ẇ_k = W_{>k}ᵀ (Σ_yx − W Σ_xx) W_{<k}ᵀ (docs/deep-linear.md)."""
    w = chain(weights)
    residual = m.syx - w @ m.sxx
    out = []
    for k in range(len(weights)):
        above = chain(weights[k + 1 :]) if k + 1 < len(weights) else jnp.eye(weights[k].shape[0])
        below = chain(weights[:k]) if k > 0 else jnp.eye(weights[0].shape[1])
        out.append(above.T @ residual @ below.T)
    return out


# a few shapes (depth 1 to 4, with bottlenecks and wide layers), so that compiled ops are reused
widths_strategy = st.sampled_from([[3, 2], [3, 2, 2], [3, 4, 1, 2], [3, 3, 3, 2], [3, 1, 3, 4, 2]])


# --------------------------------------------------------------------------------------------
# gradients and the adjacency form (property-based)


@settings(max_examples=8, deadline=None)
@given(widths=widths_strategy, seed=st.integers(0, 2**16), whiten=st.booleans())
def test_gradient_closed_form_and_finite_differences(widths, seed, whiten):
    d = gf.data.linear_teacher(jax.random.PRNGKey(seed % 7), 3, 2, 20, [1.5, 0.5], whiten=whiten)
    m = d.moments()
    model = random_deep_linear(seed, widths)
    grads = jax.grad(lambda ws: gf.losses.HalfMSE().risk(gf.models.DeepLinear.from_weights(ws), m))(
        list(model.weights)
    )
    vel = _closed_form_velocity(list(model.weights), m)
    for g, v in zip(grads, vel, strict=True):
        np.testing.assert_allclose(np.asarray(-g), np.asarray(v), atol=1e-12)
    # central differences on a random direction (error O(h²) ≈ 1e-10 at h = 1e-5)
    rng = np.random.default_rng(seed)
    direction = [rng.standard_normal(w.shape) for w in model.weights]
    h = 1e-5
    f = lambda t: float(
        gf.losses.HalfMSE().risk(
            gf.models.DeepLinear.from_weights(
                [w + t * e for w, e in zip(model.weights, direction, strict=True)]
            ),
            m,
        )
    )
    fd = (f(h) - f(-h)) / (2 * h)
    exact = sum(float(jnp.sum(g * e)) for g, e in zip(grads, direction, strict=True))
    assert fd == pytest.approx(exact, rel=1e-7, abs=1e-9)
    # and the risk from moments is the data risk (1/2n) Σ |W x_i − y_i|²
    direct = 0.5 * np.mean(
        np.sum((np.asarray(d.x) @ np.asarray(model.product()).T - np.asarray(d.y)) ** 2, 1)
    )
    assert float(gf.losses.HalfMSE().risk(model, m)) == pytest.approx(direct, rel=1e-11)


@settings(max_examples=8, deadline=None)
@given(widths=widths_strategy, seed=st.integers(0, 2**16))
def test_adjacency_form_properties(widths, seed):
    model = random_deep_linear(seed, widths)
    h = model.depth
    adj = gf.models.AdjacencyDeepLinear.from_layers(model)
    a = np.asarray(adj.adjacency)
    # round trip
    back = gf.models.DeepLinear.from_adjacency(adj.adjacency, widths)
    for w0, w1 in zip(model.weights, back.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(w0), np.asarray(w1))
    # nilpotent: A^{H+1} = 0; corner block (0, H) of A^H is Wᵀ
    np.testing.assert_array_equal(np.linalg.matrix_power(a, h + 1), 0.0)
    ah = np.linalg.matrix_power(a, h)
    corner = ah[: widths[0], sum(widths[:-1]) :]
    np.testing.assert_allclose(corner, np.asarray(model.product()).T, atol=1e-14)
    assert float(adj.nilpotency_residual()) == 0.0 and float(adj.pattern_leakage()) == 0.0
    # conserved quantities agree; the gradient in adjacency form is the layer gradient on the
    # pattern and exactly zero off it (the right-hand side keeps the block-shift pattern)
    for c0, c1 in zip(model.conserved(), adj.conserved(), strict=True):
        np.testing.assert_allclose(np.asarray(c0), np.asarray(c1), atol=1e-14)
    d = gf.data.linear_teacher(jax.random.PRNGKey(seed % 7), 3, 2, 20, [1.5, 0.5])
    m = d.moments()
    ga = np.asarray(
        jax.grad(
            lambda x: gf.losses.HalfMSE().risk(gf.models.AdjacencyDeepLinear(x, tuple(widths)), m)
        )(adj.adjacency)
    )
    assert np.all(ga[~adj.pattern_mask()] == 0.0)
    gl = jax.grad(lambda ws: gf.losses.HalfMSE().risk(gf.models.DeepLinear.from_weights(ws), m))(
        list(model.weights)
    )
    ga_layers = gf.models.DeepLinear.from_adjacency(jnp.asarray(ga), widths).weights
    for g0, g1 in zip(gl, ga_layers, strict=True):
        np.testing.assert_allclose(np.asarray(g0), np.asarray(g1), atol=1e-12)
