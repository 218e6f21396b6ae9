"""gf.critical_point: polishing a flow's end to a critical point, and its classification."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradflow as gf

FLAT = jax.flatten_util.ravel_pytree


def test_polishes_a_regularised_mean_field_flow_end():
    # a Łojasiewicz-like flow: tanh mean-field ResNet, L2, conditional Wasserstein geometry
    data = gf.data.teacher(jax.random.PRNGKey(0), 2, 1, 6, kind="two_layer")
    model = gf.models.MeanFieldResNet(2, 4, 2, 2, 1, key=jax.random.PRNGKey(1), activation="tanh")
    kw = dict(geometry="conditional_wasserstein", l2=5e-2)
    # stopped where |∇F| is still ~1e-5 of its start; saves of one shape (one compilation)
    short = gf.flow(model, data, 200.0, rtol=1e-9, atol=1e-12, saveat=[0.0, 200.0], **kw)
    g0 = float(short.grad_norm[0])
    res = gf.critical_point(short.final, data, gtol=1e-13 * g0, **kw)
    assert res.converged and res.grad_norm <= 1e-13 * g0 and res.iterations <= 20
    assert res.grad_norm_start > 1e4 * res.grad_norm  # it did polish
    assert res.kind == "minimum" and res.certificate == "hessian" and res.lambda_min > 0
    long = gf.flow(model, data, 1500.0, rtol=1e-12, atol=1e-15, saveat=[0.0, 1500.0], **kw)
    assert float(long.grad_norm[-1]) < 1e-12
    gap = np.max(np.abs(np.asarray(FLAT(long.final)[0] - FLAT(res.model)[0])))
    assert gap <= 1e-9


def test_polishes_a_resnet_to_zero_risk():
    data = gf.data.gaussian(jax.random.PRNGKey(0), 3, 2, 2)
    model = gf.models.ResNet(2, 2, 4, 2, 2, key=jax.random.PRNGKey(1))
    traj = gf.flow(model, data, 1e4, stop_below=1e-4, saveat=[0.0, 1e4])
    assert float(traj.loss[-1]) == pytest.approx(1e-4, rel=1e-6)
    res = gf.critical_point(traj.final, data)
    assert res.value <= 1e-12 and res.converged
    # a zero-risk manifold: null directions no symmetry explains, certified by F = 0 = inf F
    assert res.kind == "degenerate_minimum" and res.certificate == "lower_bound"
    assert res.unexplained_null_dimension > 0


@pytest.mark.parametrize(
    ("modes", "kind"), [((0, 1), "degenerate_minimum"), ((1,), "strict_saddle")]
)
def test_recovers_a_planted_deep_linear_critical_point(modes, kind):
    depth = 3
    data = gf.data.linear_teacher(jax.random.PRNGKey(2), 2, 2, 8, [2.0, 1.0])
    (p,) = gf.diagnostics.critical_points(data, [2] * (depth + 1), subsets=[modes])
    flat, unravel = FLAT(p.model)
    noise = jax.random.normal(jax.random.PRNGKey(5), flat.shape)
    start = unravel(flat + 1e-3 * noise / jnp.linalg.norm(noise))
    res = gf.critical_point(start, data, probe=False)
    assert res.converged
    assert abs(res.value - p.critical_value) <= 1e-10
    assert np.max(np.abs(np.asarray(res.model.product() - p.model.product()))) <= 1e-10
    assert res.kind == kind
    if kind == "degenerate_minimum":  # the rescaling orbit explains the whole null space
        assert res.orbit_dimension == 8 and res.n_zero == 0


def test_refuses_losses_without_a_minimum():
    x = jax.random.normal(jax.random.PRNGKey(0), (8, 2))
    data = gf.Dataset(x, jnp.sign(x[:, :1]))  # separable ±1 labels: logistic's data
    model = gf.models.DeepLinear([2, 2, 1], key=jax.random.PRNGKey(0))
    with pytest.raises(gf.ConfigError, match="attains its minimum"):
        gf.critical_point(model, data, loss="logistic")
    with pytest.raises(gf.ConfigError, match="method"):
        gf.critical_point(model, data, method="newton")


def test_wrapped_model_with_user_symmetries_and_the_matrix_free_path():
    # f(x) = B A x as a Wrapped function: the rescalings (A, B) ↦ (GA, BG⁻¹) are its symmetries,
    # with tangents (XA, −BX); near a factorisation of the exact teacher, a zero-risk minimum
    data = gf.data.linear_teacher(jax.random.PRNGKey(2), 2, 2, 8, [2.0, 1.0])
    w = np.asarray(data.moments().syx)
    r = np.array([[1.0, 0.3], [-0.2, 0.8]])
    params = {"a": jnp.asarray(r) + 1e-3, "b": jnp.asarray(w @ np.linalg.inv(r)) - 1e-3}
    model = gf.models.Wrapped(lambda p, x: p["b"] @ (p["a"] @ x), params, in_dim=2, out_dim=2)

    def rescalings(m):
        a, b = m.params["a"], m.params["b"]
        units = [jnp.zeros((2, 2)).at[i, j].set(1.0) for i in range(2) for j in range(2)]
        return [{"a": x @ a, "b": -b @ x} for x in units]

    dense = gf.critical_point(model, data, symmetries=rescalings)
    assert dense.converged and dense.value < 1e-28
    assert dense.kind == "degenerate_minimum" and dense.certificate == "hessian"
    assert dense.orbit_dimension == 4 and dense.n_zero == 0 and dense.n_positive == 4
    krylov = gf.critical_point(model, data, method="krylov", lanczos_k=4)
    assert krylov.converged and krylov.value < 1e-28 and krylov.method == "krylov"
    # no quotient on this path: the 4 null directions are seen, and F = 0 certifies the minimum
    assert krylov.n_zero == 4 and krylov.certificate == "lower_bound"
    assert np.allclose(krylov.eigenvalues[4:], dense.eigenvalues, rtol=1e-10)
