"""`gf.flow` against exact answers (closed forms, the energy identity), its stop level, its
failures and its compilation cache. The canonical problems are in `tests/problems.py`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from problems import deep_linear as _deep_problem
from problems import leaves as _leaves
from problems import quadratic as _quad_problem
from problems import quadratic_exact as _quad_exact

import gradflow as gf

T_QUAD = 2.0
TS_QUAD = np.linspace(0.0, T_QUAD, 11)


# ---------------------------------------------------------------------------------------------
# closed forms


@pytest.mark.parametrize("solver", ["tsit5", "dopri5", "dopri8", "kvaerno5", "rkc"])
def test_flow_matches_matrix_exponential(solver):
    model, data = _quad_problem()
    # rtol bounds the local error per step; RKC, second order, takes ~10× more steps than the
    # fifth-order methods here and its global error is ~200× its rtol (1.9e-8 at rtol 1e-10).
    rtol = 1e-12 if solver == "rkc" else 1e-10
    traj = gf.flow(model, data, T_QUAD, saveat=TS_QUAD, rtol=rtol, atol=rtol / 100, solver=solver)
    exact = _quad_exact(model, data, TS_QUAD)
    got = np.asarray(traj.params.weights[0])
    err = np.max(np.abs(got - exact)) / np.max(np.abs(exact))
    assert err < 1e-8, (solver, err)
    assert traj.info["solver"] == solver
    np.testing.assert_allclose(traj.ts, TS_QUAD)
    st = traj.stats
    assert st["num_steps"] == st["num_accepted_steps"] + st["num_rejected_steps"] > 0
    assert st["function_evaluations"] > st["num_steps"]
    # F and |∇F| at the saves are those of the saved states.
    final = traj.final
    np.testing.assert_allclose(
        traj.loss[-1], gf.losses.HalfMSE().risk(final, data.moments()), rtol=1e-12
    )


def test_flow_with_l2_matches_matrix_exponential():
    model, data = _quad_problem()
    l2 = 0.3
    traj = gf.flow(model, data, T_QUAD, saveat=TS_QUAD, rtol=1e-10, atol=1e-12, l2=l2)
    exact = _quad_exact(model, data, TS_QUAD, l2=l2)
    np.testing.assert_allclose(traj.params.weights[0], exact, rtol=0, atol=1e-8)


def test_scalar_two_layer_net_matches_logistic_solution():
    """Balanced scalar depth-2 net w₁ = w₂ = a: u = a² obeys u' = 2u(s − u) (MODELS.md §1)."""
    s, u0, t1 = 1.5, 1e-3, 6.0
    data = gf.data.linear_teacher(jax.random.PRNGKey(0), 1, 1, 8, [s])
    a = np.sqrt(u0)
    sign = float(np.sign(data.moments().syx[0, 0]))  # Σ_yx = ±s: align the init with it
    model = gf.models.DeepLinear.from_weights([[[a]], [[sign * a]]])
    ts = np.linspace(0.0, t1, 31)
    traj = gf.flow(model, data, t1, saveat=ts, rtol=1e-11, atol=1e-13)
    u = sign * np.asarray(traj.params.weights[0][:, 0, 0] * traj.params.weights[1][:, 0, 0])
    e = np.exp(2 * s * ts)
    exact = s * e / (e - 1 + s / u0)
    np.testing.assert_allclose(u, exact, rtol=1e-8)


def test_energy_identity_on_dense_save():
    """dF/dt = −|∇F|² along the flow (fourth-order central differences on a dense save)."""
    model, data = _deep_problem()
    ts = np.linspace(0.0, 3.0, 601)
    traj = gf.flow(model, data, 3.0, saveat=ts, rtol=1e-11, atol=1e-13)
    loss, g2 = np.asarray(traj.loss), np.asarray(traj.grad_norm) ** 2
    h = ts[1] - ts[0]
    dfdt = (-loss[4:] + 8 * loss[3:-1] - 8 * loss[1:-3] + loss[:-4]) / (12 * h)
    scale = np.max(g2)
    assert scale > 1e-2  # the loss really moves
    np.testing.assert_allclose(dfdt, -g2[2:-2], rtol=0, atol=1e-7 * scale)
    assert np.all(np.diff(loss) < 0)


# ---------------------------------------------------------------------------------------------
# ensembles and descent


@pytest.mark.parametrize("solver", ["tsit5", "rkc"])
def test_ensemble_equals_individual_flows(solver):
    # rkc: each member picks its own stage count per step inside the vmapped solve
    _, data = _deep_problem()
    keys = jax.random.split(jax.random.PRNGKey(5), 3)
    make = lambda k: gf.models.DeepLinear([3, 4, 2], k, init_scale=0.5)
    ens = gf.ensemble(make, keys)
    assert isinstance(ens, gf.Ensemble) and ens.size == 3
    ts = np.linspace(0.0, 3.0, 601)
    tol = dict(rtol=1e-11, atol=1e-13, solver=solver)
    traj = gf.flow(ens, data, 3.0, saveat=ts, **tol)
    assert traj.ensemble_size == 3 and traj.loss.shape == (3, len(ts))
    for e, k in enumerate(keys):
        single = gf.flow(make(k), data, 3.0, saveat=ts, **tol)
        member = traj.member(e)
        for a, b in zip(_leaves(member.params), _leaves(single.params), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(member.loss, single.loss, rtol=1e-10, atol=1e-14)
        assert member.stats["num_steps"] == single.stats["num_steps"]


# ---------------------------------------------------------------------------------------------
# failures carry what was computed


def test_solver_error_on_max_steps():
    model, data = _quad_problem()
    with pytest.raises(gf.SolverError) as e:
        gf.flow(model, data, T_QUAD, saveat=TS_QUAD, rtol=1e-10, atol=1e-12, max_steps=3)
    traj = e.value.trajectory
    assert isinstance(traj, gf.Trajectory) and 1 <= len(traj) < len(TS_QUAD)
    assert np.all(np.isfinite(np.asarray(traj.loss)))
    assert "max_steps" in str(e.value)


# ---------------------------------------------------------------------------------------------
# stopping at a loss level


def test_stop_below_ends_where_the_loss_crosses_the_level():
    model, data = _deep_problem()
    ts = np.linspace(0.0, 20.0, 41)
    full = gf.flow(model, data, 20.0, saveat=ts, rtol=1e-10, atol=1e-12)
    level = 1e-3
    traj = gf.flow(model, data, 20.0, saveat=ts, rtol=1e-10, atol=1e-12, stop_below=level)
    t_stop = traj.info["stopped_at"]
    loss = np.asarray(traj.loss)
    assert t_stop is not None and float(traj.ts[-1]) == t_stop
    assert np.all(loss[:-1] > level)
    # The saves before the stop are those of the uninterrupted flow.
    n = len(traj) - 1
    np.testing.assert_allclose(np.asarray(traj.ts[:n]), ts[:n])
    np.testing.assert_allclose(loss[:n], np.asarray(full.loss)[:n], rtol=1e-12)
    # The stop is at the crossing: the flow integrated to t_stop independently has F = level
    # there (to the solve's accuracy), and the same state.
    at_stop = gf.flow(model, data, t_stop, saveat=[t_stop], rtol=1e-10, atol=1e-12)
    assert float(at_stop.loss[-1]) == pytest.approx(level, rel=1e-7)
    assert loss[-1] == pytest.approx(level, rel=1e-7)
    for a, b in zip(_leaves(traj.final), _leaves(at_stop.final), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-8)
    assert float(ts[n - 1]) < t_stop <= float(ts[n])


def test_stop_below_never_reached_is_the_plain_flow():
    model, data = _deep_problem()
    ts = np.linspace(0.0, 2.0, 11)
    plain = gf.flow(model, data, 2.0, saveat=ts)
    traj = gf.flow(model, data, 2.0, saveat=ts, stop_below=-1.0)
    assert traj.info["stopped_at"] is None and len(traj) == len(plain)
    np.testing.assert_array_equal(np.asarray(traj.loss), np.asarray(plain.loss))


def test_stop_below_refuses_an_ensemble():
    model, data = _deep_problem()
    members = gf.ensemble(
        lambda k: gf.models.DeepLinear([3, 4, 2], k, init_scale=0.5),
        jax.random.split(jax.random.PRNGKey(0), 2),
    )
    with pytest.raises(gf.ConfigError) as e:
        gf.flow(members, data, 1.0, stop_below=1e-3)
    assert e.value.field == "stop_below"


# ---------------------------------------------------------------------------------------------
# invalid configuration names the field


def _flow(**kw):
    model, data = _quad_problem()
    args = dict(model=model, data=data, t1=1.0)
    args.update(kw)
    return gf.flow(args.pop("model"), args.pop("data"), args.pop("t1"), **args)


def _descent(**kw):
    model, data = _quad_problem()
    args = dict(model=model, data=data, steps=10, lr=0.1)
    args.update(kw)
    return gf.descent(
        args.pop("model"), args.pop("data"), args.pop("steps"), args.pop("lr"), **args
    )


def _wrong_dims():
    return gf.Dataset(jnp.ones((20, 4)), jnp.ones((20, 2)))  # the model maps 3 → 2


@pytest.mark.parametrize(
    "call,kwargs,field",
    [
        (_flow, dict(t1=0.0), "t1"),
        (_flow, dict(t1=-1.0), "t1"),
        (_flow, dict(t1=np.inf), "t1"),
        (_flow, dict(t1=1.0, t0=2.0), "t1"),
        (_flow, dict(t0=np.nan), "t0"),
        (_flow, dict(rtol=0.0), "rtol"),
        (_flow, dict(rtol=-1e-8), "rtol"),
        (_flow, dict(rtol=np.nan), "rtol"),
        (_flow, dict(atol=0.0), "atol"),
        (_flow, dict(atol=np.inf), "atol"),
        (_flow, dict(solver="rk4"), "solver"),
        (_flow, dict(solver=3), "solver"),
        (_flow, dict(geometry="riemannian"), "geometry"),
        (_flow, dict(controller="p"), "controller"),
        (_flow, dict(saveat=[0.0, 0.5, 0.2]), "saveat"),
        (_flow, dict(saveat=[0.0, 2.0]), "saveat"),
        (_flow, dict(saveat=[-1.0, 0.5]), "saveat"),
        (_flow, dict(saveat=[]), "saveat"),
        (_flow, dict(saveat=[0.0, np.nan]), "saveat"),
        (_flow, dict(max_steps=0), "max_steps"),
        (_flow, dict(max_steps=2.5), "max_steps"),
        (_flow, dict(l2=-0.1), "l2"),
        (_flow, dict(l2=np.nan), "l2"),
        (_flow, dict(stop_below=np.nan), "stop_below"),
        (_flow, dict(data=_wrong_dims), "data"),
        (_flow, dict(data=lambda: (np.ones((3, 3)), np.ones((3, 2)))), "data"),
        (_descent, dict(steps=0), "steps"),
        (_descent, dict(steps=2.5), "steps"),
        (_descent, dict(lr=0.0), "lr"),
        (_descent, dict(lr=-0.1), "lr"),
        (_descent, dict(lr=np.nan), "lr"),
        (_descent, dict(optimizer="sgdx"), "optimizer"),
        (_descent, dict(optimizer=None), "optimizer"),
        (_descent, dict(geometry="riemannian"), "geometry"),
        (_descent, dict(save_every=0), "save_every"),
        (_descent, dict(l2=-1.0), "l2"),
        (_descent, dict(data=_wrong_dims), "data"),
    ],
)
def test_config_errors_name_the_field(call, kwargs, field):
    if callable(kwargs.get("data")):
        kwargs = dict(kwargs, data=kwargs["data"]())
    with pytest.raises(gf.ConfigError) as e:
        call(**kwargs)
    assert e.value.field == field
    assert str(e.value).startswith(f"invalid {field}=")


def test_non_finite_data_is_rejected():
    with pytest.raises(gf.ConfigError) as e:
        gf.Dataset(jnp.full((4, 3), jnp.inf), jnp.zeros((4, 2)))
    assert e.value.field == "data"


def test_ensemble_needs_keys():
    with pytest.raises(gf.ConfigError) as e:
        gf.ensemble(lambda k: gf.models.DeepLinear([2, 2], k), jnp.zeros((0, 2), jnp.uint32))
    assert e.value.field == "keys"


# ---------------------------------------------------------------------------------------------
# no recompilation for new values of the same shapes


def test_repeated_flows_do_not_recompile(compile_counter):
    # Shapes used by no other test, so the first call must trace and compile here.
    widths = [2, 3, 3]
    datas = [gf.data.linear_teacher(jax.random.PRNGKey(k), 2, 3, 9, [1.0, 0.3]) for k in range(3)]
    models = [gf.models.DeepLinear(widths, jax.random.PRNGKey(10 + k), 0.3) for k in range(3)]
    ts = np.linspace(0.0, 1.0, 7)
    counter = compile_counter
    with counter:
        first = gf.flow(models[0], datas[0], 1.0, saveat=ts)
        traces, compiles = counter.traces, counter.compiles
        assert traces >= 1 and compiles >= 1  # the counters see a real compilation
        again = [
            gf.flow(models[1], datas[0], 1.0, saveat=ts),  # new initial model
            gf.flow(models[0], datas[1], 1.0, saveat=ts),  # new data
            gf.flow(models[2], datas[2], 2.0, saveat=2 * ts, rtol=1e-6, atol=1e-9),  # new values
        ]
        assert counter.traces == traces, "flow re-traced for inputs of the same shapes"
        assert counter.compiles == compiles, "flow recompiled for inputs of the same shapes"
    assert not np.allclose(np.asarray(first.loss), np.asarray(again[0].loss))
    assert not np.allclose(np.asarray(first.loss), np.asarray(again[1].loss))
