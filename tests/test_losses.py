"""Losses: each gradient against finite differences, `mse` = (2/d_out) × `half_mse` (also through
the moments of a linear model), the moments used only where the loss allows them, targets each
loss refuses, and cross-entropy training a classifier on the digits."""

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest

import gradflow as gf
from gradflow.data import Moments

KEY = jax.random.PRNGKey


def _fd_check(model, data, loss):
    """∇F along a random direction equals the central difference (error O(h²) ≈ 1e-10)."""
    problem, params = gf.GradientFlowProblem.from_model(model, data, loss=loss)
    _, grads = problem.value_and_grad(params)
    leaves, treedef = jtu.tree_flatten(params)
    keys = jax.random.split(KEY(9), len(leaves))
    direction = jtu.tree_unflatten(
        treedef, [jax.random.normal(k, a.shape) for k, a in zip(keys, leaves, strict=True)]
    )
    h = 1e-5
    shifted = lambda t: jtu.tree_map(lambda p, d: p + t * d, params, direction)
    fd = (problem.objective(shifted(h)) - problem.objective(shifted(-h))) / (2 * h)
    exact = sum(
        float(jnp.sum(g * d))
        for g, d in zip(jtu.tree_leaves(grads), jtu.tree_leaves(direction), strict=True)
    )
    assert float(fd) == pytest.approx(exact, rel=1e-7, abs=1e-10)


def _classification(labels_as_column=False):
    x = jax.random.normal(KEY(1), (12, 3))
    labels = jnp.arange(12) % 4
    y = labels[:, None].astype(float) if labels_as_column else jax.nn.one_hot(labels, 4)
    return gf.Dataset(x, y)


@pytest.mark.parametrize("loss", ["half_mse", "mse", "cross_entropy", "logistic"])
def test_gradient_equals_finite_differences(loss):
    if loss == "logistic":
        x = jax.random.normal(KEY(2), (10, 3))
        data = gf.Dataset(x, jnp.sign(x[:, :1] + 0.3 * x[:, 1:2]))
        out = 1
    elif loss == "cross_entropy":
        data, out = _classification(), 4
    else:
        data, out = gf.data.gaussian(KEY(3), 10, 3, 2), 2
    model = gf.models.ResNet(3, max(3, out), 5, 4, out, key=KEY(4), init="iid")
    _fd_check(model, data, loss)


def test_mse_is_2_over_d_out_times_half_mse():
    data = gf.data.gaussian(KEY(5), 9, 3, 3)  # d_out = 3: the factor 2/3 is not 1
    resnet = gf.models.ResNet(3, 4, 5, 3, 3, key=KEY(6), init="iid")
    linear = gf.models.DeepLinear([3, 4, 3], KEY(7), init_scale=0.8)
    for model in (resnet, linear):
        half, params = gf.GradientFlowProblem.from_model(model, data, loss="half_mse")
        mse, _ = gf.GradientFlowProblem.from_model(model, data, loss="mse")
        # against the definition: the mean over all n·d_out entries
        direct = jnp.mean((model(data.x) - data.y) ** 2)
        np.testing.assert_allclose(mse.objective(params), direct, rtol=1e-13)
        np.testing.assert_allclose(
            mse.objective(params), (2 / data.out_dim) * half.objective(params), rtol=1e-13
        )


def test_moments_only_where_the_loss_allows_them():
    linear = gf.models.DeepLinear([3, 4, 4], KEY(8), init_scale=0.8)
    squared = gf.data.gaussian(KEY(9), 12, 3, 4)
    for loss in ("half_mse", "mse"):
        problem, _ = gf.GradientFlowProblem.from_model(linear, squared, loss=loss)
        assert isinstance(problem.statistics, Moments)
    problem, params = gf.GradientFlowProblem.from_model(
        linear, _classification(), loss="cross_entropy"
    )
    assert isinstance(problem.statistics, gf.Dataset)  # never moments for cross-entropy
    resnet = gf.models.ResNet(3, 4, 5, 3, 4, key=KEY(6))
    problem, _ = gf.GradientFlowProblem.from_model(resnet, squared)
    assert isinstance(problem.statistics, gf.Dataset)


def test_cross_entropy_reads_labels_or_one_hot_rows():
    model = gf.models.DeepLinear([3, 4], KEY(10), init_scale=1.0)
    p1, params = gf.GradientFlowProblem.from_model(model, _classification(), loss="cross_entropy")
    p2, _ = gf.GradientFlowProblem.from_model(model, _classification(True), loss="cross_entropy")
    np.testing.assert_allclose(p1.objective(params), p2.objective(params), rtol=1e-14)
    logits = model(_classification().x)
    labels = np.arange(12) % 4
    direct = -np.mean(jax.nn.log_softmax(logits)[np.arange(12), labels])
    np.testing.assert_allclose(p1.objective(params), direct, rtol=1e-13)


@pytest.mark.parametrize(
    "loss,y",
    [
        ("cross_entropy", jnp.array([[0.0], [1.0], [4.0]])),  # class 4 of 4 outputs
        ("cross_entropy", jnp.array([[0.5], [1.0], [2.0]])),  # not an integer
        ("logistic", jnp.array([[1.0], [0.0], [-1.0]])),  # 0 is not a label
    ],
)
def test_targets_a_loss_cannot_read_are_refused(loss, y):
    out = 4 if loss == "cross_entropy" else 1
    model = gf.models.DeepLinear([2, out], KEY(11))
    with pytest.raises(gf.ConfigError) as e:
        gf.flow(model, gf.Dataset(jnp.ones((3, 2)), y), 1.0, loss=loss)
    assert e.value.field == "data"


def test_unknown_loss_is_refused():
    model = gf.models.DeepLinear([2, 1], KEY(11))
    with pytest.raises(gf.ConfigError) as e:
        gf.flow(model, gf.data.gaussian(KEY(1), 3, 2, 1), 1.0, loss="hinge")
    assert e.value.field == "loss"


def test_cross_entropy_trains_a_digits_classifier():
    """Softmax regression on the 64 standardised pixels of scikit-learn's digits, by Adam on the
    cross-entropy: at least 95% of the training images classified right."""
    data = gf.data.digits(KEY(0))
    model = gf.models.DeepLinear([64, 10], KEY(1), init_scale=0.1)
    traj = gf.descent(model, data, 300, 0.05, optimizer="adam", loss="cross_entropy")
    assert traj.info["loss"] == "cross_entropy"
    predicted = jnp.argmax(traj.final(data.x), axis=-1)
    accuracy = float(jnp.mean(predicted == jnp.argmax(data.y, axis=-1)))
    assert accuracy >= 0.95, accuracy
