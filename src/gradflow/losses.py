"""Losses: how a model's outputs are compared with the targets.

The risk of a model f on data (x_i, y_i), i = 1..n, is the sample mean of a per-sample loss,

- `"half_mse"` (`HalfMSE`, the default): (1/2n) Σ_i |f(x_i) − y_i|², the normalisation of the
  theory (with whitened inputs the deep-linear critical values are ½ Σ_{unlearned} s_j²);
- `"mse"` (`MSE`): (1/(n d_out)) Σ_i |f(x_i) − y_i|², the mean over all n·d_out entries (PyTorch's
  `MSELoss`); it equals (2/d_out) × half_mse, so its flow is the half_mse flow with time ×2/d_out;
- `"cross_entropy"` (`CrossEntropy`): (1/n) Σ_i −log softmax(f(x_i))_{c_i} for class labels c_i,
  given as one column of integers or as one-hot (or probability) rows;
- `"logistic"` (`Logistic`): (1/n) Σ_i log(1 + e^{−y_i f(x_i)}) for labels y_i = ±1 and a scalar
  output.

or `CustomLoss(fn)` for any `fn(outputs, targets) -> scalar`. Cross-entropy and logistic losses
on separable data have no minimiser (F → 0 only as |θ| → ∞): `attains_minimum()` is False for them,
and the diagnostics that assume a minimum (PL ratio, Łojasiewicz fit, critical points) refuse them.

**Sufficient statistics.** For a model that is linear in its input (`AbstractLinearModel`,
f(x) = W x) the squared losses depend on the data only through Σ_xx = XᵀX/n, Σ_yx = YᵀX/n and
tr Σ_yy = |Y|²/n:

    half_mse = ½ tr(W Σ_xx Wᵀ) − tr(W Σ_yxᵀ) + ½ tr Σ_yy,

which is how `HalfMSE` and `MSE` compute it for such models (one d_out × d_in product per
evaluation, independent of n). The other losses never use this shortcut.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import optax

from ._custom_types import Array, Float, Outputs, PyTree, Targets
from ._errors import ConfigError
from .data import Dataset, Moments


def linear_risk(product: Float[Array, "d_out d_in"], moments: Moments) -> Float[Array, ""]:
    """½ tr(W Σ_xx Wᵀ) − tr(W Σ_yxᵀ) + ½ tr Σ_yy: the half_mse risk of x ↦ W x from moments."""
    return (
        0.5 * jnp.sum((product @ moments.sxx) * product)
        - jnp.sum(product * moments.syx)
        + 0.5 * moments.tr_syy
    )


class AbstractLoss(eqx.Module):
    """A loss: `__call__(outputs, targets)` is the mean over samples of the per-sample loss.

    `statistics(model, data)` prepares what `risk(model, statistics)` needs (the data itself by
    default, computed once per solve); `check_data(data)` refuses targets the loss cannot read.
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def __call__(self, outputs: Outputs, targets: Targets) -> Float[Array, ""]:
        """The loss of `outputs` (n, d_out) against `targets`, averaged over the n samples."""

    def check_data(self, data: Dataset, out_dim: int) -> None:
        """Raise `ConfigError` if the targets are not of the form this loss reads (for a model
        with `out_dim` outputs)."""

    def target_dim(self, out_dim: int) -> tuple[int, ...]:
        """The target widths this loss accepts for a model with `out_dim` outputs."""
        return (out_dim,)

    def attains_minimum(self) -> bool:
        """Whether the risk has a minimiser in general (False: F → inf F only as |θ| → ∞)."""
        return True

    def statistics(self, model, data: Dataset) -> PyTree:
        return data

    def risk(self, model, statistics: PyTree) -> Float[Array, ""]:
        return self(model(statistics.x), statistics.y)


def _is_linear(model) -> bool:
    from .models import AbstractLinearModel

    return isinstance(model, AbstractLinearModel)


class HalfMSE(AbstractLoss):
    """(1/2n) Σ_i |f(x_i) − y_i|² (moments for linear models: see the module docstring)."""

    name: ClassVar[str] = "half_mse"

    def __call__(self, outputs, targets):
        residual = outputs - targets
        return 0.5 * jnp.mean(jnp.sum(residual**2, axis=-1))

    def statistics(self, model, data):
        return data.moments() if _is_linear(model) else data

    def risk(self, model, statistics):
        if isinstance(statistics, Moments):
            return linear_risk(model.product(), statistics)
        return self(model(statistics.x), statistics.y)


class MSE(AbstractLoss):
    """(1/(n d_out)) Σ_i |f(x_i) − y_i|², the mean over all entries (PyTorch's `MSELoss`);
    = (2/d_out) × `HalfMSE`."""

    name: ClassVar[str] = "mse"

    def __call__(self, outputs, targets):
        return jnp.mean((outputs - targets) ** 2)

    def statistics(self, model, data):
        return data.moments() if _is_linear(model) else data

    def risk(self, model, statistics):
        if isinstance(statistics, Moments):
            d_out = statistics.syx.shape[0]
            return (2.0 / d_out) * linear_risk(model.product(), statistics)
        return self(model(statistics.x), statistics.y)


class CrossEntropy(AbstractLoss):
    """(1/n) Σ_i −log softmax(f(x_i))_{c_i}: the outputs are logits over C classes, the targets
    either one column of class indices in {0, …, C−1} or (n, C) one-hot/probability rows."""

    name: ClassVar[str] = "cross_entropy"

    def attains_minimum(self) -> bool:
        return False

    def target_dim(self, out_dim: int) -> tuple[int, ...]:
        # one-hot (or probability) rows, or one column of class indices
        return (out_dim, 1)

    def __call__(self, outputs, targets):
        if targets.shape[-1] == 1 and outputs.shape[-1] > 1:
            labels = targets[..., 0].astype(jnp.int32)
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(outputs, labels))
        return jnp.mean(optax.softmax_cross_entropy(outputs, targets))

    def check_data(self, data, out_dim):
        y = np.asarray(data.y)
        if y.shape[1] == 1 and out_dim > 1:
            if not np.all((y == np.round(y)) & (y >= 0) & (y < out_dim)):
                raise ConfigError(
                    "data",
                    "targets that are not class indices",
                    f"for cross_entropy, one column of integer class labels in 0..{out_dim - 1}, "
                    "or one-hot rows",
                )
        elif not (np.all(y >= 0) and np.allclose(y.sum(axis=1), 1.0)):
            raise ConfigError(
                "data",
                "targets whose rows are not probabilities",
                "for cross_entropy, one-hot "
                "(or probability) rows, or one column of integer class labels",
            )


class Logistic(AbstractLoss):
    """(1/n) Σ_i log(1 + e^{−y_i f(x_i)}) for labels y_i ∈ {−1, +1} and a scalar output."""

    name: ClassVar[str] = "logistic"

    def attains_minimum(self) -> bool:
        return False

    def __call__(self, outputs, targets):
        # optax's binary cross-entropy with labels (1 + y)/2 ∈ {0, 1} is log(1 + e^{−y f}).
        return jnp.mean(optax.sigmoid_binary_cross_entropy(outputs, (1.0 + targets) / 2.0))

    def check_data(self, data, out_dim):
        y = np.asarray(data.y)
        if y.shape[1] != 1 or not np.all(np.abs(y) == 1):
            raise ConfigError("data", "targets not in {-1, +1}", "for logistic, one column of ±1")


class CustomLoss(AbstractLoss):
    """A loss given as a function `fn(outputs, targets) -> scalar` (mean over samples).

    **Arguments:** `fn`; `name` (for summaries, default the function's name);
    `attains_minimum` (False for losses, like logistic, whose infimum is not attained).
    """

    fn: Callable = eqx.field(static=True)
    label: str = eqx.field(static=True, default="custom")
    minimum_attained: bool = eqx.field(static=True, default=True)

    name: ClassVar[str] = "custom"

    def __call__(self, outputs, targets):
        return self.fn(outputs, targets)

    def attains_minimum(self) -> bool:
        return self.minimum_attained


LOSSES: dict[str, type[AbstractLoss]] = {c.name: c for c in (HalfMSE, MSE, CrossEntropy, Logistic)}


def as_loss(loss) -> AbstractLoss:
    """A loss object from a name ('half_mse', 'mse', 'cross_entropy', 'logistic'), a loss object,
    or a function `fn(outputs, targets) -> scalar`."""
    if isinstance(loss, AbstractLoss):
        return loss
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]()
    if callable(loss) and not isinstance(loss, type):
        return CustomLoss(loss, getattr(loss, "__name__", "custom"))
    raise ConfigError(
        "loss",
        loss,
        "one of " + ", ".join(map(repr, LOSSES)) + ", or a function (outputs, targets)",
    )


def loss_name(loss: AbstractLoss) -> str:
    """The name summaries use for a loss."""
    return loss.label if isinstance(loss, CustomLoss) else loss.name
