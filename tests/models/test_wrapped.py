"""`gf.models.Wrapped`: any equinox module or pure function flows, descends, stacks into ensembles,
flows in pieces, has its Hessian spectrum and saves — with trajectories equal to those of the same
network written as a gradflow model, and gradients equal to finite differences."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest

import gradflow as gf
from gradflow._problem import trainable_masses
from gradflow.models._base import DimsFromIO

KEY = jax.random.PRNGKey(5)
D_IN, WIDTH, D_OUT = 3, 5, 2


class TwoLayerTanh(DimsFromIO, gf.models.AbstractModel):
    """f(x) = W₂ tanh(W₁ x + b₁) + b₂, written out as a gradflow model: the reference."""

    w1: jax.Array
    b1: jax.Array
    w2: jax.Array
    b2: jax.Array

    @property
    def io_dims(self):
        return self.w1.shape[1], self.w2.shape[0]

    def __call__(self, x):
        return jnp.tanh(x @ self.w1.T + self.b1) @ self.w2.T + self.b2


def two_layer(params, x):
    """The same network as a pure function of one sample."""
    return params["w2"] @ jnp.tanh(params["w1"] @ x + params["b1"]) + params["b2"]


def make_mlp(key=KEY):
    return eqx.nn.MLP(D_IN, D_OUT, WIDTH, 1, activation=jnp.tanh, key=key)


def weights_of(mlp):
    first, last = mlp.layers
    return {"w1": first.weight, "b1": first.bias, "w2": last.weight, "b2": last.bias}


def as_dict(kind, tree):
    """The four weights of a model (or of its stacked trajectory params) by name."""
    if kind == "mlp":
        return weights_of(tree.params)
    if kind == "function":
        return dict(tree.params)
    return {"w1": tree.w1, "b1": tree.b1, "w2": tree.w2, "b2": tree.b2}


def make(kind, **kwargs):
    mlp = make_mlp()
    if kind == "mlp":
        return gf.models.Wrapped(mlp, **kwargs)
    if kind == "function":
        return gf.models.Wrapped(two_layer, weights_of(mlp), in_dim=D_IN, out_dim=D_OUT, **kwargs)
    return TwoLayerTanh(**weights_of(mlp))


@pytest.fixture(scope="module")
def data():
    return gf.data.gaussian(jax.random.PRNGKey(1), 7, D_IN, D_OUT)


def test_sizes_trainable_leaves_and_forward(data):
    mlp = make_mlp()
    model = gf.models.Wrapped(mlp)
    assert (model.in_dim, model.out_dim) == (D_IN, D_OUT)  # read from the MLP
    assert model.trainable_paths == (
        "layers.0.weight",
        "layers.0.bias",
        "layers.1.weight",
        "layers.1.bias",
    )
    assert model.parameter_count() == D_IN * WIDTH + WIDTH + WIDTH * D_OUT + D_OUT
    reference = make("reference")
    np.testing.assert_allclose(model(data.x), reference(data.x), rtol=0, atol=1e-15)
    function = make("function")
    assert function.trainable_paths == ("b1", "b2", "w1", "w2")
    np.testing.assert_allclose(function(data.x), reference(data.x), rtol=0, atol=1e-15)
    # a function mapping the whole batch itself
    batched = gf.models.Wrapped(
        lambda p, x: x @ p.T, jnp.ones((D_OUT, D_IN)), in_dim=D_IN, out_dim=D_OUT, batched=True
    )
    np.testing.assert_array_equal(batched(data.x), data.x @ jnp.ones((D_IN, D_OUT)))


def test_a_trainable_filter_freezes_the_other_leaves(data):
    mlp = make_mlp()
    last_only = jtu.tree_map(lambda _: False, mlp)
    last_only = eqx.tree_at(
        lambda m: (m.layers[1].weight, m.layers[1].bias), last_only, (True,) * 2
    )
    model = gf.models.Wrapped(mlp, trainable=last_only)
    assert model.trainable_paths == ("layers.1.weight", "layers.1.bias")
    traj = gf.flow(model, data, 1.0, saveat=[0.0, 1.0])
    final = traj.final.params
    np.testing.assert_array_equal(final.layers[0].weight, mlp.layers[0].weight)
    assert float(jnp.abs(final.layers[1].weight - mlp.layers[1].weight).max()) > 1e-3


TOL = dict(rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", ["mlp", "function"])
def test_flow_and_descent_equal_those_of_the_network_written_as_a_model(kind, data):
    ts = np.linspace(0.0, 2.0, 5)
    reference = make("reference")
    model = make(kind)
    expected = gf.flow(reference, data, 2.0, saveat=ts, **TOL)
    got = gf.flow(model, data, 2.0, saveat=ts, **TOL)
    assert float(expected.loss[0] - expected.loss[-1]) > 1e-2  # it trained
    np.testing.assert_allclose(got.loss, expected.loss, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.grad_norm, expected.grad_norm, rtol=0, atol=1e-12)
    for name, value in as_dict(kind, got.params).items():
        np.testing.assert_allclose(value, as_dict("reference", expected.params)[name], atol=1e-12)
    expected = gf.descent(reference, data, 20, 0.1)
    got = gf.descent(model, data, 20, 0.1)
    np.testing.assert_allclose(got.loss, expected.loss, rtol=0, atol=1e-13)
    for name, value in as_dict(kind, got.final).items():
        np.testing.assert_allclose(value, as_dict("reference", expected.final)[name], atol=1e-13)


@pytest.mark.parametrize("kind", ["mlp", "function"])
def test_gradient_matches_finite_differences(kind, data):
    problem, params = gf.GradientFlowProblem.from_model(make(kind), data, l2=0.1)
    _, grad = problem.value_and_grad(params)
    leaves, treedef = jtu.tree_flatten(params)
    keys = jax.random.split(KEY, len(leaves))
    direction = treedef.unflatten(
        [jax.random.normal(k, a.shape) for k, a in zip(keys, leaves, strict=True)]
    )
    eps = 1e-6
    shifted = lambda sign: jtu.tree_map(lambda p, d: p + sign * eps * d, params, direction)
    fd = (problem.objective(shifted(1)) - problem.objective(shifted(-1))) / (2 * eps)
    dot = sum(
        jnp.sum(g * d)
        for g, d in zip(jtu.tree_leaves(grad), jtu.tree_leaves(direction), strict=True)
    )
    assert float(fd) == pytest.approx(float(dot), rel=1e-8, abs=1e-11)


@pytest.mark.parametrize("kind", ["mlp", "function"])
def test_save_and_load_with_like_round_trip_exactly(kind, data, tmp_path):
    masses = None if kind == "function" else 0.25
    model = make(kind, masses=masses)
    geometry = "euclidean" if masses is None else "wasserstein"
    traj = gf.flow(model, data, 1.0, saveat=[0.0, 0.5, 1.0], geometry=geometry)
    path = traj.save(tmp_path / f"{kind}.nc")
    with pytest.raises(gf.FileFormatError) as err:
        gf.Trajectory.load(path)  # a module of another library, or a function: not in files
    assert "like=" in str(err.value) and "\n" not in str(err.value)
    back = gf.Trajectory.load(path, like=model)
    for name in ("params", "static", "masses"):
        assert eqx.tree_equal(getattr(back, name), getattr(traj, name)), name
    for name in ("ts", "loss", "grad_norm"):
        np.testing.assert_array_equal(getattr(back, name), getattr(traj, name))
    np.testing.assert_array_equal(back.final(data.x), traj.final(data.x))


def test_ensemble_and_flow_in_pieces(data, tmp_path):
    keys = jax.random.split(KEY, 3)
    ens = gf.ensemble(lambda k: gf.models.Wrapped(make_mlp(k), masses=0.5), keys)
    ts = np.linspace(0.0, 1.0, 5)
    traj = gf.flow(ens, data, 1.0, saveat=ts, geometry="wasserstein", **TOL)
    single = gf.flow(
        gf.models.Wrapped(make_mlp(keys[1]), masses=0.5), data, 1.0, saveat=ts,
        geometry="wasserstein", **TOL,
    )  # fmt: skip
    np.testing.assert_allclose(traj.loss[1], single.loss, rtol=0, atol=1e-12)
    model = make("function")
    whole = gf.flow(model, data, 1.0, saveat=ts, **TOL)
    kw = dict(piece=2, checkpoint=tmp_path / "pieces", **TOL)
    pieces = gf.flow_in_pieces(model, data, ts, **kw)
    np.testing.assert_allclose(pieces.loss, whole.loss, rtol=0, atol=1e-12)
    again = gf.flow_in_pieces(model, data, ts, **kw)  # read back from the checkpoint
    np.testing.assert_array_equal(again.loss, pieces.loss)
    assert eqx.tree_equal(again.params, pieces.params)


def test_hessian_spectrum_equals_the_reference_models(data):
    expected = gf.diagnostics.hessian_spectrum(make("reference"), data, l2=0.01)
    for kind in ("mlp", "function"):
        got = gf.diagnostics.hessian_spectrum(make(kind), data, l2=0.01)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_masses_select_the_geometry(data):
    mlp = make_mlp()
    per_leaf = jtu.tree_map(lambda _: 0.5, eqx.filter(mlp, eqx.is_inexact_array))
    per_leaf = eqx.tree_at(lambda m: m.layers[0].bias, per_leaf, jnp.full((WIDTH,), 0.25))
    model = gf.models.Wrapped(mlp, masses=per_leaf)
    problem, params = gf.GradientFlowProblem.from_model(model, data, geometry="wasserstein")
    _, grad = problem.value_and_grad(params)
    velocity = problem.velocity(params)
    np.testing.assert_array_equal(
        velocity.params.layers[0].bias, -grad.params.layers[0].bias / 0.25
    )
    np.testing.assert_array_equal(
        velocity.params.layers[1].weight, -grad.params.layers[1].weight / 0.5
    )
    assert float(trainable_masses(model).params.layers[1].bias) == 0.5
    with pytest.raises(gf.ConfigError):  # layered: only the conditional geometry
        gf.flow(gf.models.Wrapped(mlp, masses=0.5, layered=True), data, 1.0, geometry="wasserstein")
    layered = gf.models.Wrapped(mlp, masses=0.5, layered=True)
    cw = gf.flow(layered, data, 1.0, geometry="conditional_wasserstein", saveat=[0.0, 1.0])
    w = gf.flow(
        gf.models.Wrapped(mlp, masses=0.5), data, 1.0, geometry="wasserstein", saveat=[0.0, 1.0]
    )
    np.testing.assert_array_equal(cw.loss, w.loss)
    for geometry in ("wasserstein", "conditional_wasserstein"):  # no masses: Euclidean only
        with pytest.raises(gf.ConfigError) as err:
            gf.flow(make("mlp"), data, 1.0, geometry=geometry)
        assert err.value.field == "geometry"


def test_the_same_function_shares_the_compiled_code():
    p = weights_of(make_mlp())
    a = gf.models.Wrapped(two_layer, p, in_dim=D_IN, out_dim=D_OUT)
    b = gf.models.Wrapped(two_layer, jtu.tree_map(jnp.zeros_like, p), in_dim=D_IN, out_dim=D_OUT)
    c = gf.models.Wrapped(lambda q, x: two_layer(q, x), p, in_dim=D_IN, out_dim=D_OUT)
    assert jtu.tree_structure(a) == jtu.tree_structure(b)  # one compilation serves both
    assert jtu.tree_structure(a) != jtu.tree_structure(c)  # another function object
    # shown without memory addresses: checkpoint fingerprints are the same in every process
    assert "0x" not in str(jtu.tree_structure(a)) and "two_layer" in str(jtu.tree_structure(a))


@pytest.mark.parametrize(
    "make_bad, field",
    [
        (lambda: gf.models.Wrapped(eqx.nn.MLP("scalar", 1, 4, 1, key=KEY)), "in_dim"),
        (lambda: gf.models.Wrapped(make_mlp(), in_dim=4), "in_dim"),
        (lambda: gf.models.Wrapped(make_mlp(), {"w": jnp.ones(2)}), "params"),
        (lambda: gf.models.Wrapped(two_layer, weights_of(make_mlp())), "in_dim"),
        (lambda: gf.models.Wrapped(two_layer, None, in_dim=3, out_dim=2), "params"),
        (lambda: gf.models.Wrapped(3, {"w": jnp.ones(2)}, in_dim=1, out_dim=1), "module_or_fn"),
        (lambda: gf.models.Wrapped(make_mlp(), trainable=lambda leaf: True), "trainable"),
        (lambda: gf.models.Wrapped(make_mlp(), masses=-1.0), "masses.layers.0.weight"),
        (lambda: gf.models.Wrapped(make_mlp(), masses={"w": 1.0}), "masses"),
        (
            lambda: gf.models.Wrapped(
                two_layer,
                weights_of(make_mlp()),
                {"w1": 1.0, "b1": jnp.ones(3), "w2": 1.0, "b2": 1.0},
                in_dim=D_IN,
                out_dim=D_OUT,
            ),
            "masses.b1",
        ),
        (lambda: gf.models.Wrapped(make_mlp(), layered=True), "layered"),
    ],
)
def test_bad_arguments_raise_one_line_config_errors(make_bad, field):
    with pytest.raises(gf.ConfigError) as err:
        make_bad()
    assert err.value.field == field
    assert "\n" not in str(err.value)


def _linear_score(params, x):
    return jnp.reshape(params["w"] @ x, (1,))


def test_pl_ratio_of_a_wrapped_least_squares_flow_is_exactly_two_and_logistic_is_refused():
    # whitened inputs (XᵀX/n = I) and realisable targets y = X w*: F − F* = ½|w − w*|² and
    # |∇F|² = |w − w*|², so the PL ratio is exactly 2 all along the flow
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    x = np.sqrt(3.0) * q
    y = x @ np.array([1.0, -2.0, 0.5])
    model = gf.models.Wrapped(_linear_score, params={"w": jnp.zeros(3)}, in_dim=3, out_dim=1)
    traj = gf.flow(model, gf.Dataset(x, y[:, None]), 5.0, saveat=np.linspace(0, 5, 11))
    pl = gf.diagnostics.pl_ratio(traj)
    np.testing.assert_allclose(pl.ratio[pl.valid], 2.0, rtol=1e-6)
    labels = gf.Dataset(x, np.sign(y)[:, None])
    logistic = gf.flow(model, labels, 5.0, loss="logistic", saveat=np.linspace(0, 5, 11))
    with pytest.raises(gf.ConfigError, match="attains its minimum"):
        gf.diagnostics.pl_ratio(logistic)
