"""ResNet: forward pass, inits, masses, the conditional-Wasserstein flow, bad input, and the depth
and convergence diagnostics (MODELS.md §2)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

import gradflow as gf
from gradflow._problem import trainable_masses
from gradflow.models._inits import smooth_gp

KEY = jax.random.PRNGKey(3)

NUMPY_ACTIVATIONS = {
    "gelu": lambda z: 0.5 * z * (1 + erf(z / np.sqrt(2))),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
    "identity": lambda z: z,
}


def loop_forward(model, x, activation):
    """The ResNet of MODELS.md §2 written out as a plain loop over layers."""
    V, W = np.asarray(model.V), np.asarray(model.W)
    depth, q, m = V.shape
    d, dp = model.in_dim, model.out_dim
    h = np.concatenate([np.asarray(x), np.zeros((x.shape[0], q - d))], axis=1)  # A = [I; 0]
    for k in range(depth):
        z = h @ W[k].T / np.sqrt(q)
        h = h + NUMPY_ACTIVATIONS[activation](z) @ V[k].T / (depth * np.sqrt(m))
    return h[:, q - dp :]  # B = [0, I]


@pytest.mark.parametrize("activation", ["gelu", "tanh", "relu", "identity"])
def test_forward_matches_hand_written_loop(activation):
    model = gf.models.ResNet(3, 6, 4, 5, 2, key=KEY, activation=activation, init="iid")
    x = jax.random.normal(jax.random.PRNGKey(1), (7, 3))
    np.testing.assert_allclose(model(x), loop_forward(model, x, activation), rtol=0, atol=1e-13)
    hs = model.hidden_states(x)
    assert hs.shape == (6, 7, 6)
    np.testing.assert_allclose(hs[-1][:, -2:], model(x), atol=1e-14)


def test_tied_init_starts_as_trivial_ode_with_zero_differences():
    model = gf.models.ResNet(4, 4, 8, 16, 4, key=KEY, init="tied")
    assert float(jnp.abs(model.V).max()) == 0.0
    assert float(jnp.abs(model.W - model.W[0]).max()) == 0.0
    smooth = gf.diagnostics.depth_smoothness(model)
    assert smooth.max_diff == 0.0 and smooth.scaled == 0.0
    x = jax.random.normal(KEY, (5, 4))
    np.testing.assert_array_equal(model(x), x)  # h' = 0: f = B A x = x


def test_smooth_init_discretises_one_function_for_every_depth():
    a = gf.models.ResNet(2, 3, 2, 4, 2, key=KEY, init="smooth", length_scale=0.3)
    b = gf.models.ResNet(2, 3, 2, 8, 2, key=KEY, init="smooth", length_scale=0.3)
    # layer k of depth 4 sits at s = k/4 = 2k/8: layer 2k of depth 8
    np.testing.assert_allclose(a.V, b.V[1::2], atol=1e-12)
    np.testing.assert_allclose(a.W, b.W[1::2], atol=1e-12)


def test_smooth_gp_has_the_squared_exponential_covariance():
    ell = 0.2
    s = np.array([0.0, 0.1, 0.3, 1.0])
    draws = jax.vmap(lambda k: smooth_gp(k, (200,), s, ell))(jax.random.split(KEY, 400))
    samples = np.asarray(draws).transpose(0, 2, 1).reshape(-1, len(s))  # 80,000 draws
    cov = samples.T @ samples / samples.shape[0]
    expected = np.exp(-((s[:, None] - s[None, :]) ** 2) / (2 * ell**2))
    np.testing.assert_allclose(cov, expected, atol=0.03)


def test_masses_trainable_and_embedding():
    model = gf.models.ResNet(3, 5, 4, 8, 2, key=KEY)
    assert model.A is None and model.B is None  # fixed [I; 0], [0, I]
    masses = trainable_masses(model)
    assert float(masses.V) == pytest.approx(1 / 8) and float(masses.W) == pytest.approx(1 / 8)
    assert model.parameter_count() == 2 * 8 * 5 * 4
    trained = gf.models.ResNet(3, 5, 4, 8, 2, key=KEY, train_embedding=True)
    masses = trainable_masses(trained)
    assert float(masses.A) == 1.0 and float(masses.B) == 1.0
    np.testing.assert_array_equal(trained.A, np.eye(5, 3))
    np.testing.assert_array_equal(trained.B, np.eye(2, 5, k=3))
    x = jax.random.normal(KEY, (4, 3))
    np.testing.assert_allclose(trained(x), model(x), atol=1e-14)


def test_conditional_wasserstein_flow_is_euclidean_flow_with_time_scaled_by_depth():
    depth = 3
    model = gf.models.ResNet(2, 3, 2, depth, 2, key=KEY, init="iid")
    data = gf.data.gaussian(jax.random.PRNGKey(7), 5, 2, 2)
    ts = np.array([0.0, 0.1, 0.25, 0.5])
    tol = dict(rtol=1e-12, atol=1e-12, solver="dopri8")
    cw = gf.flow(model, data, 0.5, geometry="conditional_wasserstein", saveat=ts, **tol)
    eu = gf.flow(model, data, 0.5 * depth, geometry="euclidean", saveat=depth * ts, **tol)
    assert float(jnp.abs(cw.params.V - eu.params.V).max()) < 1e-9
    assert float(jnp.abs(cw.params.W - eu.params.W).max()) < 1e-9
    assert float(jnp.abs(cw.params.V[-1] - model.V).max()) > 1e-2  # it did move
    # the metric norm: |∇F|_CW² = L |∇F|_Euclid² for residual weights
    np.testing.assert_allclose(cw.grad_norm**2, depth * eu.grad_norm**2, rtol=1e-8)


def test_mismatched_data_raises_config_error():
    model = gf.models.ResNet(3, 4, 2, 3, 2, key=KEY)
    with pytest.raises(gf.ConfigError):
        gf.flow(model, gf.data.gaussian(KEY, 5, 4, 2), 1.0)


@pytest.mark.parametrize(
    "name, setting",
    [
        ("resnet-depth", "depths=0,4"),
        ("resnet-depth", "inits=tied,orthogonal"),
        ("resnet-long", "activation=swish"),
        ("resnet-long", "width=0"),
        ("resnet-pl", "widths=0"),
        ("resnet-relu", "C=0.5"),
        ("resnet-digits", "dim=4"),
    ],
)
def test_cli_bad_config_exits_2(name, setting, tmp_path):
    from typer.testing import CliRunner

    from gradflow.cli import app

    result = CliRunner().invoke(app, ["run", name, "--set", setting, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output


def test_smooth_init_smoothness_and_ode_gap_shrink_like_one_over_depth():
    depths = [8, 16, 32]
    x = jax.random.normal(KEY, (6, 3))
    smooth, gaps = [], []
    for depth in depths:
        model = gf.models.ResNet(3, 4, 3, depth, 3, key=KEY, init="smooth", length_scale=0.3)
        smooth.append(gf.diagnostics.depth_smoothness(model).max_diff)
        gaps.append(gf.diagnostics.ode_gap(model, x))
    assert gf.diagnostics.loglog_slope(depths, smooth).slope == pytest.approx(-1, abs=0.15)
    assert gf.diagnostics.loglog_slope(depths, gaps).slope == pytest.approx(-1, abs=0.15)
    iid = [
        gf.diagnostics.depth_smoothness(
            gf.models.ResNet(3, 4, 3, d, 3, key=KEY, init="iid")
        ).max_diff
        for d in depths
    ]
    assert gf.diagnostics.loglog_slope(depths, iid).slope == pytest.approx(0, abs=0.15)


def test_depth_smoothness_along_a_trajectory_is_the_max_over_times():
    model = gf.models.ResNet(2, 3, 2, 4, 2, key=KEY, init="tied")
    data = gf.data.gaussian(KEY, 6, 2, 2)
    traj = gf.flow(
        model, data, 2.0, geometry="conditional_wasserstein", saveat=np.linspace(0, 2, 5)
    )
    along = gf.diagnostics.depth_smoothness(traj)
    each = [gf.diagnostics.depth_smoothness(traj.at(i)).max_diff for i in range(len(traj))]
    np.testing.assert_allclose(along.per_time, each, rtol=1e-12)
    assert along.max_diff == pytest.approx(max(each))
    assert along.scaled == pytest.approx(4 * max(each))
    assert each[0] == 0.0 and each[-1] > 0


def test_depth_distance_of_piecewise_constant_weights():
    a = {"Z": jnp.array([[0.0], [1.0]])}  # 0 on (0, 1/2], 1 on (1/2, 1]
    b = {"Z": jnp.array([[0.0], [0.0], [0.0], [3.0]])}
    # |a − b|² = 0 on (0, 1/2], 1 on (1/2, 3/4], 4 on (3/4, 1]: integral 1/4 + 1 = 5/4
    assert gf.diagnostics.depth_distance(a, b) == pytest.approx(np.sqrt(5 / 4), rel=1e-14)
    model = gf.models.ResNet(2, 3, 2, 4, 2, key=KEY, init="smooth")
    assert gf.diagnostics.depth_distance(model, model) == 0.0


def test_loglog_slope_and_its_standard_error():
    xs = np.array([1.0, 2, 4, 8, 16])
    fit = gf.diagnostics.loglog_slope(xs, 3 * xs**-1.0)
    assert fit.slope == pytest.approx(-1, abs=1e-12) and fit.stderr < 1e-12
    assert np.exp(fit.intercept) == pytest.approx(3)
    noisy = gf.diagnostics.loglog_slope(xs, xs**0.5 * np.array([1, 1.1, 0.9, 1.05, 1]))
    assert noisy.stderr > 0 and abs(noisy.slope - 0.5) < 3 * noisy.stderr + 0.05
    with pytest.raises(gf.ConfigError):
        gf.diagnostics.loglog_slope([1, 2], [1, -1])
    with pytest.raises(gf.ConfigError):
        gf.diagnostics.loglog_slope([2, 2], [1, 3])


def test_pl_ratio_reads_the_metric_gradient_norm_and_energy_identity_holds():
    model = gf.models.ResNet(2, 3, 4, 4, 2, key=KEY, init="tied")
    data = gf.data.gaussian(KEY, 6, 2, 2)
    ts = np.linspace(0, 1, 2001)
    traj = gf.flow(
        model, data, 1.0, geometry="conditional_wasserstein", saveat=ts, rtol=1e-10, atol=1e-12
    )
    pl = gf.diagnostics.pl_ratio(traj)
    np.testing.assert_allclose(pl.ratio, traj.grad_norm**2 / traj.loss, rtol=1e-12)
    assert pl.min == pytest.approx(float(np.min(pl.ratio)))
    # dF/dt = −|∇F|_G² with the metric norm stored in the trajectory
    dfdt = np.gradient(np.asarray(traj.loss), ts)
    np.testing.assert_allclose(dfdt[5:-5], -(np.asarray(traj.grad_norm[5:-5]) ** 2), rtol=1e-4)


@pytest.mark.parametrize("width", [3, 8])
def test_tangent_kernel_at_the_tied_init_is_the_feature_gram(width):
    # At V = 0, W_k = W: ∂f/∂V_k = (1/(L√m)) I ⊗ φ(x)ᵀ with φ(x) = σ(W A x/√q), ∂f/∂W_k = 0, and
    # the conditional-Wasserstein metric multiplies by L per layer: K_G = (1/m) ΦΦᵀ ⊗ I_{d'}.
    n, dim, depth = 6, 4, 4
    data = gf.data.gaussian(KEY, n, dim, dim)
    model = gf.models.ResNet(dim, dim, width, depth, dim, key=KEY, init="tied")
    got = gf.diagnostics.tangent_kernel_pl(model, data, geometry="conditional_wasserstein")
    x = np.asarray(data.x)
    w = np.asarray(model.W[0])
    phi = NUMPY_ACTIVATIONS["gelu"](x @ w.T / np.sqrt(dim))  # (n, m)
    kernel = np.kron(phi @ phi.T / width, np.eye(dim))
    np.testing.assert_allclose(got.eigenvalues, np.linalg.eigvalsh(kernel), atol=1e-12)
    assert got.size == n * dim and got.rank == min(width, n) * dim
    # m < n: Φ has rank m < n, so some targets make the gradient vanish at init: λ_min = 0
    if width < n:
        assert abs(got.lambda_min) < 1e-12 and abs(got.bound) < 1e-12
    else:
        assert got.bound == pytest.approx(2 * np.linalg.eigvalsh(kernel)[0] / n, rel=1e-10)
        assert got.bound > 0


def test_tangent_kernel_bounds_the_pl_ratio_of_every_target():
    # |∇F|²_G ≥ (2/n) λ_min(K_G) F for any targets Y: check on random targets, smooth init.
    n, dim = 5, 3
    model = gf.models.ResNet(dim, dim, 8, 4, dim, key=KEY, init="smooth")
    x = gf.data.gaussian(KEY, n, dim, dim).x
    pl = None
    for k in range(5):
        y = jax.random.normal(jax.random.PRNGKey(10 + k), (n, dim))
        data = gf.Dataset(x, y)
        pl = pl or gf.diagnostics.tangent_kernel_pl(model, data, "conditional_wasserstein")
        traj = gf.flow(model, data, 1e-6, saveat=[0.0], geometry="conditional_wasserstein")
        ratio = float(traj.grad_norm[0] ** 2 / traj.loss[0])
        assert ratio >= pl.bound * (1 - 1e-10)
    assert pl.bound > 0


def test_relu_counter_example_converges_to_the_closed_form():
    half, C = 4, 2.0
    w_star = gf.analytic.relu_fixed_point(half, C)
    assert (1 + w_star / (2 * half)) ** half == pytest.approx(C, rel=1e-14)
    model = gf.models.relu_counter_example(half)
    w0 = np.asarray(model.W).reshape(-1)
    np.testing.assert_allclose(w0, [(-1) ** k / (2 * half) for k in range(1, 2 * half + 1)])
    data = gf.Dataset(jnp.array([[1.0]]), jnp.array([[C]]))
    traj = gf.flow(model, data, 40.0, geometry="conditional_wasserstein", rtol=1e-10, atol=1e-12)
    w = np.asarray(traj.final.W).reshape(-1)
    np.testing.assert_array_equal(w[0::2], w0[0::2])  # dead odd layers never move
    np.testing.assert_allclose(w[1::2], w_star, rtol=1e-8)
    np.testing.assert_allclose(np.abs(np.diff(w)), w_star + 1 / (2 * half), rtol=1e-8)
    np.testing.assert_array_equal(traj.final.V, model.V)  # V frozen


def test_ensemble_of_resnets_flows_in_one_solve():
    models = [gf.models.ResNet(2, 3, 2, 4, 2, key=KEY, init=i) for i in ("tied", "iid")]
    data = gf.data.gaussian(KEY, 6, 2, 2)
    traj = gf.flow(
        gf.Ensemble.stack(models), data, 1.0, geometry="conditional_wasserstein", saveat=[0.0, 1.0]
    )
    single = gf.flow(models[1], data, 1.0, geometry="conditional_wasserstein", saveat=[0.0, 1.0])
    np.testing.assert_allclose(traj.member(1).params.V, single.params.V, atol=1e-9)
    gaps = gf.diagnostics.ode_gaps(traj.at(1), data.x)
    assert gaps.shape == (2,)
    assert gaps[1] == pytest.approx(gf.diagnostics.ode_gap(single.final, data.x), rel=1e-8)
    assert eqx.tree_equal(traj.member(0).static, traj.static)


# ---------------------------------------------------------------------------------------------
# other people's conventions: no normalisation, init scales, the official code's weight layout


def numpy_gelu(z):
    return 0.5 * z * (1 + erf(z / np.sqrt(2)))


@pytest.mark.parametrize("activation", ["gelu", "tanh"])
def test_unnormalised_forward_matches_hand_written_loop(activation):
    # normalise=False: h_{k+1} = h_k + (1/L) V_{k+1} σ(W_{k+1} h_k), no 1/√m, 1/√q
    model = gf.models.ResNet(
        3, 6, 4, 5, 2, key=KEY, activation=activation, init="iid", normalise=False
    )
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (7, 3)))
    V, W = np.asarray(model.V), np.asarray(model.W)
    h = np.concatenate([x, np.zeros((7, 3))], axis=1)
    for k in range(5):
        h = h + NUMPY_ACTIVATIONS[activation](h @ W[k].T) @ V[k].T / 5
    np.testing.assert_allclose(model(x), h[:, -2:], rtol=0, atol=1e-13)
    np.testing.assert_allclose(model.hidden_states(x)[-1], h, rtol=0, atol=1e-13)
    normalised = gf.models.ResNet(3, 6, 4, 5, 2, key=KEY, activation=activation, init="iid")
    assert float(jnp.abs(normalised(x) - model(x)).max()) > 1e-3  # the factors matter here


def official_forward(V, W, x):
    """The forward pass of the official code (`finite_training_time_*.py`) in NumPy: row vectors,
    V (L, m, q), W (L, q, m), `x = x + sigma(x.mm(W_i)).mm(V_i) / N`, exact GELU."""
    depth = V.shape[0]
    for W_i, V_i in zip(W, V, strict=True):
        x = x + numpy_gelu(x @ W_i) @ V_i / depth
    return x


def test_official_layout_gives_the_official_forward_pass_and_gradient_step():
    depth, m, q, n = 6, 5, 4, 8
    rng = np.random.default_rng(0)
    V_off = rng.normal(size=(depth, m, q))
    W_off = rng.normal(size=(depth, q, m))
    model = gf.models.ResNet.from_weights(V_off, W_off, layout="official")
    assert not model.normalise  # the official code's convention unless told otherwise
    assert (model.depth, model.width, model.dim, model.in_dim, model.out_dim) == (6, 5, 4, 4, 4)
    for k in range(depth):  # V[k] = V_official[k]ᵀ, W[k] = W_official[k]ᵀ
        np.testing.assert_array_equal(model.V[k], V_off[k].T)
        np.testing.assert_array_equal(model.W[k], W_off[k].T)
    x = rng.normal(size=(n, q))
    np.testing.assert_allclose(model(x), official_forward(V_off, W_off, x), rtol=0, atol=1e-13)
    back = model.stacked_weights("official")
    np.testing.assert_array_equal(back[0], V_off)
    np.testing.assert_array_equal(back[1], W_off)
    assert eqx.tree_equal(
        gf.models.ResNet.from_weights(*model.stacked_weights(), normalise=False), model
    )
    # the official SGD step lr = N·η on ((pred − Y)²).mean() is the Euler step η of the
    # conditional-Wasserstein flow of loss="mse"
    y = rng.normal(size=(n, q))
    eta = 0.01

    def official_loss(v, w):
        h = jnp.asarray(x)
        for k in range(depth):
            h = h + jax.nn.gelu(h @ w[k], approximate=False) @ v[k] / depth
        return jnp.mean((h - y) ** 2)

    gv, gw = jax.grad(official_loss, argnums=(0, 1))(V_off, W_off)
    step = gf.descent(
        model, gf.Dataset(x, y), 1, eta, geometry="conditional_wasserstein", loss="mse"
    )
    v1, w1 = step.final.stacked_weights("official")
    np.testing.assert_allclose(v1, V_off - depth * eta * gv, rtol=0, atol=1e-13)
    np.testing.assert_allclose(w1, W_off - depth * eta * gw, rtol=0, atol=1e-13)


def test_bad_layouts_raise_config_errors():
    with pytest.raises(gf.ConfigError) as err:
        gf.models.ResNet.from_weights(np.zeros((2, 3, 4)), np.zeros((2, 4, 3)), layout="torch")
    assert err.value.field == "layout"
    with pytest.raises(gf.ConfigError) as err:
        gf.models.ResNet.from_weights(np.zeros((3, 4)), np.zeros((2, 4, 3)), layout="official")
    assert err.value.field == "weights"
    with pytest.raises(gf.ConfigError) as err:  # (L, m, q) and (L, q, m) disagree on q
        gf.models.ResNet.from_weights(np.zeros((2, 3, 4)), np.zeros((2, 5, 3)), layout="official")
    assert err.value.field == "weights"


@pytest.mark.parametrize("init", ["tied", "smooth", "iid"])
def test_init_scale_is_the_standard_deviation_of_the_entries(init):
    args = (4, 16, 64, 8, 4)
    unit = gf.models.ResNet(*args, key=KEY, init=init)
    scaled = gf.models.ResNet(*args, key=KEY, init=init, init_scale=0.3)
    default = gf.models.ResNet(*args, key=KEY, init=init, init_scale=1.0)
    assert eqx.tree_equal(default, unit)  # the default scale is today's init, bit for bit
    np.testing.assert_array_equal(scaled.W, 0.3 * unit.W)  # the same draw, scaled
    np.testing.assert_array_equal(scaled.V, 0.3 * unit.V)
    # 1024 entries per layer: the sample standard deviation is within a few % of s
    assert float(jnp.std(scaled.W[-1])) == pytest.approx(0.3, rel=0.1)
    if init == "tied":
        assert float(jnp.abs(scaled.V).max()) == 0.0
    else:
        assert float(jnp.std(scaled.V[-1])) == pytest.approx(0.3, rel=0.1)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), True, "1"])
def test_bad_init_scale_raises_config_error(scale):
    with pytest.raises(gf.ConfigError) as err:
        gf.models.ResNet(2, 3, 2, 4, 2, key=KEY, init_scale=scale)
    assert err.value.field == "init_scale"
