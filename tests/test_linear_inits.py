"""The survey's deep-linear initialisations fix the conservation laws they report."""

import jax
import numpy as np
import pytest

import gradflow as gf


@pytest.mark.parametrize("delta", [0.0, 0.3])
def test_delta_balanced(delta):
    init = gf.analytic.delta_balanced_init([2, 3, 3, 4], delta, jax.random.PRNGKey(0))
    assert init.kind == "delta_balanced" and init.delta == delta
    assert init.law_residual < 1e-12
    for c in init.model.conserved():
        assert np.allclose(np.asarray(c), delta * np.eye(c.shape[0]), atol=1e-12)
    assert init.laws == [f"C_1 = {delta:g} I", f"C_2 = {delta:g} I"]


def test_delta_balanced_refuses_impossible_layers():
    # a negative δ below −σ_min(W_1)² cannot be carried
    with pytest.raises(gf.ConfigError, match="delta"):
        gf.analytic.delta_balanced_init([3, 2, 2], -10.0, jax.random.PRNGKey(0))
    # δ > 0 makes W_1W_1ᵀ + δI full rank: the next layer must be at least as wide
    with pytest.raises(gf.ConfigError, match="widths"):
        gf.analytic.delta_balanced_init([2, 3, 2], 0.5, jax.random.PRNGKey(0))


@pytest.mark.parametrize("kind", ["decoupled", "aligned"])
def test_mode_inits_fix_per_mode_laws(kind):
    data = gf.data.linear_teacher(jax.random.PRNGKey(1), 2, 2, 8, [2.0, 1.0])
    a = np.array([[0.1, 0.2], [0.3, 0.05]])  # (H, r): unbalanced per layer and mode
    make = gf.analytic.decoupled_init if kind == "decoupled" else gf.analytic.aligned_init
    args = () if kind == "decoupled" else (jax.random.PRNGKey(3),)
    init = make(data, [2, 3, 2], a, *args)
    assert init.law_residual < 1e-14
    assert np.allclose(init.mode_differences, a[1:] ** 2 - a[:-1] ** 2)
    # each mode's product strength is a_1 a_2; the product is U diag(a_1 a_2) Vᵀ
    u, s, v, _ = gf.analytic.teacher_modes(data)
    strengths = np.diag(u.T @ np.asarray(init.model.product()) @ v)
    assert np.allclose(strengths, a[0] * a[1], atol=1e-14)
