"""`gf.flow(..., clock="log")`: the flow integrated in s = log(1 + t), against an exact solution.

One sample x = 1, y = +1, the linear score f(x) = w x and the logistic loss F(w) = log(1 + e^{−w}):
w' = −F'(w) = 1/(1 + e^w), so w + e^w is t + const: from w(0) = 0, w(t) + e^{w(t)} = 1 + t exactly.
The loss has no minimiser and w(t) ≈ log t grows for ever.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import gradflow as gf


def _score(params, x):
    return params["w"] * x


def _exact(t):
    """w with w + e^w = 1 + t (Newton from log(1 + t), which is within 1 of it)."""
    t = np.asarray(t, float)
    w = np.log1p(t)
    for _ in range(60):
        w = w - (w + np.exp(w) - 1 - t) / (1 + np.exp(w))
    return w


@pytest.fixture(scope="module")
def problem():
    model = gf.models.Wrapped(_score, params={"w": jnp.zeros(1)}, in_dim=1, out_dim=1)
    return model, gf.Dataset(jnp.ones((1, 1)), jnp.ones((1, 1)))


def test_log_clock_follows_the_exact_logistic_flow_to_t_1e12_in_few_steps(problem):
    model, data = problem
    ts = np.concatenate([[0.0], np.geomspace(1e-3, 1e12, 31)])
    traj = gf.flow(model, data, 1e12, loss="logistic", clock="log", saveat=ts, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(traj.ts), ts, rtol=1e-12)
    w = np.asarray(traj.params.params["w"])[:, 0]
    np.testing.assert_allclose(w, _exact(ts), rtol=1e-7, atol=1e-9)
    assert traj.info["clock"] == "log"
    # 15 decades of t in ~100 steps: the steps in s stay of order one (the linear clock takes
    # ~430 steps here, its steps growing like t only after the solver has learnt the scale)
    assert traj.stats["num_steps"] < 200


def test_log_clock_stops_where_the_loss_falls_to_a_level_at_the_exact_time(problem):
    model, data = problem
    stop = gf.flow(model, data, 1e6, loss="logistic", clock="log", stop_below=1e-3, rtol=1e-10)
    # F(w) = log(1 + e^{−w}) = 1e-3 at w* = −log(e^{1e-3} − 1), reached at t = w* + e^{w*} − 1
    w_star = -np.log(np.expm1(1e-3))
    assert stop.info["stopped_at"] == pytest.approx(w_star + np.exp(w_star) - 1, rel=1e-7)
    assert float(stop.ts[-1]) == pytest.approx(stop.info["stopped_at"], rel=1e-12)


def test_unknown_clock_or_negative_start_is_a_config_error(problem):
    model, data = problem
    with pytest.raises(gf.ConfigError, match="clock"):
        gf.flow(model, data, 1.0, loss="logistic", clock="sqrt")
    with pytest.raises(gf.ConfigError, match="t0"):
        gf.flow(model, data, 1.0, loss="logistic", clock="log", t0=-0.5)
