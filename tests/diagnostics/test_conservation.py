"""Conservation laws of deep linear flows and the invariants of the adjacency form: the drift
functional on a hand-made trajectory, along layer and adjacency flows (which agree), and the
models it accepts.

Acceptance (issue 2): from a random small init, conservation drift ≤ 1e-8 relative at rtol 1e-10,
and the adjacency and layer forms agree to 1e-9 (`test_conservation_and_adjacency_agree`).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from problems import random_deep_linear, trajectory_through

import gradflow as gf

SINGULAR_VALUES = [3.0, 2.0, 1.0]


@pytest.fixture(scope="module")
def data():
    return gf.data.linear_teacher(jax.random.PRNGKey(0), 4, 4, 64, SINGULAR_VALUES)


# --------------------------------------------------------------------------------------------
# conservation drift: the functional itself, then along flows


def test_conservation_drift_functional(data):
    # A hand-made two-point "trajectory": W_1(t1) = W_1(0) + δ E, so
    # ΔC_1 = −(W_1 δEᵀ + δE W_1ᵀ + δ²EEᵀ).
    model = random_deep_linear(3, [4, 3, 3, 4])
    e = np.zeros((3, 4))
    e[0, 1] = 1.0
    delta = 1e-3
    moved = gf.models.DeepLinear.from_weights([model.weights[0] + delta * e, *model.weights[1:]])
    traj = trajectory_through([model, moved], [0.0, 1.0])
    out = gf.diagnostics.conservation_drift(traj)
    w1 = np.asarray(model.weights[0])
    expected = np.linalg.norm(w1 @ (delta * e).T + delta * e @ w1.T + delta**2 * e @ e.T)
    assert out.per_layer[0] == pytest.approx(expected, rel=1e-12)
    assert out.per_layer[1] == 0.0
    assert out.max_abs == pytest.approx(expected, rel=1e-12)
    scale = max(sum(float(jnp.sum(w**2)) for w in x.weights) for x in (model, moved))
    assert out.relative == pytest.approx(expected / scale, rel=1e-12)


@pytest.fixture(scope="module")
def layer_and_adjacency_flows(data):
    model = random_deep_linear(2, [4, 4, 4, 4], scale=0.1)  # small random init, depth 3
    t1 = 30.0
    ts = np.linspace(0.0, t1, 401)
    kw = dict(rtol=1e-10, atol=1e-14, saveat=ts)
    layers = gf.flow(model, data, t1, **kw)
    adjacency = gf.flow(gf.models.AdjacencyDeepLinear.from_layers(model), data, t1, **kw)
    return layers, adjacency


def test_conservation_and_adjacency_agree(layer_and_adjacency_flows, data):
    layers, adjacency = layer_and_adjacency_flows
    # the flow went through the saddles to the minimum (the comparison covers real dynamics)
    assert float(layers.loss[-1]) < 1e-5 and float(layers.loss[0]) > 6.9
    drift = gf.diagnostics.conservation_drift(layers)
    inv = gf.diagnostics.adjacency_invariants(adjacency)
    print(
        f"layer drift relative {drift.relative:.2e} (abs {drift.max_abs:.2e}); adjacency "
        f"drift relative {inv.conservation.relative:.2e}; nilpotency "
        f"{inv.nilpotency_residual:.1e}, leakage {inv.pattern_leakage:.1e}"
    )
    assert drift.relative <= 1e-8
    assert inv.conservation.relative <= 1e-8
    assert len(drift.per_layer) == 2 and drift.series.shape == (len(layers), 2)
    assert inv.nilpotency_residual == 0.0 and inv.pattern_leakage == 0.0
    # the two forms give the same trajectory
    as_layers = jax.vmap(lambda p: eqx.combine(p, adjacency.static).to_layers().weights)(
        adjacency.params
    )
    diff = max(
        float(np.max(np.linalg.norm(np.asarray(a) - np.asarray(b), axis=(-2, -1))))
        for a, b in zip(as_layers, layers.params.weights, strict=True)
    )
    scale = float(
        np.max(
            np.sqrt(sum(np.sum(np.asarray(w) ** 2, axis=(-2, -1)) for w in layers.params.weights))
        )
    )
    print(f"adjacency vs layers: max_t |ΔW|_F = {diff:.2e}, relative {diff / scale:.2e}")
    assert diff / scale <= 1e-9
    # and the same saddle timeline
    t_l = gf.diagnostics.saddle_timeline(layers, data)
    t_a = gf.diagnostics.saddle_timeline(adjacency, data)
    np.testing.assert_allclose(t_a.learn_times, t_l.learn_times, rtol=1e-9)


def test_conservation_drift_of_ensembles_and_other_models():
    # an ensemble: every number per member, equal to the member's own drift
    members = [
        trajectory_through(
            [random_deep_linear(k, [4, 3, 4]), random_deep_linear(k + 3, [4, 3, 4])], [0.0, 1.0]
        )
        for k in range(3)
    ]
    params = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *(t.params for t in members))
    z = jnp.zeros((3, 2))
    first = members[0]
    ens = gf.Trajectory(first.ts, params, first.static, z, z, first.masses, {}, {})
    drift = gf.diagnostics.conservation_drift(ens)
    assert drift.max_abs.shape == (3,) and drift.series.shape == (3, 2, 1)
    for e, member in enumerate(members):
        single = gf.diagnostics.conservation_drift(member)
        assert single.max_abs > 0
        assert drift.max_abs[e] == pytest.approx(single.max_abs, rel=1e-14)
        assert drift.relative[e] == pytest.approx(single.relative, rel=1e-14)
        assert drift.per_layer[0][e] == pytest.approx(single.per_layer[0], rel=1e-14)
    # depth 1 conserves nothing
    flat = random_deep_linear(0, [4, 4])
    one = gf.diagnostics.conservation_drift(trajectory_through([flat, flat], [0.0, 1.0]))
    assert one.max_abs == 0.0 and one.per_layer == [] and one.series.shape == (2, 0)
    # models without conservation laws are refused, naming the accepted kinds
    resnet = gf.models.ResNet(4, 4, 2, 3, 4, key=jax.random.PRNGKey(0))
    with pytest.raises(gf.ConfigError, match="DeepLinear or AdjacencyDeepLinear"):
        gf.diagnostics.conservation_drift(trajectory_through([resnet, resnet], [0.0, 1.0]))
    with pytest.raises(gf.ConfigError, match="AdjacencyDeepLinear"):
        gf.diagnostics.adjacency_invariants(members[0])
