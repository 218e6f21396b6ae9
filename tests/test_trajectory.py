"""The `Trajectory` container: indexing, members, path length, and exact save/load round trips."""

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pandas as pd
import pytest

import gradflow as gf


def _problem():
    data = gf.data.linear_teacher(jax.random.PRNGKey(0), 3, 2, 10, [2.0, 0.5])
    make = lambda k: gf.models.DeepLinear([3, 4, 2], k, init_scale=0.5)
    return data, make


@pytest.fixture(scope="module")
def single():
    data, make = _problem()
    return gf.descent(make(jax.random.PRNGKey(1)), data, 25, 0.05, save_every=4)


@pytest.fixture(scope="module")
def ensemble():
    data, make = _problem()
    ens = gf.ensemble(make, jax.random.split(jax.random.PRNGKey(2), 3))
    return gf.descent(ens, data, 25, 0.05, save_every=4)


@pytest.fixture(scope="module")
def flowed():
    data, make = _problem()
    return gf.flow(make(jax.random.PRNGKey(1)), data, 1.0, saveat=np.linspace(0, 1, 5))


def _assert_same(a: gf.Trajectory, b: gf.Trajectory):
    np.testing.assert_array_equal(a.ts, b.ts)
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_array_equal(a.grad_norm, b.grad_norm)
    la, lb = jtu.tree_leaves(a.params), jtu.tree_leaves(b.params)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype == np.float64
        np.testing.assert_array_equal(x, y)
    assert jtu.tree_structure(a.params) == jtu.tree_structure(b.params)
    for x, y in zip(jtu.tree_leaves(a.masses), jtu.tree_leaves(b.masses), strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.stats == b.stats
    assert a.info == b.info
    assert type(a.at(0)) is type(b.at(0))


def test_netcdf_round_trip_single(single, flowed, tmp_path):
    for i, traj in enumerate((single, flowed)):
        path = traj.save(tmp_path / f"t{i}.nc")
        back = gf.Trajectory.load(path)
        _assert_same(traj, back)
        assert back.ensemble_size is None
        np.testing.assert_array_equal(back.final.product(), traj.final.product())


def test_netcdf_round_trip_ensemble(ensemble, tmp_path):
    back = gf.Trajectory.load(ensemble.save(tmp_path / "e.nc"))
    _assert_same(ensemble, back)
    assert back.ensemble_size == 3
    _assert_same(ensemble.member(1), back.member(1))


@pytest.mark.parametrize("which", ["single", "ensemble"])
def test_parquet_round_trip(which, single, ensemble, tmp_path):
    traj = single if which == "single" else ensemble
    path = traj.save_metrics(tmp_path / "m.parquet")
    frame = pd.read_parquet(path)
    pd.testing.assert_frame_equal(frame, traj.metrics_frame(), check_exact=True)
    assert all(frame[c].dtype == np.float64 for c in ("t", "loss", "grad_norm"))
    if which == "ensemble":
        assert list(frame.columns) == ["member", "t", "loss", "grad_norm"]
        e = 2
        sub = frame[frame.member == e]
        np.testing.assert_array_equal(sub.loss.to_numpy(), np.asarray(traj.loss[e]))
    else:
        np.testing.assert_array_equal(frame.loss.to_numpy(), np.asarray(traj.loss))


def test_indexing_and_members(single, ensemble):
    assert len(single) == 8  # saves at steps 0, 4, ..., 24 and the final step 25
    np.testing.assert_allclose(single.ts[-1], 25 * 0.05)
    m = single.at(3)
    assert isinstance(m, gf.models.DeepLinear)
    np.testing.assert_array_equal(m.weights[0], single.params.weights[0][3])
    np.testing.assert_array_equal(single.final.weights[1], single.params.weights[1][-1])
    assert ensemble.ensemble_size == 3 and ensemble.loss.shape == (3, 8)
    batched = ensemble.at(2)
    assert batched.weights[0].shape == (3, 4, 3)
    mem = ensemble.member(1)
    assert mem.ensemble_size is None
    np.testing.assert_array_equal(mem.params.weights[0], ensemble.params.weights[0][1])
    short = ensemble.truncate(3)
    assert len(short) == 3 and short.loss.shape == (3, 3)
    assert single.models.weights[0].shape == (8, 4, 3)
    with pytest.raises(ValueError):
        single.member(0)


def test_path_length_in_metric():
    """A straight path θ(t) = θ₀ + t·v in the metric |v|_G² = Σ m|v|²: length |v|_G·(t₁ − t₀)."""
    model = gf.models.DeepLinear([2, 2], jax.random.PRNGKey(0), 1.0)
    ts = jnp.linspace(0.0, 2.0, 5)
    v = jnp.array([[1.0, 2.0], [2.0, 4.0]])  # |v| = 5
    params = jtu.tree_map(lambda w: w[None] + ts[:, None, None] * v, model)
    static = jtu.tree_map(lambda _: None, model)
    for mass in (1.0, 0.25):
        masses = jtu.tree_map(lambda _, m=mass: jnp.asarray(m), model)
        traj = gf.Trajectory(ts, params, static, jnp.zeros(5), jnp.zeros(5), masses, {}, {})
        np.testing.assert_allclose(traj.path_length(), 5.0 * 2.0 * np.sqrt(mass), rtol=1e-14)
        np.testing.assert_allclose(traj.segment_lengths(), 5.0 * 0.5 * np.sqrt(mass), rtol=1e-14)
