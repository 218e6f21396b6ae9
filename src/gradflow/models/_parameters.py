"""Initial weights from `.npz` files: arrays named by parameter path, as trajectory files name them.

The names are dotted `jax.tree_util` key paths of the trainable leaves (`V`, `W`,
`weights.0`, `u`, ...): `parameter_arrays(model)` lists them. Loading requires every trainable
array with its exact shape and refuses unknown names (a misspelt name would otherwise be
silently ignored). Failures are one `ConfigError` naming the field (`init` by default).
"""

from __future__ import annotations

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._errors import ConfigError
from .._npz import numeric_array, read_npz
from .._serialise import leaves_by_path, path_of


def _trainable(model):
    """(trainable part, static part, {path: trainable array}) of `model`."""
    params, static = eqx.partition(model, model.trainable())
    leaves = {k: v for k, v in leaves_by_path(params).items() if v is not None}
    return params, static, leaves


def parameter_arrays(model) -> dict[str, np.ndarray]:
    """The trainable arrays of `model` by parameter path (what `load_parameters` expects)."""
    return {k: np.asarray(v) for k, v in _trainable(model)[2].items()}


def load_parameters(model, path, *, field: str = "init"):
    """`model` with each trainable array replaced by the array of the same path in `path`.

    The names are the dotted parameter paths of `parameter_arrays(model)`; each must be present
    with the model's shape, and the file may hold no other names.
    """
    arrays = read_npz(path, field, "arrays named by parameter path")
    params, static, expected = _trainable(model)
    unknown = sorted(set(arrays) - set(expected))
    missing = sorted(set(expected) - set(arrays))
    names = ", ".join(f"{k} {tuple(v.shape)}" for k, v in expected.items())
    if unknown or missing:
        problem = f"unknown {unknown}" if unknown else f"missing {missing}"
        raise ConfigError(field, f"{os.fspath(path)}: {problem}", f"arrays {names}")
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    new = []
    for keypath, leaf in leaves:
        path_name = path_of(keypath)
        value = numeric_array(field, path_name, arrays[path_name])
        if value.shape != tuple(leaf.shape):
            raise ConfigError(
                field, f"{path_name} of shape {value.shape}", f"shape {tuple(leaf.shape)}"
            )
        new.append(jnp.asarray(value, leaf.dtype))
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, new), static)


def save_parameters(path, model) -> None:
    """Write the trainable arrays of `model` by parameter path (the layout `load_parameters` reads)."""
    np.savez(path, **parameter_arrays(model))
