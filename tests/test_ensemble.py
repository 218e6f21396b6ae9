"""Ensembles: `Ensemble.stack`, and every way of solving one (`flow(..., ensemble=...)`) against
the members' own flows."""

import jax
import numpy as np
import pytest
from problems import deep_linear as _deep_problem
from problems import leaves as _leaves

import gradflow as gf

TS = np.linspace(0.0, 3.0, 31)
TOL = dict(rtol=1e-10, atol=1e-12)


def _members():
    keys = jax.random.split(jax.random.PRNGKey(5), 3)
    # different init scales: the members' flows differ, so do their step sizes
    return [
        gf.models.DeepLinear([3, 4, 2], k, init_scale=s)
        for k, s in zip(keys, (0.2, 0.5, 1.5), strict=True)
    ]


@pytest.fixture(scope="module")
def singles():
    _, data = _deep_problem()
    return data, [gf.flow(m, data, 3.0, saveat=TS, **TOL) for m in _members()]


@pytest.mark.parametrize("strategy", ["vmap", "map", 2])
def test_per_member_strategies_equal_the_members_flows(singles, strategy):
    data, ones = singles
    traj = gf.flow(gf.Ensemble.stack(_members()), data, 3.0, saveat=TS, ensemble=strategy, **TOL)
    assert traj.ensemble_size == 3
    for e, one in enumerate(ones):
        member = traj.member(e)
        for a, b in zip(_leaves(member.params), _leaves(one.params), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
        assert member.stats["num_steps"] == one.stats["num_steps"]  # its own step sizes


def test_lockstep_members_share_the_steps(singles):
    data, ones = singles
    traj = gf.flow(gf.Ensemble.stack(_members()), data, 3.0, saveat=TS, ensemble="lockstep", **TOL)
    steps = traj.stats["num_steps"]
    assert len(set(steps)) == 1  # one controller for all
    # The shared controller's error norm is the RMS over all members' errors: it is driven by
    # the hardest members, so the easiest one takes more steps than on its own.
    assert steps[0] > min(one.stats["num_steps"] for one in ones)
    for e, one in enumerate(ones):
        for a, b in zip(_leaves(traj.member(e).params), _leaves(one.params), strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-8)  # within the tolerances


def test_stack_refuses_models_of_other_shapes():
    a = gf.models.DeepLinear([3, 4, 2], jax.random.PRNGKey(0))
    b = gf.models.DeepLinear([3, 5, 2], jax.random.PRNGKey(0))
    with pytest.raises(gf.ConfigError) as e:
        gf.Ensemble.stack([a, b])
    assert e.value.field == "models"
    with pytest.raises(gf.ConfigError):
        gf.flow(gf.Ensemble.stack([a, a]), _deep_problem()[1], 1.0, ensemble="sideways")


# ---- one dataset per member (seeds that draw their own data) -------------------------------


def _member_data():
    return [_deep_problem(data_key=k)[1] for k in (11, 12, 13)]


@pytest.fixture(scope="module")
def singles_own_data():
    datasets = _member_data()
    ones = [gf.flow(m, d, 3.0, saveat=TS, **TOL) for m, d in zip(_members(), datasets, strict=True)]
    return datasets, ones


@pytest.mark.parametrize("strategy", ["vmap", "map", "lockstep"])
def test_each_member_flows_on_its_own_data(singles_own_data, strategy):
    datasets, ones = singles_own_data
    ensemble = gf.Ensemble.stack(_members())
    traj = gf.flow(ensemble, datasets, 3.0, saveat=TS, ensemble=strategy, **TOL)
    # per-member stepping is the member's own solve; lockstep is within the tolerances
    tol = dict(rtol=0, atol=1e-8) if strategy == "lockstep" else dict(rtol=1e-12, atol=1e-14)
    for e, one in enumerate(ones):
        for a, b in zip(_leaves(traj.member(e).params), _leaves(one.params), strict=True):
            np.testing.assert_allclose(a, b, **tol)
        np.testing.assert_allclose(traj.loss[e], one.loss, **tol)
    # not the flow on shared data: the members' data matter
    shared = gf.flow(ensemble, datasets[0], 3.0, saveat=TS, ensemble=strategy, **TOL)
    assert np.abs(np.asarray(shared.loss[1]) - np.asarray(ones[1].loss)).max() > 1e-3


def test_descent_of_each_member_on_its_own_data():
    datasets = _member_data()
    traj = gf.descent(gf.Ensemble.stack(_members()), datasets, 40, 0.1, save_every=10)
    for e, (m, d) in enumerate(zip(_members(), datasets, strict=True)):
        one = gf.descent(m, d, 40, 0.1, save_every=10)
        for a, b in zip(_leaves(traj.member(e).params), _leaves(one.params), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(
    "model, data, words",
    [
        ("single", "three", "for an Ensemble of E members a list of E datasets"),
        ("ensemble", "two", "for an Ensemble of E members a list of E datasets"),
        ("ensemble", "shapes", "all of the same shapes"),
    ],
)
def test_member_data_are_checked(model, data, words):
    datasets = _member_data()
    data = {
        "three": datasets,
        "two": datasets[:2],
        "shapes": [*datasets[:2], _deep_problem(n=12)[1]],
    }[data]
    model = _members()[0] if model == "single" else gf.Ensemble.stack(_members())
    with pytest.raises(gf.ConfigError) as e:
        gf.flow(model, data, 1.0)
    assert e.value.field == "data" and words in str(e.value)


def test_auto_groups_on_a_cpu_fit_the_members_parameters_in_the_budget():
    from gradflow._solve import CPU_GROUP_BYTES, cpu_group, ensemble_strategy

    assert cpu_group(8 * 1024) == 6 and cpu_group(32 * 1024) == 1  # widths 16 and 32, depth 4
    assert cpu_group(1) == 64 and cpu_group(10**9) == 1
    if jax.default_backend() == "cpu":
        assert ensemble_strategy("auto", member_bytes=CPU_GROUP_BYTES // 3) == ("map", 3)
    # a flow records the group it used: members of 2 layers 8 x 8 (1,024 bytes each)
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    model, data = _deep_problem(widths=(8, 8, 8))
    members = gf.Ensemble.stack([gf.models.DeepLinear([8, 8, 8], k, 0.5) for k in keys])
    traj = gf.flow(members, data, 0.5)
    cpu = jax.default_backend() == "cpu"
    assert traj.info["ensemble"] == ("map (groups of 48)" if cpu else "vmap")
