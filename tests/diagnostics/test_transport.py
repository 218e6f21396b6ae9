"""Transport: W_2 against exact assignments, the Sinkhorn divergence within its stated bias bound,
the conditional distance W_C layer by layer, distances travelled and path length."""

import math

import jax
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

import gradflow as gf
from gradflow.diagnostics.transport import _exact_lp
from gradflow.experiments.mean_field import teacher_data


def _lsa_w2(a, b):
    cost = cdist(a, b, "sqeuclidean")
    r, c = linear_sum_assignment(cost)
    return math.sqrt(cost[r, c].mean())


@pytest.mark.parametrize("n, d, seed", [(5, 1, 0), (30, 3, 1), (100, 5, 2), (257, 2, 3)])
def test_exact_matches_linear_sum_assignment(n, d, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 0.5
    ref = _lsa_w2(a, b)
    for method in ("exact", "auto"):
        assert gf.diagnostics.wasserstein(a, b, method=method) == pytest.approx(ref, abs=1e-8)


def test_unequal_sizes_and_weights_exact():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(6, 2)), rng.normal(size=(9, 2))
    rep = gf.diagnostics.wasserstein(a, b, method="exact", details=True)
    assert rep.method == "assignment"
    assert rep.squared == pytest.approx(_exact_lp(a, b, None, None), abs=1e-8)
    wa = rng.uniform(0.5, 2.0, size=6)
    lp = gf.diagnostics.wasserstein(a, b, weights_a=wa, method="exact", details=True)
    assert lp.method == "lp"
    # a measure with one heavy atom against its own support: W_2 = 0
    assert gf.diagnostics.wasserstein(a, a, weights_a=wa, weights_b=wa, method="exact") < 1e-7


@pytest.mark.parametrize("n, epsilon", [(60, None), (60, 0.05), (200, None)])
def test_sinkhorn_within_stated_bias(n, epsilon):
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=(n, 3)), rng.normal(size=(n, 3)) * 1.3 + 0.2
    exact = _lsa_w2(a, b) ** 2
    rep = gf.diagnostics.wasserstein(a, b, method="sinkhorn", epsilon=epsilon, details=True)
    assert rep.method == "sinkhorn"
    assert rep.bias_bound == pytest.approx(rep.epsilon * math.log(n))
    assert abs(rep.squared - exact) <= rep.bias_bound
    assert abs(rep.distance - math.sqrt(exact)) <= math.sqrt(rep.bias_bound)


def test_invariances():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(20, 4)), rng.normal(size=(20, 4))
    w = gf.diagnostics.wasserstein(a, b)
    assert gf.diagnostics.wasserstein(a[rng.permutation(20)], b) == pytest.approx(w, abs=1e-12)
    assert gf.diagnostics.wasserstein(b, a) == pytest.approx(w, abs=1e-12)
    shift = np.ones(4) * 0.7
    assert gf.diagnostics.wasserstein(a + shift, b + shift) == pytest.approx(w, abs=1e-10)
    assert gf.diagnostics.wasserstein(a, a) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [dict(method="emd"), dict(epsilon=-1.0, method="sinkhorn"), dict(weights_a=-np.ones(5))],
)
def test_bad_input(kwargs):
    a = np.zeros((5, 2))
    with pytest.raises(gf.ConfigError):
        gf.diagnostics.wasserstein(a, a + 1, **kwargs)
    with pytest.raises(gf.ConfigError):
        gf.diagnostics.wasserstein(a, np.zeros((5, 3)))


@pytest.fixture(scope="module")
def models():
    mk = lambda layers, seed: gf.models.MeanFieldResNet(
        2, 4, layers, 6, 1, key=jax.random.PRNGKey(seed)
    )
    return mk(4, 0), mk(4, 1), mk(2, 2)


def test_conditional_is_the_layer_average(models):
    a, b, _ = models
    pa, pb = np.asarray(a.particle_positions()), np.asarray(b.particle_positions())
    ref = math.sqrt(np.mean([_lsa_w2(pa[k], pb[k]) ** 2 for k in range(4)]))
    assert gf.diagnostics.conditional_wasserstein(a, b) == pytest.approx(ref, abs=1e-10)
    assert gf.diagnostics.conditional_wasserstein(a, a) == 0.0
    sk, per, lengths = gf.diagnostics.conditional_wasserstein(
        a, b, method="sinkhorn", epsilon=1e-3, per_layer=True
    )
    assert per.shape == (4,) and lengths.sum() == pytest.approx(1.0)
    assert abs(sk**2 - ref**2) <= 1e-3 * math.log(6)


def test_conditional_with_different_layer_counts(models):
    _, _, c = models
    pc = np.asarray(c.particle_positions())
    # the 2-layer measure written with 4 layers (each layer twice) is the same measure on [0,1]×Θ
    doubled = np.repeat(pc, 2, axis=0)
    assert gf.diagnostics.conditional_wasserstein(c, doubled) < 1e-12
    a = models[0]
    pa = np.asarray(a.particle_positions())
    ref = math.sqrt(np.mean([_lsa_w2(pa[k], pc[k // 2]) ** 2 for k in range(4)]))
    assert gf.diagnostics.conditional_wasserstein(a, c) == pytest.approx(ref, abs=1e-10)


def test_distance_travelled_is_at_most_the_path_length():
    data = teacher_data(jax.random.PRNGKey(0), 8, 2, 1)
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
