"""`gf.flow_in_pieces`: pieces take the steps of one solve, a stop level ends them, and a flow
interrupted between pieces resumes from its checkpoint to the bit-identical trajectory."""

import jax
import numpy as np
import pytest
from problems import deep_linear as _deep_problem
from problems import leaves as _leaves

import gradflow as gf
from gradflow import _interrupt

TS = np.concatenate([[0.0], np.geomspace(0.05, 20.0, 24)])
TOL = dict(rtol=1e-9, atol=1e-12)


def _same(a: gf.Trajectory, b: gf.Trajectory) -> None:
    """Bit-identical trajectories: times, states, F, |∇F| and solver statistics."""
    np.testing.assert_array_equal(np.asarray(a.ts), np.asarray(b.ts))
    for x, y in zip(_leaves(a.params), _leaves(b.params), strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(np.asarray(a.loss), np.asarray(b.loss))
    np.testing.assert_array_equal(np.asarray(a.grad_norm), np.asarray(b.grad_norm))
    assert a.stats == b.stats


@pytest.mark.parametrize("solver", ["tsit5", "rkc"])
def test_pieces_follow_the_single_solve(solver):
    model, data = _deep_problem()
    single = gf.flow(model, data, TS[-1], saveat=TS, solver=solver, **TOL)
    pieces = gf.flow_in_pieces(model, data, TS, piece=5, solver=solver, **TOL)
    assert pieces.info["pieces"] == 5 and len(pieces) == len(TS)
    np.testing.assert_array_equal(np.asarray(pieces.ts), TS)
    for a, b in zip(_leaves(pieces.params), _leaves(single.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)
    # One piece is exactly the single solve.
    whole = gf.flow_in_pieces(model, data, TS, piece=len(TS) - 1, solver=solver, **TOL)
    _same(whole, single)


def test_stop_level_ends_the_pieces():
    model, data = _deep_problem()
    level = 1e-3
    single = gf.flow(model, data, TS[-1], saveat=TS, stop_below=level, **TOL)
    pieces = gf.flow_in_pieces(model, data, TS, piece=4, stop_below=level, **TOL)
    assert pieces.info["stopped_at"] == pytest.approx(single.info["stopped_at"], rel=1e-6)
    assert float(pieces.loss[-1]) == pytest.approx(level, rel=1e-7)
    assert pieces.info["pieces"] < 6  # the later pieces were never solved


def _in_threes(model, data, solver, checkpoint, **options):
    """The flow over TS in pieces of 3 saves, checkpointed to `checkpoint`."""
    return gf.flow_in_pieces(
        model, data, TS, piece=3, solver=solver, checkpoint=checkpoint, **options, **TOL
    )


@pytest.mark.parametrize("solver", ["tsit5", "rkc"])
def test_interrupted_flow_resumes_bit_identically(tmp_path, solver):
    model, data = _deep_problem()
    uninterrupted = _in_threes(model, data, solver, tmp_path / "a")
    calls = []

    def interrupt_after_two(piece):
        calls.append(piece)
        if len(calls) == 2:
            _interrupt.request("test")
        return piece

    try:
        with pytest.raises(gf.RunInterrupted):
            _in_threes(model, data, solver, tmp_path / "b", on_piece=interrupt_after_two)
    finally:
        _interrupt.clear()
    assert len(calls) == 2
    done = []
    resumed = _in_threes(
        model, data, solver, tmp_path / "b", progress=lambda i, n: done.append((i, n))
    )
    assert done[0] == (2, 8) and done[-1] == (8, 8)  # it started from the third piece
    _same(resumed, uninterrupted)
    # A completed checkpoint returns the trajectory without solving again.
    again = gf.flow_in_pieces(
        model, data, TS, piece=3, solver=solver, checkpoint=tmp_path / "b", **TOL
    )
    _same(again, uninterrupted)


def test_a_checkpoint_of_another_flow_is_refused(tmp_path):
    model, data = _deep_problem()
    gf.flow_in_pieces(model, data, TS[:7], piece=3, checkpoint=tmp_path, **TOL)
    other, _ = _deep_problem(key=7)
    with pytest.raises(gf.ConfigError) as e:
        gf.flow_in_pieces(other, data, TS[:7], piece=3, checkpoint=tmp_path, **TOL)
    assert e.value.field == "checkpoint"
    with pytest.raises(gf.ConfigError):
        gf.flow_in_pieces(model, data, TS[:7], piece=3, checkpoint=tmp_path, rtol=1e-7)


def test_ensemble_in_pieces_equals_members():
    _, data = _deep_problem()
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    make = lambda k: gf.models.DeepLinear([3, 4, 2], k, init_scale=0.5)
    ens = gf.flow_in_pieces(gf.ensemble(make, keys), data, TS, piece=6, **TOL)
    assert ens.ensemble_size == 2 and ens.loss.shape == (2, len(TS))
    for e, key in enumerate(keys):
        one = gf.flow_in_pieces(make(key), data, TS, piece=6, **TOL)
        for a, b in zip(_leaves(ens.member(e).params), _leaves(one.params), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_failure_in_a_later_piece_keeps_the_earlier_ones():
    model, data = _deep_problem()
    with pytest.raises(gf.SolverError) as e:
        gf.flow_in_pieces(model, data, TS, piece=6, max_steps=12, **TOL)
    traj = e.value.trajectory
    assert len(traj) >= 2 and float(traj.ts[-1]) < TS[-1]
    assert np.all(np.isfinite(np.asarray(traj.loss)))
    assert traj.result == "max_steps_reached"
