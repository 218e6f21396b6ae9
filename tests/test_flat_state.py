"""Explicit Runge-Kutta solves run on the parameters raveled into one vector (`_solve._flat_state`):
the same flow as on the leaves, to round-off, with the same steps, for plain flows, ensembles,
continued pieces and stop events; other solvers and mixed dtypes keep the leaves."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from problems import deep_linear, leaves

import gradflow as gf
from gradflow import _programs, _solve

TS = np.linspace(0.0, 3.0, 7)


@pytest.fixture(autouse=True)
def no_program_store():
    """The store off: it would hand the second run the program the first one stored (the same
    call, as far as its key can see: the patch below is invisible to it)."""
    previous = _programs.directory()
    _programs.enable(None)
    yield
    _programs.enable(previous)


def _both(monkeypatch, run):
    """run() on the raveled state, then on the leaves."""
    flat = run()
    monkeypatch.setattr(_solve, "_flat_state", lambda solver, params: False)
    jax.clear_caches()  # the compiled solves would be reused: the patch is seen only when traced
    tree = run()
    jax.clear_caches()  # and the leaves' solves must not outlive the patch
    return flat, tree


def _close(a, b):
    for x, y in zip(leaves(a.params), leaves(b.params), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(a.loss), np.asarray(b.loss), rtol=1e-12, atol=1e-14)
    assert a.stats["num_steps"] == b.stats["num_steps"]


def test_which_solves_are_raveled():
    model, _ = deep_linear()
    params = list(model.weights)
    assert _solve._flat_state(diffrax.Tsit5(), params)
    assert _solve._flat_state(diffrax.Dopri8(), params)
    assert not _solve._flat_state(diffrax.Kvaerno5(), params)  # Newton's linear solves
    assert not _solve._flat_state(diffrax.Tsit5(), params[:1])  # one leaf: nothing to gain
    mixed = [params[0], params[1].astype(jnp.float32)]
    assert not _solve._flat_state(diffrax.Tsit5(), mixed)  # raveling would cast


@pytest.mark.parametrize("solver", ["tsit5", "dopri5"])
def test_a_raveled_flow_is_the_flow_on_the_leaves(monkeypatch, solver):
    model, data = deep_linear()
    flat, tree = _both(monkeypatch, lambda: gf.flow(model, data, 3.0, saveat=TS, solver=solver))
    _close(flat, tree)


def test_raveled_ensembles_pieces_and_events(monkeypatch):
    model, data = deep_linear()
    members = gf.ensemble(
        lambda k: gf.models.DeepLinear([3, 4, 2], k, init_scale=0.5),
        jax.random.split(jax.random.PRNGKey(3), 3),
    )

    def run():
        return (
            gf.flow(members, data, 3.0, saveat=TS, ensemble="lockstep"),
            gf.flow(members, data, 3.0, saveat=TS, ensemble="map"),
            gf.flow_in_pieces(model, data, TS, piece=2),
            gf.flow(model, data, 3.0, saveat=TS, stop_below=0.05),
        )

    flat, tree = _both(monkeypatch, run)
    for a, b in zip(flat, tree, strict=True):
        _close(a, b)
    assert flat[-1].info["stopped_at"] is not None  # the event fired
    assert flat[-1].info["stopped_at"] == pytest.approx(tree[-1].info["stopped_at"], rel=1e-12)
