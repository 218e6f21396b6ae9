"""How far a trajectory went: the transport distance from its start is at most the path length,
and the two estimates of the path length agree."""

import jax
import numpy as np
import pytest

import gradflow as gf
from gradflow.data import tanh_teacher


def test_distance_travelled_is_at_most_the_path_length():
    data = tanh_teacher(jax.random.PRNGKey(0), 8, 2, 1)
    model = gf.models.MeanFieldResNet(2, 4, 2, 5, 1, key=jax.random.PRNGKey(3))
    traj = gf.flow(
        model, data, 5.0, geometry="conditional_wasserstein", saveat=np.linspace(0, 5, 51)
    )
    travelled = gf.diagnostics.distance_travelled(traj, indices=[0, 10, 50])
    speed = gf.diagnostics.cumulative_path_length(traj, "speed")
    poly = gf.diagnostics.cumulative_path_length(traj, "polygon")
    assert travelled[0] == 0.0
    assert np.all(travelled <= poly[[0, 10, 50]] + 1e-12)
    assert poly[-1] == pytest.approx(float(traj.path_length()), rel=1e-12)
    assert np.all(poly <= speed * (1 + 1e-6) + 1e-12)
    assert poly[-1] == pytest.approx(speed[-1], rel=1e-3)
