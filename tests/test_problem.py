"""`GradientFlowProblem`: the objective, its gradient (finite differences, the L2 term in closed
form) and the vector field θ ↦ −G⁻¹∇F of every model and geometry, which must equal the one
recorded before the library-first redesign (commit d1673ff, `tests/data/baseline_d1673ff/`) to
1e-14 relative."""

import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest
from problems import deep_linear as _deep_problem
from problems import leaves as _leaves

import gradflow as gf

BASELINE = Path(__file__).parent / "data" / "baseline_d1673ff"
k = jax.random.PRNGKey


def _baseline_models():
    """The models of `make.py`'s cases, built with today's constructors (their parameters are
    then replaced by the recorded ones, so only the structure must match)."""
    dl = gf.models.DeepLinear([3, 4, 5, 2], k(3), 0.8)
    resnets = {
        init: gf.models.ResNet(3, 5, 4, 6, 2, key=k(5), init=init)
        for init in ("tied", "smooth", "iid")
    }
    models = {
        "deep_linear": gf.models.DeepLinear([3, 4, 5, 2], k(1), 0.7),
        "deep_linear_l2": gf.models.DeepLinear([3, 4, 2], k(2), 0.9),
        "adjacency": gf.models.AdjacencyDeepLinear.from_layers(dl),
        "resnet_embedding_cw": gf.models.ResNet(
            3, 5, 4, 6, 2, key=k(7), init="iid", activation="tanh", train_embedding=True
        ),
        "neural_ode_cw": gf.models.ResNet(3, 5, 4, 4, 2, key=k(8), init="smooth").ode_limit(
            "linear"
        ),
        "mean_field_nobias": gf.models.MeanFieldResNet(
            2, 4, 2, 3, 1, key=k(11), activation="gelu", bias=False, input_scale=0.7
        ),
    }
    for init, net in resnets.items():
        for geometry in ("euclidean", "conditional_wasserstein"):
            models[f"resnet_{init}_{geometry}"] = net
    mf = gf.models.MeanFieldResNet(2, 4, 3, 5, 1, key=k(9), init_scale=1.5)
    for geometry, l2 in (
        ("conditional_wasserstein", 0.0),
        ("conditional_wasserstein", 0.02),
        ("euclidean", 0.0),
    ):
        models[f"mean_field_{geometry}_l2_{l2}"] = mf
    two = gf.models.TwoLayerMeanField(2, 6, 1, key=k(12), init_scale=1.2)
    for geometry in ("wasserstein", "euclidean"):
        models[f"two_layer_{geometry}"] = two
    return models


def _path_name(path) -> str:
    return "/".join(
        p.name if hasattr(p, "name") else str(getattr(p, "idx", getattr(p, "key", p))) for p in path
    )


def _recorded(arrays, case, kind):
    prefix = f"{case}/{kind}/"
    return {name[len(prefix) :]: arrays[name] for name in arrays.files if name.startswith(prefix)}


@pytest.fixture(scope="module")
def baseline():
    return (
        json.loads((BASELINE / "cases.json").read_text()),
        np.load(BASELINE / "vector_fields.npz", allow_pickle=False),
    )


def test_vector_fields_equal_the_pre_redesign_ones(baseline):
    cases, arrays = baseline
    models = _baseline_models()
    assert set(models) == set(cases)
    worst = {}
    for case, meta in cases.items():
        data = gf.Dataset(jnp.asarray(arrays[f"{case}/x"]), jnp.asarray(arrays[f"{case}/y"]))
        problem, params = gf.GradientFlowProblem.from_model(
            models[case], data, geometry=meta["geometry"], l2=meta["l2"]
        )
        recorded = _recorded(arrays, case, "param")
        paths = [_path_name(p) for p, _ in jtu.tree_flatten_with_path(params)[0]]
        assert sorted(paths) == sorted(recorded), case
        params = jtu.tree_unflatten(
            jtu.tree_structure(params), [jnp.asarray(recorded[p]) for p in paths]
        )
        value, _ = problem.value_and_grad(params)
        velocity = problem.velocity(params)
        expected = _recorded(arrays, case, "velocity")
        err = 0.0
        for path, got in jtu.tree_flatten_with_path(velocity)[0]:
            want = expected[_path_name(path)]
            err = max(err, float(np.max(np.abs(np.asarray(got) - want)) / np.max(np.abs(want))))
        worst[case] = err
        np.testing.assert_allclose(value, arrays[f"{case}/loss"], rtol=1e-14)
    assert max(worst.values()) <= 1e-14, worst


def test_l2_penalty_gradient():
    """∇(risk + λ Σ m|θ|²) = ∇risk + 2λ m θ, and finite differences agree."""
    model, data = _deep_problem()
    l2 = 0.7
    problem, params = gf.GradientFlowProblem.from_model(model, data, l2=l2)
    problem0, _ = gf.GradientFlowProblem.from_model(model, data)
    f, g = problem.value_and_grad(params)
    f0, g0 = problem0.value_and_grad(params)
    sq = sum(float(jnp.sum(w**2)) for w in model.weights)
    np.testing.assert_allclose(f, f0 + l2 * sq, rtol=1e-13)
    for a, b, w in zip(_leaves(g), _leaves(g0), model.weights, strict=True):
        np.testing.assert_allclose(a, b + 2 * l2 * np.asarray(w), rtol=1e-12, atol=1e-15)
    # directional finite difference of the full objective
    direction = jtu.tree_map(lambda p: jnp.cos(jnp.arange(p.size).reshape(p.shape)), params)
    h = 1e-5
    plus = jtu.tree_map(lambda p, d: p + h * d, params, direction)
    minus = jtu.tree_map(lambda p, d: p - h * d, params, direction)
    fd = (problem.objective(plus) - problem.objective(minus)) / (2 * h)
    dot = sum(float(jnp.sum(a * b)) for a, b in zip(_leaves(g), _leaves(direction), strict=True))
    np.testing.assert_allclose(fd, dot, rtol=1e-8)


def test_metrics_are_the_objective_and_the_dual_norm():
    """|∇F|_G² = Σ |∇_θ F|²/m for the Wasserstein metric of a particle model."""
    model = gf.models.TwoLayerMeanField(2, 5, 1, key=k(0))
    data = gf.data.gaussian(k(1), 6, 2, 1)
    problem, params = gf.GradientFlowProblem.from_model(model, data, geometry="wasserstein")
    value, grad_norm = problem.metrics(params)
    f, g = problem.value_and_grad(params)
    expected = np.sqrt(sum(float(jnp.sum(x**2)) * 5 for x in jtu.tree_leaves(g)))  # m = 1/5
    np.testing.assert_allclose(value, f, rtol=1e-15)
    np.testing.assert_allclose(grad_norm, expected, rtol=1e-13)
    v = problem.velocity(params)
    np.testing.assert_allclose(
        problem.geometry.norm(v, problem.masses), grad_norm, rtol=1e-13
    )  # |v|_G = |∇F|_G for the gradient flow


def test_non_finite_start_fails_before_any_solve():
    model, data = _deep_problem()
    bad = eqx.tree_at(lambda m: m.weights[0], model, model.weights[0] * jnp.inf)
    with pytest.raises(gf.ConfigError) as e:
        gf.flow(bad, data, 1.0)
    assert e.value.field == "model"
    with pytest.raises(gf.ConfigError):
        gf.descent(bad, data, 10, 0.1)
