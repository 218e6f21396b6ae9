"""Ensembles: a batch of initial models of the same shapes, flowed in one vmapped solve."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu

from ._validation import check


class Ensemble(eqx.Module):
    """A batch of initial models stacked along a leading axis of every array leaf.

    `gf.flow`, `gf.descent` and `gf.flow_in_pieces` run an ensemble in one compiled solve
    (vmap), and return a `Trajectory` whose series carry a leading member axis (E, T, ...).

    Build one with `gf.ensemble(make_model, keys)` (one model per key) or
    `Ensemble.stack([model_1, ..., model_E])` (given models of the same shapes).
    """

    models: eqx.Module
    size: int = eqx.field(static=True)

    def member(self, e: int):
        """Model `e` of the batch."""
        return jtu.tree_map(lambda a: a[e] if eqx.is_array(a) else a, self.models)

    @classmethod
    def stack(cls, models: Sequence[eqx.Module]) -> Ensemble:
        """The ensemble of `models` (same class, same static fields, same array shapes)."""
        models = list(models)
        check(len(models) >= 1, "models", models, "a non-empty list of models")
        structure = jtu.tree_structure(models[0])
        for m in models[1:]:
            check(
                jtu.tree_structure(m) == structure,
                "models",
                type(m).__name__,
                "models of one class with the same static fields (e.g. activation, sizes)",
            )
        shapes = [jnp.shape(a) for a in jtu.tree_leaves(models[0])]
        for m in models[1:]:
            check(
                [jnp.shape(a) for a in jtu.tree_leaves(m)] == shapes,
                "models",
                type(m).__name__,
                "models whose arrays have the same shapes",
            )
        return cls(jtu.tree_map(lambda *a: jnp.stack(a), *models), len(models))


def ensemble(make_model: Callable, keys) -> Ensemble:
    """Build an `Ensemble` by calling `make_model(key)` for each key (vmapped, one trace).

    Example: `gf.ensemble(lambda k: gf.models.DeepLinear([4, 4, 4], k, 1e-2), jr.split(key, 64))`.
    """
    keys = jnp.asarray(keys)
    check(keys.ndim >= 1 and keys.shape[0] >= 1, "keys", keys.shape, "a non-empty batch of keys")
    return Ensemble(eqx.filter_vmap(make_model)(keys), int(keys.shape[0]))
