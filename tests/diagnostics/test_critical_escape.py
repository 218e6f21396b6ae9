"""Deep linear critical points beyond the Hessian: escape orders, the rescaling orbit's dimension
(hand count), and balanced escape times measured by flowing against the closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradflow as gf


@pytest.fixture(scope="module")
def data():
    # whitened 2 × 2 data, two modes s = (2, 1)
    return gf.data.linear_teacher(jax.random.PRNGKey(2), 2, 2, 8, [2.0, 1.0])


# kinds of the four J for widths all 2 (k* = 2): H = 2 every saddle strict; H ≥ 3 the origin and
# J = {top} non-strict (order H), J = {second} strict (a lower mode learned, a higher one not)
EXPECTED = {
    2: {(): "strict_saddle", (0,): "strict_saddle", (1,): "strict_saddle"},
    3: {(): "nonstrict_saddle", (0,): "nonstrict_saddle", (1,): "strict_saddle"},
    4: {(): "nonstrict_saddle", (0,): "nonstrict_saddle", (1,): "strict_saddle"},
}


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_escape_order_every_critical_point(data, depth):
    points = gf.diagnostics.critical_points(data, [2] * (depth + 1))
    assert [p.modes for p in points] == [(), (0,), (1,), (0, 1)]
    for p in points:
        if p.modes == (0, 1):
            assert p.kind == "global_min" and p.escape_order is None
            assert p.balanced_escape_time(1e-2) is None
            continue
        assert p.kind == EXPECTED[depth][p.modes]
        assert p.escape_order == (2 if p.kind == "strict_saddle" else depth)
        assert (p.n_negative > 0) == (p.escape_order == 2)
        d = p.escape_direction
        assert d.shape == (p.model.parameter_count(),)
        if p.kind == "nonstrict_saddle":
            # balanced rank one on the first unlearned mode: unit norm, each layer H^{-1/2}
            assert p.escape_mode == len(p.modes)
            assert np.linalg.norm(d) == pytest.approx(1.0, abs=1e-14)
            assert np.allclose(np.linalg.norm(d.reshape(depth, 4), axis=1), depth**-0.5)
        # the orbit tangents are Hessian null directions: never more than the null space
        assert 0 <= p.orbit_dimension <= p.n_zero
        assert p.unexplained_null_dimension == p.n_zero - p.orbit_dimension


def test_orbit_dimension_hand_count():
    # depth 2, hidden width 3, a rank-one product: n_1² − (n_1 − r)² = 9 − 4 = 5; origin: 0
    d = gf.data.linear_teacher(jax.random.PRNGKey(3), 2, 2, 8, [2.0])
    origin, rank_one = gf.diagnostics.critical_points(d, [2, 3, 2])
    assert origin.orbit_dimension == 0
    assert rank_one.orbit_dimension == 5
    assert gf.diagnostics.orbit_dimension(rank_one.model) == 5
    # at the origin with H = 3 the whole (zero) Hessian is unexplained by the orbit
    (o3,) = gf.diagnostics.critical_points(d, [2, 2, 2, 2], subsets=[()])
    assert o3.unexplained_null_dimension == o3.model.parameter_count() == 12


def test_balanced_escape_time_matches_closed_form(data):
    # depth 3 from J = {top}: non-strict, order 3, T ∝ 1/ε (the experiment `saddles` does H = 2..4)
    depth, modes = 3, (0,)
    # flow from the saddle moved by ε along the balanced direction, stop where the next mode
    # reaches s/2 (F = F_J − 3s²/8), compare the stop time with learning_time(s, (ε/√H)^H, H)
    (p,) = gf.diagnostics.critical_points(data, [2] * (depth + 1), subsets=[modes])
    flat, unravel = jax.flatten_util.ravel_pytree(p.model)
    eps = 1e-2
    start = unravel(flat + eps * jnp.asarray(p.escape_direction))
    predicted = float(p.balanced_escape_time(eps))
    traj = gf.flow(
        start,
        data,
        3 * predicted,
        rtol=1e-12,
        atol=1e-14,
        stop_below=p.escape_level(),
        saveat=[0.0, 3 * predicted],
    )
    measured = traj.info["stopped_at"]
    assert measured == pytest.approx(predicted, rel=1e-6)
