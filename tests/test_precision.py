"""The precision policy: float64 by default; `dtype="float32"` runs a whole flow or descent in
float32 (nothing promoted back to float64 on the way), refuses tolerances float32 cannot meet,
and says which precision ran."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from problems import deep_linear

import gradflow as gf


def _problem():
    return deep_linear(data_key=0, widths=(4, 4, 4, 4), n=32, s=(3.0, 1.5, 0.7), init_scale=0.3)


def test_float32_flow_is_within_1e3_of_float64_at_t5():
    model, data = _problem()
    ts = np.linspace(0.0, 5.0, 11)
    f64 = gf.flow(model, data, 5.0, saveat=ts, rtol=1e-10, atol=1e-12)
    f32 = gf.flow(model, data, 5.0, saveat=ts, rtol=1e-5, atol=1e-7, dtype="float32")
    assert f64.info["dtype"] == "float64" and f32.info["dtype"] == "float32"
    for leaf in jax.tree_util.tree_leaves((f32.params, f32.loss, f32.grad_norm)):
        assert leaf.dtype == jnp.float32  # nothing mixed silently
    w64 = np.asarray(f64.final.product())
    w32 = np.asarray(f32.final.product(), dtype=float)
    for a, b in zip(f32.final.weights, f64.final.weights, strict=True):
        rel = np.linalg.norm(np.asarray(a, float) - np.asarray(b)) / np.linalg.norm(b)
        assert rel < 1e-3, rel
    assert np.linalg.norm(w32 - w64) / np.linalg.norm(w64) < 1e-3
    # and the modes moved a lot over [0, 5]: the comparison is not of two initial states
    assert float(f64.loss[-1]) < 0.5 * float(f64.loss[0])


def test_float32_descent_runs_in_float32():
    model, data = _problem()
    gd = gf.descent(model, data, 50, 0.05, dtype="float32")
    assert gd.info["dtype"] == "float32" and gd.loss.dtype == jnp.float32
    ref = gf.descent(model, data, 50, 0.05)
    np.testing.assert_allclose(np.asarray(gd.loss, float), np.asarray(ref.loss), rtol=1e-5)


@pytest.mark.parametrize("rtol", [1e-7, 1e-10])
def test_float32_refuses_tolerances_it_cannot_meet(rtol):
    model, data = _problem()
    with pytest.raises(gf.ConfigError) as e:
        gf.flow(model, data, 1.0, rtol=rtol, dtype="float32")
    assert e.value.field == "rtol" and "float32" in str(e.value)


def test_unknown_dtype_is_refused():
    model, data = _problem()
    with pytest.raises(gf.ConfigError) as e:
        gf.flow(model, data, 1.0, dtype="float16")
    assert e.value.field == "dtype"
