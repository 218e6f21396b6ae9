"""NeuralODE: interpolation, exact solutions, gradients through the solve, and its flow."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import expm

import gradflow as gf
from gradflow._problem import trainable_masses

KEY = jax.random.PRNGKey(11)


def test_constant_interpolation_matches_matrix_exponentials():
    # identity activation: on [k/L, (k+1)/L) the ODE is linear, H' = V_k W_k H/√(mq)
    depth, q, m = 3, 3, 2
    resnet = gf.models.ResNet(q, q, m, depth, q, key=KEY, activation="identity", init="iid")
    node = resnet.ode_limit("constant", rtol=1e-12, atol=1e-12)
    x = jax.random.normal(KEY, (4, q))
    h = np.asarray(x).T
    for k in range(depth):
        M = np.asarray(resnet.V[k] @ resnet.W[k]) / np.sqrt(m * q)
        h = expm(M / depth) @ h
    np.testing.assert_allclose(node(x), h.T, atol=1e-10)


def test_linear_interpolation_passes_through_the_nodes():
    resnet = gf.models.ResNet(2, 3, 2, 4, 2, key=KEY, init="iid")
    node = resnet.ode_limit("linear")
    for k in range(1, 5):
        v, w = node.weights_at(k / 4 - 1e-15 if k == 4 else k / 4)
        np.testing.assert_allclose(v, resnet.V[k - 1], atol=1e-12)
        np.testing.assert_allclose(w, resnet.W[k - 1], atol=1e-12)
    v, _ = node.weights_at(0.375)  # halfway between nodes 1 (s = 1/4) and 2 (s = 1/2)
    np.testing.assert_allclose(v, (resnet.V[0] + resnet.V[1]) / 2, atol=1e-12)
    v, _ = node.weights_at(0.1)  # held at node 1 on [0, 1/L]
    np.testing.assert_allclose(v, resnet.V[0], atol=1e-12)
    const = resnet.ode_limit("constant")
    v, _ = const.weights_at(0.3)
    np.testing.assert_allclose(v, resnet.V[1], atol=1e-12)


@pytest.mark.parametrize("interpolation", ["linear", "constant"])
def test_gradient_through_the_solve_matches_finite_differences(interpolation):
    resnet = gf.models.ResNet(3, 3, 2, 3, 3, key=KEY, init="smooth", length_scale=0.5)
    node = resnet.ode_limit(interpolation, rtol=1e-12, atol=1e-12)
    data = gf.data.gaussian(jax.random.PRNGKey(2), 4, 3, 3)

    @jax.jit
    def risk(V, W):
        return gf.losses.HalfMSE().risk(eqx.tree_at(lambda n: (n.V, n.W), node, (V, W)), data)

    gV, gW = jax.grad(risk, argnums=(0, 1))(node.V, node.W)
    eps = 1e-5
    for i, k in enumerate(jax.random.split(KEY, 3)):
        dV = jax.random.normal(k, node.V.shape)
        dW = jax.random.normal(jax.random.fold_in(k, 1), node.W.shape)
        fd = (
            risk(node.V + eps * dV, node.W + eps * dW) - risk(node.V - eps * dV, node.W - eps * dW)
        ) / (2 * eps)
        ad = jnp.sum(gV * dV) + jnp.sum(gW * dW)
        assert float(fd) == pytest.approx(float(ad), rel=1e-6, abs=1e-9), i


def test_neural_ode_is_trainable_by_the_flow():
    resnet = gf.models.ResNet(2, 3, 3, 4, 2, key=KEY, init="tied")
    node = resnet.ode_limit("linear", rtol=1e-9, atol=1e-9)
    assert node.layered and float(trainable_masses(node).V) == 0.25
    data = gf.data.gaussian(KEY, 5, 2, 2)
    traj = gf.flow(
        node,
        data,
        1.0,
        geometry="conditional_wasserstein",
        saveat=[0.0, 0.5, 1.0],
        rtol=1e-7,
        atol=1e-9,
    )
    assert float(traj.loss[-1]) < float(traj.loss[0])
    # the flow of the limit and of the ResNet it interpolates start with the same velocity
    res = gf.flow(resnet, data, 1.0, geometry="conditional_wasserstein", saveat=[0.0, 1.0])
    assert float(res.loss[0]) == pytest.approx(float(traj.loss[0]), rel=1e-12)


def test_bad_interpolation_raises_config_error():
    resnet = gf.models.ResNet(2, 3, 2, 4, 2, key=KEY)
    with pytest.raises(gf.ConfigError):
        resnet.ode_limit("cubic")
    with pytest.raises(gf.ConfigError):
        resnet.ode_limit(rtol=0.0)


def test_ode_limit_carries_the_normalisation():
    # normalise=False: H' = V_k W_k H on [k/L, (k+1)/L) for the identity activation, no 1/√(mq)
    depth, q, m = 3, 3, 2
    resnet = gf.models.ResNet(
        q, q, m, depth, q, key=KEY, activation="identity", init="iid", normalise=False
    )
    node = resnet.ode_limit("constant", rtol=1e-12, atol=1e-12)
    assert not node.normalise
    x = jax.random.normal(KEY, (4, q))
    h = np.asarray(x).T
    for k in range(depth):
        h = expm(np.asarray(resnet.V[k] @ resnet.W[k]) / depth) @ h
    np.testing.assert_allclose(node(x), h.T, atol=1e-10)
    # the ResNet is the explicit Euler scheme of its limit, with or without the factors: the gap
    # shrinks like 1/L
    gaps = []
    for depth in (32, 128):
        deep = gf.models.ResNet(2, 3, 2, depth, 2, key=KEY, init="smooth", normalise=False)
        gaps.append(float(jnp.abs(deep.ode_limit("constant")(x[:, :2]) - deep(x[:, :2])).max()))
    assert gaps[0] / gaps[1] == pytest.approx(4, rel=0.1)
