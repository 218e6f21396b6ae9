"""The model interface: a forward map, its parameters, and the mass each parameter carries.

A model is an `eqx.Module`. Its trainable parameters are the leaves selected by `trainable()`
(default: every floating-point array). A model that discretises a measure by particles declares
the *mass* of each parameter in `masses()`: a pytree with the model's structure whose leaves are
numbers (or arrays broadcastable to the leaf). The geometry turns a gradient into a velocity with
these masses (`docs/geometries.md`); models never name a geometry, and never a loss: the risk is
the loss's (`gradflow.losses`), which may use a sufficient statistic of the data for models that
declare the structure it needs (`AbstractLinearModel`).
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.tree_util as jtu

from .._custom_types import Array, Float, Inputs, Outputs, PyTree
from .._serialise import register_gradflow_class


class AbstractModel(eqx.Module):
    """A network: `__call__(x)` maps a batch (n, d_in) to (n, d_out).

    Subclasses define `__call__`, `in_dim` and `out_dim`, and may override:

    - `trainable()`: which leaves move under the flow (default: all inexact arrays).
    - `masses()`: the mass of each trainable leaf in the measure it discretises, or `None` for a
      model that discretises no measure (then only the Euclidean geometry applies).
    - `layered`: True when parameters are indexed by a layer coordinate s ∈ [0, 1] that is not
      itself a parameter (the conditional-Wasserstein geometry keeps it frozen).
    """

    layered: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Files name a model's class instead of pickling it; gradflow's own classes are the
        # ones a file may name without the user registering them (see `_serialise`).
        register_gradflow_class(cls)

    @abc.abstractmethod
    def __call__(self, x: Inputs) -> Outputs:
        """The outputs (n, d_out) of the batch `x` (n, d_in)."""

    @property
    @abc.abstractmethod
    def in_dim(self) -> int:
        """d_in."""

    @property
    @abc.abstractmethod
    def out_dim(self) -> int:
        """d_out."""

    def trainable(self) -> PyTree[bool]:
        return jtu.tree_map(eqx.is_inexact_array, self)

    def masses(self) -> PyTree | None:
        return None

    def parameter_count(self) -> int:
        params, _ = eqx.partition(self, self.trainable())
        return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))


class DimsFromIO:
    """Mixin of a model with a static field `io_dims` = (d_in, d_out): its `in_dim`, `out_dim`."""

    @property
    def in_dim(self) -> int:
        return self.io_dims[0]

    @property
    def out_dim(self) -> int:
        return self.io_dims[1]


def axis_size(field: str, axis: int, doc: str) -> property:
    """A read-only size of a model, the length of axis `axis` of its array field `field`.

    Sizes are read from the arrays rather than stored, so that they cannot disagree with them
    (and a model rebuilt from a file has them too). E.g. `depth = axis_size("V", -3, "L.")`.
    """
    return property(lambda self: getattr(self, field).shape[axis], doc=doc)


class DimsFromWidths(DimsFromIO):
    """Mixin of a model with `widths` = (d_in, n_1, ..., d_out): its `in_dim`, `out_dim`."""

    @property
    def io_dims(self) -> tuple[int, int]:
        return self.widths[0], self.widths[-1]


class AbstractLinearModel(AbstractModel):
    """A model linear in its input, f(x) = W x with W = `product()` (d_out × d_in).

    Squared losses then depend on the data only through second moments (`gradflow.losses`).
    """

    @abc.abstractmethod
    def product(self) -> Float[Array, "d_out d_in"]:
        """The end-to-end matrix W."""

    def __call__(self, x: Inputs) -> Outputs:
        return x @ self.product().T


class AbstractLayeredModel(AbstractModel):
    """A model whose parameters are indexed by a layer coordinate s ∈ [0, 1] (layer k of L at
    s = k/L, or (k − ½)/L) that is not itself a parameter: a discretisation in depth of a
    continuous-depth model. The conditional-Wasserstein geometry keeps s frozen.

    `layer_weights()` returns the layer-indexed parameters by name, each stacked along a leading
    axis of length L (what depth diagnostics compare between layers and between depths).
    """

    layered: ClassVar[bool] = True

    @abc.abstractmethod
    def layer_weights(self) -> dict[str, Array]:
        """{name: array with a leading layer axis of length L}."""


class AbstractParticleModel(AbstractModel):
    """A model whose parameters are particles θ_j of a measure (each a row of
    `particle_positions()`, with the mass `masses()` gives it); transport diagnostics compare the
    measures of two such models."""

    @abc.abstractmethod
    def particle_positions(self) -> Array:
        """The particles, one per row of the last-but-one axis: (M, p), or (L, M, p) by layer."""


def masses_like(model: AbstractModel, default, **overrides) -> PyTree:
    """A model-shaped pytree of masses: `default` everywhere, `overrides[name]` for named fields.

    Used by models to implement `masses()` in one line, e.g.
    `masses_like(self, 1.0, V=1 / L, W=1 / L)`.
    """
    tree = jtu.tree_map(lambda leaf: default if eqx.is_array(leaf) else None, model)
    for name, value in overrides.items():
        tree = eqx.tree_at(
            lambda m, name=name: getattr(m, name),
            tree,
            jtu.tree_map(lambda _, value=value: value, getattr(tree, name)),
            is_leaf=lambda x: x is None,
        )
    return tree
