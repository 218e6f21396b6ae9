"""The flow probe of escape (`escape_probe`) at the origin of scalar deep linear networks, where
the escape order is known exactly: 2 for depth 2 (a strict saddle, T ~ log(1/ε)), H for depth
H ≥ 3 (non-strict, T ~ ε^{-(H-2)}), from the balanced one-mode flow u' = H u^{2-2/H}(s - u)."""

import jax.numpy as jnp
import numpy as np
import pytest

import gradflow as gf


@pytest.mark.parametrize("depth", [2, 3])
def test_fitted_order_at_the_origin_is_the_escape_order(depth):
    data = gf.data.Dataset(jnp.ones((1, 1)), jnp.full((1, 1), 2.0))
    model = gf.models.DeepLinear(weights=[jnp.zeros((1, 1))] * depth)
    balanced = np.full(depth, depth**-0.5)  # the balanced unit direction
    est = gf.diagnostics.escape_probe(model, data, [balanced], eps=(3e-2, 1e-2, 3e-3), t1=1e5)
    assert est.escaped and np.all(np.isfinite(est.times))
    assert np.all(np.diff(est.times[0]) > 0)  # smaller ε, later escape
    assert est.fitted_order == pytest.approx(depth, abs=0.15)
    # One layer moved only: (ε, 0, ..., 0) is itself a critical point for H >= 3 (every layer's
    # gradient is a product containing two zero layers), so nothing escapes; for H = 2 it has a
    # component on the Hessian's negative direction (1, 1)/√2 and escapes.
    one_layer = np.zeros(depth)
    one_layer[0] = 1.0
    est = gf.diagnostics.escape_probe(model, data, [one_layer], eps=(1e-2,), t1=1e3)
    assert est.escaped == (depth == 2)
