"""The Hessian of the objective: Lanczos against the dense spectrum (generic and degenerate
points), the L2 shift, and the loss it is taken for."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from problems import random_deep_linear

import gradflow as gf

SINGULAR_VALUES = [3.0, 2.0, 1.0]


@pytest.fixture(scope="module")
def data():
    return gf.data.linear_teacher(jax.random.PRNGKey(0), 4, 4, 64, SINGULAR_VALUES)


# --------------------------------------------------------------------------------------------
# Hessians


def test_lanczos_matches_dense(data):
    # One shape (depth 3, P = 48) and two Lanczos lengths (m = P and m = 30), so two compilations.
    model = random_deep_linear(1, [4, 4, 4, 4])  # a generic (non-critical) point
    dense = gf.diagnostics.hessian_spectrum(model, data)
    assert dense.shape == (48,) and np.all(np.diff(dense) >= 0)
    h = gf.diagnostics.hessian_matrix(model, data)
    np.testing.assert_allclose(h, h.T, atol=1e-12)
    # the L2 penalty λ|θ|² shifts the Hessian by 2λ I
    np.testing.assert_allclose(
        gf.diagnostics.hessian_spectrum(model, data, l2=0.25), dense + 0.5, atol=1e-12
    )
    scale = np.abs(dense).max()
    # full Krylov space: the whole spectrum
    full = gf.diagnostics.hessian_spectrum(model, data, k=24, iterations=48)
    np.testing.assert_allclose(full, dense, atol=1e-12 * scale)
    # fewer steps than parameters: the extremes converge first
    k = 3
    ritz = gf.diagnostics.hessian_spectrum(model, data, k=k, iterations=30)
    np.testing.assert_allclose(ritz, np.concatenate([dense[:k], dense[-k:]]), atol=1e-10 * scale)
    # degenerate points. The origin (H = 3) has Hessian exactly 0: immediate breakdown, and the
    # restarts keep the Ritz values exact. The global minimum has a highly repeated zero
    # eigenvalue: the restarts on breakdown recover the multiplicity.
    origin = gf.models.DeepLinear.from_weights([jnp.zeros((4, 4))] * 3)
    np.testing.assert_array_equal(
        gf.diagnostics.hessian_spectrum(origin, data, k=3, iterations=30), 0.0
    )
    points = gf.diagnostics.critical_points(data, [4, 4, 4, 4])
    for p in (points[-1], points[1]):  # the global minimum, and J = {0} (non-strict saddle)
        full = gf.diagnostics.hessian_spectrum(p.model, data, k=24, iterations=48)
        np.testing.assert_allclose(full, p.eigenvalues, atol=1e-10 * np.abs(p.eigenvalues).max())


def test_hessian_of_another_loss(data):
    # mse = (2/d_out) half_mse: the Hessian scales by 2/d_out
    model = random_deep_linear(4, [4, 3, 4])
    half = gf.diagnostics.hessian_spectrum(model, data)
    mse = gf.diagnostics.hessian_spectrum(model, data, loss="mse")
    np.testing.assert_allclose(mse, (2 / data.out_dim) * half, atol=1e-12 * np.abs(half).max())
    np.testing.assert_allclose(
        gf.diagnostics.hessian_matrix(model, data, loss="mse"),
        (2 / data.out_dim) * gf.diagnostics.hessian_matrix(model, data),
        atol=1e-12 * np.abs(half).max(),
    )
    # a loss without a minimum still has a Hessian: cross-entropy of a linear classifier,
    # F(W) = mean_i −log softmax(W x_i)_{c_i}, against jax.hessian of that formula
    x = jax.random.normal(jax.random.PRNGKey(1), (12, 3))
    labels = jnp.arange(12) % 3
    classes = gf.Dataset(x, jnp.eye(3)[labels])  # one-hot targets
    linear = random_deep_linear(5, [3, 3])

    def direct(w):
        logits = x @ w.reshape(3, 3).T
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(12), labels])

    expected = np.linalg.eigvalsh(np.asarray(jax.hessian(direct)(linear.weights[0].reshape(-1))))
    got = gf.diagnostics.hessian_spectrum(linear, classes, loss="cross_entropy")
    np.testing.assert_allclose(got, expected, atol=1e-12)
