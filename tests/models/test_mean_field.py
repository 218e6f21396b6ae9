"""Mean-field ResNets: forward map, masses and geometries, the conditional-OT flow's defining
properties (velocity −L·M ∂F/∂θ, frozen layer coordinate, energy identity, symmetry), the L2
convention, and the equality with `gf.models.ResNet`'s trajectory."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradflow as gf
from gradflow._problem import trainable_masses
from gradflow.data import tanh_teacher
from gradflow.geometry import as_geometry

L, M, Q = 3, 4, 4


@pytest.fixture(scope="module")
def data():
    return tanh_teacher(jax.random.PRNGKey(0), 8, 2, 1)


@pytest.fixture(scope="module")
def model():
    return gf.models.MeanFieldResNet(2, Q, L, M, 1, key=jax.random.PRNGKey(1), init_scale=1.0)


@pytest.fixture(scope="module")
def traj(model, data):
    return _cw_flow(model, data, np.linspace(0.0, 2.0, 201))


def _cw_flow(model, data, ts):
    """The conditional-Wasserstein flow to t = 2, saved at `ts`, at these tests' tolerances."""
    return gf.flow(
        model, data, 2.0, geometry="conditional_wasserstein", saveat=ts, rtol=1e-11, atol=1e-13
    )


def _loop_forward(model, x):
    h = np.pad(np.asarray(x), ((0, 0), (0, model.dim - model.in_dim)))
    u, w, b = (np.asarray(a) for a in (model.u, model.w, model.b))
    for k in range(model.layers):
        dh = np.zeros_like(h)
        for j in range(model.particles):
            dh += np.tanh(h @ w[k, j] + b[k, j])[:, None] * u[k, j][None, :]
        h = h + dh / (model.layers * model.particles)
    return h[:, model.dim - model.out_dim :]


def test_forward_matches_the_particle_sum(model, data):
    np.testing.assert_allclose(model(data.x), _loop_forward(model, data.x), rtol=0, atol=1e-14)
    hs = model.hidden_states(data.x)
    assert hs.shape == (L + 1, data.n, Q)
    np.testing.assert_allclose(model.readout(hs[-1]), model(data.x), atol=1e-15)
    np.testing.assert_allclose(model.layer_positions(), (np.arange(L) + 0.5) / L)


@pytest.mark.parametrize("block", [1024, 0, None])
def test_particle_blocks_give_the_same_forward_map_and_gradient(data, block):
    # Beyond `particle_block` particles the sum over a layer's particles runs block by block,
    # with padding (here 2 blocks of 551 for 1101 particles, one padding particle): the same
    # numbers as the plain sum; 0 is no blocking, None the backend's choice.
    m = 1024 + 77
    model = gf.models.MeanFieldResNet(
        2, Q, 2, m, 1, key=jax.random.PRNGKey(2), init_scale=1.0, particle_block=block
    )

    def plain(u, w, b):
        h = jnp.pad(data.x, ((0, 0), (0, Q - 2)))
        for k in range(2):
            h = h + jnp.tanh(h @ w[k].T + b[k]) @ u[k] / (2 * m)
        return h[:, Q - 1 :]

    np.testing.assert_allclose(model(data.x), plain(model.u, model.w, model.b), atol=1e-15)
    risk = lambda f: lambda u, w, b: 0.5 * jnp.mean(jnp.sum((f(u, w, b) - data.y) ** 2, -1))
    blocked = risk(lambda u, w, b: eqx.tree_at(lambda t: (t.u, t.w, t.b), model, (u, w, b))(data.x))
    grads = jax.grad(blocked, argnums=(0, 1, 2))(model.u, model.w, model.b)
    expected = jax.grad(risk(plain), argnums=(0, 1, 2))(model.u, model.w, model.b)
    for g, e in zip(grads, expected, strict=True):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-15 * float(jnp.max(jnp.abs(e))) + 1e-18)


def test_particle_block_is_chosen_per_backend(monkeypatch):
    from gradflow.models.mean_field import particle_block

    assert particle_block("cpu") == 1024 and particle_block("gpu") == 0
    monkeypatch.setenv("GRADFLOW_PARTICLE_BLOCK", "4096")
    assert particle_block("cpu") == particle_block("gpu") == 4096
    with pytest.raises(gf.ConfigError):
        gf.models.MeanFieldResNet(2, Q, 2, 3, 1, key=jax.random.PRNGKey(2), particle_block=-1)


def test_masses_and_layered(model):
    assert model.layered
    masses = trainable_masses(model)
    for leaf in jax.tree_util.tree_leaves(masses):
        assert float(leaf) == pytest.approx(1.0 / (L * M))
    two = gf.models.TwoLayerMeanField(2, 5, 1, key=jax.random.PRNGKey(0))
    assert not two.layered
    assert all(float(m) == pytest.approx(0.2) for m in jax.tree_util.tree_leaves(two.masses()))


def test_geometry_checks(model, data):
    with pytest.raises(gf.ConfigError):
        gf.flow(model, data, 1.0, geometry="wasserstein")  # layered: needs the conditional one
    two = gf.models.TwoLayerMeanField(2, 5, 1, key=jax.random.PRNGKey(0))
    with pytest.raises(gf.ConfigError):
        gf.flow(two, data, 1.0, geometry="conditional_wasserstein")
    lin = gf.models.DeepLinear([2, 3, 1], key=jax.random.PRNGKey(0))
    for geometry in ("wasserstein", "conditional_wasserstein", "fisher-rao"):
        with pytest.raises(gf.ConfigError):
            gf.flow(lin, data, 1.0, geometry=geometry)


def test_negative_l2_is_rejected(model, data):
    with pytest.raises(gf.ConfigError) as err:
        gf.flow(model, data, 1.0, geometry="conditional_wasserstein", l2=-0.1)
    assert err.value.field == "l2"


def value_and_grad(static, masses, l2):
    """(params, data) → (F, ∇F) of the objective with L2 weight l2, through the problem object
    (`masses` are the model's own: the problem recomputes them)."""

    def vg(params, data):
        problem, p = gf.GradientFlowProblem.from_model(eqx.combine(params, static), data, l2=l2)
        return problem.value_and_grad(p)

    return vg


def test_conditional_velocity_is_LM_times_gradient(model, data):
    params, static = eqx.partition(model, model.trainable())
    masses = trainable_masses(model)
    _, g = value_and_grad(static, masses, 0.0)(params, data)
    v = as_geometry("conditional_wasserstein").velocity(g, masses)
    for vi, gi in zip(jax.tree_util.tree_leaves(v), jax.tree_util.tree_leaves(g), strict=True):
        np.testing.assert_allclose(vi, -L * M * gi, rtol=1e-14)
    # the gradient itself against a central finite difference along a random direction
    d = jax.tree_util.tree_map(lambda a: jax.random.normal(jax.random.PRNGKey(3), a.shape), params)
    f = lambda p: float(gf.losses.HalfMSE().risk(eqx.combine(p, static), data))
    eps = 1e-6
    plus = jax.tree_util.tree_map(lambda a, b: a + eps * b, params, d)
    minus = jax.tree_util.tree_map(lambda a, b: a - eps * b, params, d)
    fd = (f(plus) - f(minus)) / (2 * eps)
    dot = sum(
        float(jnp.sum(a * b))
        for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(d), strict=True)
    )
    assert fd == pytest.approx(dot, rel=1e-7, abs=1e-10)


def test_two_layer_wasserstein_velocity(data):
    two = gf.models.TwoLayerMeanField(2, 6, 1, key=jax.random.PRNGKey(2))
    x = data.x
    ref = np.tanh(np.asarray(x) @ np.asarray(two.w).T + np.asarray(two.b)) @ np.asarray(two.u) / 6
    np.testing.assert_allclose(two(x), ref, atol=1e-15)
    params, static = eqx.partition(two, two.trainable())
    masses = trainable_masses(two)
    _, g = value_and_grad(static, masses, 0.0)(params, data)
    v = as_geometry("wasserstein").velocity(g, masses)
    np.testing.assert_allclose(v.u, -6 * g.u, rtol=1e-14)


def test_layer_coordinate_never_moves_and_marginal_stays_uniform(traj):
    final = traj.final
    assert final.layers == L and final.particles == M
    np.testing.assert_allclose(final.layer_positions(), (np.arange(L) + 0.5) / L)
    # every layer keeps M particles of mass 1/(L M): the s-marginal is uniform, 1/L per layer
    for m in jax.tree_util.tree_leaves(traj.masses):
        assert float(m) * M == pytest.approx(1.0 / L)
    assert traj.params.u.shape == (len(traj), L, M, Q)
    # and the particles did move
    assert float(jnp.max(jnp.abs(traj.params.u[-1] - traj.params.u[0]))) > 1e-3


def test_energy_identity_along_the_solve(traj, model, data):
    """dF/dt = −∫|∇_θ δF/δμ|² dμ, with grad_norm the metric norm of the gradient."""
    # grad_norm is (Σ_j m_j |∇_θ δF/δμ(θ_j)|²)^{1/2} with ∇_θ δF/δμ(θ_j) = L M ∂F/∂θ_j
    params, static = eqx.partition(model, model.trainable())
    _, g = value_and_grad(static, trainable_masses(model), 0.0)(params, data)
    per_particle = L * M * jnp.concatenate([g.u, g.w, g.b[..., None]], axis=-1)
    integral = float(jnp.sum(per_particle**2) / (L * M))
    assert float(traj.grad_norm[0]) ** 2 == pytest.approx(integral, rel=1e-12)
    # dF/dt from the saved losses (central differences) against −|∇F|²
    t, f, gn = np.asarray(traj.ts), np.asarray(traj.loss), np.asarray(traj.grad_norm)
    dfdt = (f[2:] - f[:-2]) / (t[2:] - t[:-2])
    np.testing.assert_allclose(dfdt, -(gn[1:-1] ** 2), rtol=1e-3, atol=1e-8)
    cert = gf.diagnostics.energy_dissipation(traj)
    assert cert.residual_max < 1e-6
    assert cert.speed_ratio_median == pytest.approx(1.0, abs=1e-4)


def test_permuting_particles_within_a_layer_changes_nothing(model, data, traj):
    perm = np.stack([np.random.default_rng(k).permutation(M) for k in range(L)])
    take = lambda a: jnp.take_along_axis(a, perm.reshape(L, M, *([1] * (a.ndim - 2))), axis=1)
    permuted = gf.models.MeanFieldResNet(
        2, Q, L, M, 1, positions=(take(model.u), take(model.w), take(model.b))
    )
    np.testing.assert_allclose(permuted(data.x), model(data.x), atol=1e-15)
    tp = _cw_flow(permuted, data, traj.ts)
    np.testing.assert_allclose(tp.loss, traj.loss, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(tp.final.u, take(traj.final.u), atol=1e-9)
    assert gf.diagnostics.conditional_wasserstein(tp.final, traj.final) < 1e-8


def test_replicated_particles_are_the_same_measure(model, data, traj):
    doubled = model.replicate(2)
    np.testing.assert_allclose(doubled(data.x), model(data.x), atol=1e-15)
    td = _cw_flow(doubled, data, traj.ts)
    np.testing.assert_allclose(td.loss, traj.loss, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(td.final.deduplicate(2).u, traj.final.u, atol=1e-8)


def test_l2_is_lambda_times_second_moment(model, data):
    """l2=λ adds λ ∫∫|θ|² dμ_s ds = λ (1/(LM)) Σ_{k,j} |θ_{k,j}|² (MODELS.md §4: paper's λ/2)."""
    lam = 0.3
    params, static = eqx.partition(model, model.trainable())
    masses = trainable_masses(model)
    f0, _ = value_and_grad(static, masses, 0.0)(params, data)
    f1, g1 = value_and_grad(static, masses, lam)(params, data)
    second = float(jnp.mean(jnp.sum(model.particle_positions() ** 2, axis=-1)))
    assert float(f1 - f0) == pytest.approx(lam * second, rel=1e-12)
    # stationarity form: ∇_θ δF/δμ = ∇_θ δR/δμ + 2λθ
    _, g0 = value_and_grad(static, masses, 0.0)(params, data)
    np.testing.assert_allclose(L * M * (g1.u - g0.u), 2 * lam * model.u, atol=1e-14)


@pytest.mark.parametrize("activation", ["tanh", "gelu"])
def test_same_trajectory_as_the_resnet(data, activation):
    """A MeanFieldResNet with L layers of M particles is the ResNet of depth L and width M.

    ResNet: h ← h + 1/(L√m) V σ(W h/√q), Z_k' = −L ∂F/∂Z_k. Particles: u_{k,j} = √m V_k[:, j],
    w_{k,j} = √m W_k[j, :], b = 0 (the ResNet has no bias; fixed), γ = 1/√(m q) in
    f(x, θ) = u σ(γ wᵀx + b); then θ_{k,j}' = −L m ∂F/∂θ_{k,j} is exactly the ResNet's flow.
    """
    res = gf.models.ResNet(
        2, Q, 5, L, 1, key=jax.random.PRNGKey(4), activation=activation, init="iid"
    )
    mf = gf.models.MeanFieldResNet.from_resnet(res)
    assert mf.particles == 5 and mf.layers == L and not mf.bias
    np.testing.assert_allclose(mf(data.x), res(data.x), atol=1e-14)
    back = mf.to_resnet()
    np.testing.assert_allclose(back.V, res.V, atol=1e-14)
    np.testing.assert_allclose(back.W, res.W, atol=1e-14)
    ts = np.linspace(0.0, 3.0, 13)
    kw = dict(geometry="conditional_wasserstein", saveat=ts, rtol=1e-12, atol=1e-14)
    tr_res = gf.flow(res, data, 3.0, **kw)
    tr_mf = gf.flow(mf, data, 3.0, **kw)
    assert float(tr_res.loss[0] - tr_res.loss[-1]) > 1e-3  # it trained
    np.testing.assert_allclose(tr_mf.loss, tr_res.loss, rtol=0, atol=1e-9)
    np.testing.assert_allclose(tr_mf.grad_norm, tr_res.grad_norm, rtol=0, atol=1e-9)
    for i in range(len(ts)):
        conv = tr_mf.at(i).to_resnet()
        np.testing.assert_allclose(conv.V, tr_res.params.V[i], rtol=0, atol=1e-9)
        np.testing.assert_allclose(conv.W, tr_res.params.W[i], rtol=0, atol=1e-9)


def test_to_resnet_needs_zero_fixed_biases(model):
    with pytest.raises(gf.ConfigError) as err:
        model.to_resnet()
    assert err.value.field == "bias"


@pytest.mark.parametrize("kind", ["deep", "two_layer"])
def test_replicate_and_deduplicate(kind, data):
    if kind == "deep":
        base = gf.models.MeanFieldResNet(2, Q, L, M, 1, key=jax.random.PRNGKey(1))
    else:
        base = gf.models.TwoLayerMeanField(2, M, 1, key=jax.random.PRNGKey(1))
    tripled = base.replicate(3)
    assert tripled.particles == 3 * M
    # every particle three times in a row, each of a third of the mass
    np.testing.assert_array_equal(tripled.u[..., 3:6, :], jnp.repeat(base.u[..., 1:2, :], 3, -2))
    np.testing.assert_array_equal(tripled.b[..., ::3], base.b)
    for m, m0 in zip(
        jax.tree_util.tree_leaves(trainable_masses(tripled)),
        jax.tree_util.tree_leaves(trainable_masses(base)),
        strict=True,
    ):
        assert float(m) == pytest.approx(float(m0) / 3, rel=1e-15)
    np.testing.assert_allclose(tripled(data.x), base(data.x), rtol=0, atol=1e-15)
    assert eqx.tree_equal(tripled.deduplicate(3), base)
    assert eqx.tree_equal(base.replicate(1), base)
    with pytest.raises(gf.ConfigError) as err:
        tripled.deduplicate(5)  # of 12 particles
    assert err.value.field == "factor"
    with pytest.raises(gf.ConfigError) as err:
        base.replicate(0)
    assert err.value.field == "factor"


def test_two_layer_flow_is_replication_invariant(data):
    base = gf.models.TwoLayerMeanField(2, 5, 1, key=jax.random.PRNGKey(2))
    ts = np.linspace(0.0, 1.0, 6)
    kw = dict(geometry="wasserstein", saveat=ts, rtol=1e-11, atol=1e-13)
    one = gf.flow(base, data, 1.0, **kw)
    two = gf.flow(base.replicate(2), data, 1.0, **kw)
    assert float(one.loss[0] - one.loss[-1]) > 1e-3  # it trained
    np.testing.assert_allclose(two.loss, one.loss, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(two.grad_norm, one.grad_norm, rtol=1e-9, atol=1e-14)
    final = two.final
    np.testing.assert_allclose(final.deduplicate(2).w, one.final.w, atol=1e-9)
    np.testing.assert_allclose(final.w[0::2], final.w[1::2], atol=1e-9)  # the copies stay together


def test_from_resnet_needs_the_normalised_resnet():
    res = gf.models.ResNet(2, Q, 5, L, 1, key=jax.random.PRNGKey(4), normalise=False)
    with pytest.raises(gf.ConfigError) as err:
        gf.models.MeanFieldResNet.from_resnet(res)
    assert err.value.field == "resnet"
