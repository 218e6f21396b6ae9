"""Convergence diagnostics: the PL ratio read off a trajectory, the tangent-kernel PL bound (tight
for the residual along its smallest eigenvector, for both squared losses), and the losses both
refuse. (ResNet-specific checks, e.g. the kernel at the tied init, are in tests/models.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from problems import random_deep_linear, trajectory_through

import gradflow as gf


def _series_trajectory(loss, grad_norm, info_loss="half_mse"):
    model = random_deep_linear(0, [2, 2])
    traj = trajectory_through([model] * len(loss), np.arange(len(loss), dtype=float))
    return gf.Trajectory(
        traj.ts,
        traj.params,
        traj.static,
        jnp.asarray(loss, float),
        jnp.asarray(grad_norm, float),
        traj.masses,
        {},
        {"loss": info_loss},
    )


def test_pl_ratio_of_known_series():
    traj = _series_trajectory([4.0, 1.0, 0.25, 0.0], [4.0, 1.5, 0.5, 0.0])
    pl = gf.diagnostics.pl_ratio(traj)  # |∇F|²/F = 4, 2.25, 1, undefined (F = 0)
    np.testing.assert_allclose(pl.ratio[:3], [4.0, 2.25, 1.0], rtol=1e-15)
    assert np.isnan(pl.ratio[3]) and pl.valid.tolist() == [True, True, True, False]
    assert (pl.min, pl.t_min, pl.f_inf) == (1.0, 2.0, 0.0)
    shifted = gf.diagnostics.pl_ratio(traj, f_inf=-1.0)  # 16/5, 2.25/2, 0.25/1.25, 0/1
    np.testing.assert_allclose(shifted.ratio, [3.2, 1.125, 0.2, 0.0], rtol=1e-15)
    assert (shifted.min, shifted.t_min) == (0.0, 3.0)
    with pytest.raises(gf.ConfigError):
        gf.diagnostics.pl_ratio(traj, f_inf=10.0)  # F − F_∞ < 0 everywhere


@pytest.mark.parametrize("name", ["cross_entropy", "logistic"])
def test_pl_ratio_refuses_losses_without_a_minimum(name):
    traj = _series_trajectory([1.0, 0.5], [1.0, 0.5], info_loss=name)
    with pytest.raises(gf.ConfigError, match="attains its minimum") as err:
        gf.diagnostics.pl_ratio(traj)
    assert name in str(err.value) and "\n" not in str(err.value)
    # the caller may say which loss the trajectory was flowed with
    assert gf.diagnostics.pl_ratio(traj, loss="half_mse").min == pytest.approx(0.5)
    # a custom loss by name is not second-guessed; passed as an object, it is checked
    custom = _series_trajectory([1.0, 0.5], [1.0, 0.5], info_loss="my_loss")
    assert gf.diagnostics.pl_ratio(custom).min == pytest.approx(0.5)
    unbounded = gf.losses.CustomLoss(lambda f, y: jnp.mean(f), "lin", minimum_attained=False)
    with pytest.raises(gf.ConfigError, match="attains its minimum"):
        gf.diagnostics.pl_ratio(custom, loss=unbounded)


@pytest.mark.parametrize("loss", ["half_mse", "mse"])
def test_tangent_kernel_bound_is_tight_along_its_smallest_eigenvector(loss):
    # With residual r = f(X) − Y along the eigenvector of K_G for λ_min, the PL ratio of a
    # squared loss equals the bound exactly: (2/n) λ_min (half_mse), (4/(n d')) λ_min (mse).
    n, d_in, d_out = 2, 3, 3  # d_out ≠ 2, so that the two losses' bounds differ
    model = random_deep_linear(7, [d_in, 4, d_out])
    x = jax.random.normal(jax.random.PRNGKey(3), (n, d_in))
    probe = gf.Dataset(x, jnp.zeros((n, d_out)))
    kernel = gf.diagnostics.tangent_kernel_pl(model, probe, loss=loss)
    assert kernel.loss == loss and kernel.size == n * d_out and kernel.lambda_min > 0
    factor = 1.0 if loss == "half_mse" else 2.0 / d_out
    assert kernel.bound == pytest.approx(factor * 2 * kernel.lambda_min / n, rel=1e-14)
    # the eigenvector of λ_min, as a residual
    outputs = lambda p: model.__class__.from_weights(p)(x).reshape(-1)
    jacs = jax.jacobian(outputs)(list(model.weights))
    jac = np.concatenate([np.asarray(j).reshape(n * d_out, -1) for j in jacs], axis=1)
    _, vecs = np.linalg.eigh(jac @ jac.T)
    residual = vecs[:, 0].reshape(n, d_out)
    data = gf.Dataset(x, model(x) - residual)
    problem, params = gf.GradientFlowProblem.from_model(model, data, loss=loss)
    value, gnorm = problem.metrics(params)
    assert float(gnorm) ** 2 / float(value) == pytest.approx(kernel.bound, rel=1e-10)
    # and any other residual does at least as well
    other = gf.Dataset(x, jax.random.normal(jax.random.PRNGKey(4), (n, d_out)))
    problem, params = gf.GradientFlowProblem.from_model(model, other, loss=loss)
    value, gnorm = problem.metrics(params)
    assert float(gnorm) ** 2 / float(value) >= kernel.bound * (1 - 1e-12)


def test_tangent_kernel_refuses_other_losses():
    model = random_deep_linear(0, [2, 2])
    data = gf.Dataset(jnp.eye(2), jnp.array([[1.0], [-1.0]]))
    for loss in ("cross_entropy", "logistic"):
        with pytest.raises(gf.ConfigError, match="attains its minimum"):
            gf.diagnostics.tangent_kernel_pl(model, data, loss=loss)
    with pytest.raises(gf.ConfigError, match="squared losses"):
        gf.diagnostics.tangent_kernel_pl(model, data, loss=lambda f, y: jnp.mean((f - y) ** 4))
