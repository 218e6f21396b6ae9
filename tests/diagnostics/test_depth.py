"""Depth diagnostics on weights with known differences, and the models they accept (scaling
against depth and the ODE gap of trained ResNets are in tests/models/test_resnet.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from problems import random_deep_linear, trajectory_through

import gradflow as gf


def _scalar_resnet(w):
    w = np.asarray(w, float).reshape(-1, 1, 1)
    return gf.models.ResNet.from_weights(np.ones_like(w), w)


def test_depth_smoothness_of_known_weights():
    # w = 0, 1, 3, 6 (V = 1): |Z_{k+1} − Z_k| = 1, 2, 3
    got = gf.diagnostics.depth_smoothness(_scalar_resnet([0, 1, 3, 6]))
    assert (got.max_diff, got.scaled, got.depth) == (3.0, 12.0, 4)
    assert got.aggregate == pytest.approx(np.sqrt(14.0), rel=1e-15)
    np.testing.assert_allclose(got.per_layer, [1, 2, 3])
    assert got.per_time is None and got.per_leaf == {"V": 0.0, "W": 3.0}
    # a dict of layer-stacked arrays is read the same way
    assert gf.diagnostics.depth_smoothness({"Z": jnp.array([[0.0], [1], [3], [6]])}).max_diff == 3
    # along a trajectory: the maximum over times as well
    traj = trajectory_through(
        [_scalar_resnet([0, 1, 3, 6]), _scalar_resnet([0, 0, 0, 10])], [0.0, 1.0]
    )
    along = gf.diagnostics.depth_smoothness(traj)
    assert along.max_diff == 10.0 and along.scaled == 40.0
    np.testing.assert_allclose(along.per_time, [3.0, 10.0])
    np.testing.assert_allclose(along.per_layer, [0.0, 0.0, 10.0])


def test_depth_diagnostics_refuse_models_without_layers():
    linear = random_deep_linear(0, [2, 3, 2])
    with pytest.raises(gf.ConfigError, match="AbstractLayeredModel"):
        gf.diagnostics.depth_smoothness(linear)
    with pytest.raises(gf.ConfigError, match="AbstractLayeredModel"):
        gf.diagnostics.depth_smoothness(trajectory_through([linear, linear], [0.0, 1.0]))
    with pytest.raises(gf.ConfigError, match="invalid b="):
        gf.diagnostics.depth_distance(_scalar_resnet([0, 1]), linear)
    # only a ResNet has an ODE limit
    mean_field = gf.models.MeanFieldResNet(2, 4, 2, 3, 1, key=jax.random.PRNGKey(0))
    for model in (linear, mean_field):
        with pytest.raises(gf.ConfigError, match="ResNet"):
            gf.diagnostics.ode_gap(model, jnp.zeros((3, 2)))
