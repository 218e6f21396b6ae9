"""Transport: W_2 against exact assignments, the Sinkhorn divergence within its stated bias bound,
the conditional distance W_C layer by layer, and the models it accepts."""

import math

import jax
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

import gradflow as gf
from gradflow.diagnostics.transport import _exact_lp


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
    rep = gf.diagnostics.wasserstein_details(a, b, method="exact")
    assert rep.method == "assignment"
    assert rep.squared == pytest.approx(_exact_lp(a, b, None, None), abs=1e-8)
    wa = rng.uniform(0.5, 2.0, size=6)
    lp = gf.diagnostics.wasserstein_details(a, b, weights_a=wa, method="exact")
    assert lp.method == "lp"
    # a measure with one heavy atom against its own support: W_2 = 0
    assert gf.diagnostics.wasserstein(a, a, weights_a=wa, weights_b=wa, method="exact") < 1e-7


@pytest.mark.parametrize("n, epsilon", [(60, None), (60, 0.05), (200, None)])
def test_sinkhorn_within_stated_bias(n, epsilon):
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=(n, 3)), rng.normal(size=(n, 3)) * 1.3 + 0.2
    exact = _lsa_w2(a, b) ** 2
    rep = gf.diagnostics.wasserstein_details(a, b, method="sinkhorn", epsilon=epsilon)
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
    sk = gf.diagnostics.conditional_wasserstein_details(a, b, method="sinkhorn", epsilon=1e-3)
    assert sk.squared.shape == (4,) and sk.lengths.sum() == pytest.approx(1.0)
    assert sk.method == "sinkhorn" and sk.bias_bound == pytest.approx(1e-3 * math.log(6))
    assert abs(sk.distance**2 - ref**2) <= sk.bias_bound


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


def test_conditional_details_and_accepted_models(models):
    a, _, c = models
    pa, pc = np.asarray(a.particle_positions()), np.asarray(c.particle_positions())
    got = gf.diagnostics.conditional_wasserstein_details(a, c, method="exact")
    # 4 layers against 2: the refinement is the 4 quarters, quarter k against layer k // 2
    np.testing.assert_allclose(
        got.squared, [_lsa_w2(pa[k], pc[k // 2]) ** 2 for k in range(4)], atol=1e-10
    )
    np.testing.assert_allclose(got.lengths, 0.25)
    assert got.method == "assignment" and got.epsilon is None and got.bias_bound == 0.0
    assert got.distance == pytest.approx(gf.diagnostics.conditional_wasserstein(a, c), abs=1e-14)
    # a model whose parameters are not particles is refused, naming the accepted kinds
    linear = gf.models.DeepLinear([2, 2], jax.random.PRNGKey(0))
    with pytest.raises(gf.ConfigError, match="AbstractParticleModel"):
        gf.diagnostics.conditional_wasserstein(a, linear)
