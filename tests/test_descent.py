"""`gf.descent` against a hand-written loop, its divergence handling and its compilation cache."""

import jax
import jax.tree_util as jtu
import numpy as np
import pytest
from problems import deep_linear as _deep_problem
from problems import leaves as _leaves
from problems import quadratic as _quad_problem

import gradflow as gf


def test_gd_equals_hand_written_loop():
    model, data = _deep_problem()
    lr, steps, every = 0.05, 23, 5
    traj = gf.descent(model, data, steps, lr, optimizer="gd", save_every=every)
    stats = data.moments()
    risk = gf.losses.HalfMSE().risk
    grad = jax.jit(jax.grad(lambda m: risk(m, stats)))
    m, saved = model, [model]
    for k in range(1, steps + 1):
        g = grad(m)
        m = jtu.tree_map(lambda p, gi: p - lr * gi, m, g)
        if k % every == 0 or k == steps:
            saved.append(m)
    expected_steps = [0, 5, 10, 15, 20, 23]
    np.testing.assert_allclose(traj.ts, np.array(expected_steps) * lr, rtol=1e-15)
    assert len(traj) == len(saved)
    for i, mi in enumerate(saved):
        for a, b in zip(_leaves(traj.at(i).weights), _leaves(mi.weights), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(traj.loss[i], risk(mi, stats), rtol=1e-12)
    assert traj.info["kind"] == "descent" and traj.info["optimizer"] == "gd"


def test_divergence_error_carries_the_last_finite_iterate():
    """GD on the quadratic with lr far above 2/λ_max blows up; the error keeps the saves before
    and the last iterate at which F and ∇F were finite, at its true time k·lr (k from the same
    iteration written in NumPy)."""
    model, data = _quad_problem()
    lr = 1e3
    with pytest.raises(gf.DivergenceError) as e:
        gf.descent(model, data, 400, lr, save_every=10)
    traj = e.value.trajectory
    assert "lr=1000" in str(e.value)
    m = data.moments()
    sxx, syx, b = np.asarray(m.sxx), np.asarray(m.syx), np.asarray(model.weights[0])
    last = 0
    with np.errstate(over="ignore", invalid="ignore"):
        for step in range(400):
            grad = b @ sxx - syx
            value = 0.5 * np.sum((b @ sxx) * b) - np.sum(b * syx) + 0.5 * float(m.tr_syy)
            if not (np.isfinite(value) and np.all(np.isfinite(grad))):
                break
            last = step
            b = b - lr * grad
    assert 0 < last < 400
    assert np.all(np.isfinite(np.asarray(traj.loss)))
    assert all(np.all(np.isfinite(a)) for a in _leaves(traj.params))
    saves = np.arange(0, last + 1, 10)
    expected = np.concatenate([saves[saves < last], [last]]) * lr
    np.testing.assert_allclose(traj.ts, expected)


def test_repeated_descents_do_not_recompile(compile_counter):
    widths = [2, 3, 3]
    datas = [gf.data.linear_teacher(jax.random.PRNGKey(k), 2, 3, 9, [1.0, 0.3]) for k in range(2)]
    models = [gf.models.DeepLinear(widths, jax.random.PRNGKey(20 + k), 0.3) for k in range(2)]
    counter = compile_counter
    with counter:
        gf.descent(models[0], datas[0], 30, 0.1, save_every=10)
        traces, compiles = counter.traces, counter.compiles
        assert traces >= 1 and compiles >= 1
        gf.descent(models[1], datas[1], 30, 0.05, save_every=10)
        gf.descent(models[0], datas[1], 30, 0.2, save_every=10)
        assert counter.traces == traces and counter.compiles == compiles
