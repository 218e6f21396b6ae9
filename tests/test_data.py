"""Datasets, the linear teacher, and the moment form of the deep-linear risk (exact answers)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradflow as gf


def _moments(data):
    x, y = np.asarray(data.x), np.asarray(data.y)
    n = x.shape[0]
    return x.T @ x / n, y.T @ x / n, np.sum(y**2) / n


@pytest.mark.parametrize("in_dim,out_dim,n", [(3, 6, 7), (4, 4, 4)])
def test_linear_teacher_whitened_moments_are_exact(in_dim, out_dim, n):
    r = min(in_dim, out_dim)
    s = np.linspace(3.0, 0.5, r)
    data = gf.data.linear_teacher(jax.random.PRNGKey(1), in_dim, out_dim, n, s)
    assert data.x.shape == (n, in_dim) and data.y.shape == (n, out_dim)
    sxx, syx, tr_syy = _moments(data)
    np.testing.assert_allclose(sxx, np.eye(in_dim), atol=1e-12)
    np.testing.assert_allclose(np.linalg.svd(syx, compute_uv=False), np.sort(s)[::-1], rtol=1e-12)
    # Y = X (teacher) exactly, so tr Σ_yy = Σ s² and the global minimum of the risk is 0.
    np.testing.assert_allclose(tr_syy, np.sum(s**2), rtol=1e-12)


def test_linear_teacher_low_rank_and_unsorted_values():
    s = [0.5, 2.0]  # any order; the singular values are a set
    data = gf.data.linear_teacher(jax.random.PRNGKey(2), 6, 5, 30, s)
    sv = np.linalg.svd(_moments(data)[1], compute_uv=False)
    np.testing.assert_allclose(sv[:2], [2.0, 0.5], rtol=1e-12)
    np.testing.assert_allclose(sv[2:], 0.0, atol=1e-12)


def test_linear_teacher_not_whitened():
    s = [4.0, 1.0, 0.25]
    data = gf.data.linear_teacher(jax.random.PRNGKey(3), 4, 3, 25, s, whiten=False)
    sxx, syx, _ = _moments(data)
    assert np.max(np.abs(sxx - np.eye(4))) > 1e-2  # genuinely not whitened
    np.testing.assert_allclose(np.linalg.svd(syx, compute_uv=False), s, rtol=1e-11)


def test_linear_teacher_is_deterministic_in_its_key():
    a = gf.data.linear_teacher(jax.random.PRNGKey(7), 3, 2, 10, [1.0, 0.5])
    b = gf.data.linear_teacher(jax.random.PRNGKey(7), 3, 2, 10, [1.0, 0.5])
    c = gf.data.linear_teacher(jax.random.PRNGKey(8), 3, 2, 10, [1.0, 0.5])
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(np.asarray(a.x), np.asarray(c.x))


def test_moments_match_definition():
    data = gf.data.linear_teacher(jax.random.PRNGKey(4), 3, 2, 11, [1.5, 0.3], whiten=False)
    m = data.moments()
    sxx, syx, tr_syy = _moments(data)
    np.testing.assert_allclose(m.sxx, sxx, rtol=1e-13)
    np.testing.assert_allclose(m.syx, syx, rtol=1e-13)
    np.testing.assert_allclose(m.tr_syy, tr_syy, rtol=1e-13)


@pytest.mark.parametrize("widths,whiten", [([3, 4, 2], True), ([3, 2, 5, 2], False)])
def test_deep_linear_moment_risk_equals_generic_risk(widths, whiten):
    """The moment formula F = ½tr(WΣ_xxWᵀ) − tr(WΣ_yxᵀ) + ½trΣ_yy is (1/2n)Σ|f(x_i) − y_i|²."""
    data = gf.data.linear_teacher(jax.random.PRNGKey(5), 3, 2, 13, [2.0, 0.7], whiten=whiten)
    model = gf.models.DeepLinear(widths, jax.random.PRNGKey(6), init_scale=0.8)
    x, y = np.asarray(data.x), np.asarray(data.y)
    w = np.asarray(model.product())
    direct = 0.5 * np.mean(np.sum((x @ w.T - y) ** 2, axis=1))
    loss = gf.losses.HalfMSE()
    from_moments = loss.risk(model, loss.statistics(model, data))
    generic = loss(model(data.x), data.y)  # (1/2n) Σ |f(x_i) − y_i|² from the data itself
    np.testing.assert_allclose(from_moments, direct, rtol=1e-12)
    np.testing.assert_allclose(generic, direct, rtol=1e-12)
    # Their gradients agree too (the flow only sees the gradient).
    g1 = jax.grad(lambda m: loss.risk(m, loss.statistics(m, data)))(model)
    g2 = jax.grad(lambda m: loss(m(data.x), data.y))(model)
    for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_adjacency_risk_equals_layer_risk():
    data = gf.data.linear_teacher(jax.random.PRNGKey(5), 3, 2, 13, [2.0, 0.7], whiten=False)
    model = gf.models.DeepLinear([3, 4, 2, 2], jax.random.PRNGKey(9), init_scale=0.9)
    adj = gf.models.AdjacencyDeepLinear.from_layers(model)
    stats = data.moments()
    np.testing.assert_allclose(
        gf.losses.HalfMSE().risk(adj, stats), gf.losses.HalfMSE().risk(model, stats), rtol=1e-13
    )
    np.testing.assert_allclose(adj.product(), model.product(), rtol=1e-13)


def test_dataset_rejects_bad_arrays():
    with pytest.raises(gf.ConfigError) as e:
        gf.Dataset(jnp.array([[1.0, jnp.nan]]), jnp.array([[0.0]]))
    assert e.value.field == "data"
    with pytest.raises(gf.ConfigError) as e:
        gf.Dataset(jnp.ones((3, 2)), jnp.ones((4, 1)))
    assert e.value.field == "data"
    with pytest.raises(gf.ConfigError) as e:
        gf.Dataset(jnp.ones((3,)), jnp.ones((3, 1)))
    assert e.value.field == "data"


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(singular_values=[1.0, 1.0, 1.0]), "singular_values"),  # more than min(in, out)
        (dict(singular_values=[]), "singular_values"),
        (dict(singular_values=[1.0, -1.0]), "singular_values"),
        (dict(singular_values=[1.0, np.inf]), "singular_values"),
        (dict(n=2), "n"),  # cannot whiten 3 inputs with 2 samples
        (dict(n=0), "n"),
        (dict(in_dim=0), "in_dim"),
        (dict(out_dim=2.5), "out_dim"),
    ],
)
def test_linear_teacher_config_errors(kwargs, field):
    args = dict(in_dim=3, out_dim=2, n=10, singular_values=[1.0])
    args.update(kwargs)
    with pytest.raises(gf.ConfigError) as e:
        gf.data.linear_teacher(jax.random.PRNGKey(0), **args)
    assert e.value.field == field
    assert field in str(e.value)


def test_tanh_teacher_is_the_documented_formula():
    # y = (1/√K) V tanh(W x + c) with K = 4 (so 1/√K = 1/2), the key split into (x, W, V, c) as
    # the docstring says (a run is reproducible from its seed alone).
    key = jax.random.PRNGKey(4)
    data = gf.data.tanh_teacher(key, 5, 3, 2, width=4)
    kx, kw, kv, kc = jax.random.split(key, 4)
    x = np.asarray(jax.random.normal(kx, (5, 3)))
    w, v = np.asarray(jax.random.normal(kw, (4, 3))), np.asarray(jax.random.normal(kv, (2, 4)))
    c = np.asarray(jax.random.normal(kc, (4,)))
    np.testing.assert_array_equal(np.asarray(data.x), x)
    np.testing.assert_allclose(np.asarray(data.y), np.tanh(x @ w.T + c) @ v.T / 2.0, rtol=1e-14)
    with pytest.raises(gf.ConfigError, match="width"):
        gf.data.tanh_teacher(key, 5, 3, 2, width=0)
