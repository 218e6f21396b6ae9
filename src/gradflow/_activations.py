"""The one table of activation functions σ, by the name models and configurations use.

Every model that takes an `activation=` name (`ResNet`, `NeuralODE`, `MeanFieldResNet`,
`TwoLayerMeanField`) and the teachers of `gradflow.data` read σ from here, so a name means the same
function everywhere:

- `gelu`: the exact GELU z Φ(z) = ½ z (1 + erf(z/√2)) (PyTorch's `nn.GELU()` default, the one of
  Marion et al.'s experiments), not the tanh approximation;
- `tanh`, `sigmoid` 1/(1 + e^{−z}), `softplus` log(1 + e^z): analytic, as the Łojasiewicz theory
  of mean-field flows needs;
- `relu` max(z, 0): not C², so it breaks the ResNet theory's assumptions (its counter-example);
- `identity`: linear networks.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from ._custom_types import Array


def _gelu(z: Array) -> Array:
    return jax.nn.gelu(z, approximate=False)


def _identity(z: Array) -> Array:
    return z


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "gelu": _gelu,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "identity": _identity,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
}
