"""Geometries: how a gradient becomes a velocity.

A model that discretises a measure gives every trainable leaf a mass m (1/M for M equal particles,
1/(L·M) for L layers of M particles). The Wasserstein gradient flow of the particle system is then

    θ_j' = −∇_{θ_j} F / m_j = −∇_θ (δF/δμ)(θ_j),

and the Euclidean flow is the same formula with m = 1. A geometry is therefore a map
(gradient, masses) → velocity; the metric norm of the gradient is |∇F|²_G = Σ_j |∇_{θ_j}F|² / m_j,
so that along the flow dF/dt = −|∇F|²_G (the energy identity).

- `Euclidean`: θ' = −∇F, for every model.
- `Wasserstein`: θ' = −∇F / m, for a model with masses and no layer coordinate (e.g. a two-layer
  mean-field network).
- `ConditionalWasserstein`: the same, for a *layered* model (parameters indexed by a layer
  coordinate s ∈ [0, 1] with uniform marginal): the layer coordinate is not a parameter and never
  moves, so each conditional μ_s evolves by its own Wasserstein flow. For a ResNet with residual
  (1/L)·f(h, θ_k) this is gradient flow with the residual weights' time multiplied by L.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu

from ._custom_types import Array, Float, PyTree
from ._errors import ConfigError


class AbstractGeometry(eqx.Module):
    """Turns the gradient of F into the velocity of the flow."""

    name: ClassVar[str]

    @abc.abstractmethod
    def check_model(self, model) -> None:
        """Raise `ConfigError` if this geometry does not apply to `model`."""

    @abc.abstractmethod
    def velocity(self, grads: PyTree, masses: PyTree) -> PyTree:
        """The velocity θ' given ∇F and the masses of the trainable leaves."""

    @abc.abstractmethod
    def metric_masses(self, masses: PyTree) -> PyTree:
        """The masses this geometry uses (1 everywhere for Euclidean)."""

    def norm(self, velocity: PyTree, masses: PyTree) -> Float[Array, ""]:
        """|v|_G = (Σ_j m_j |v_j|²)^{1/2}, the metric's norm of a velocity (a tangent vector)."""
        terms = jtu.tree_map(lambda v, m: jnp.sum(m * v**2), velocity, self.metric_masses(masses))
        return jnp.sqrt(sum(jtu.tree_leaves(terms)))

    def dual_norm(self, grads: PyTree, masses: PyTree) -> Float[Array, ""]:
        """|∇F|_G = (Σ_j |∇_{θ_j}F|² / m_j)^{1/2}, the norm of a gradient (a cotangent vector):
        along the flow dF/dt = −|∇F|_G² (the energy identity)."""
        terms = jtu.tree_map(lambda g, m: jnp.sum(g**2 / m), grads, self.metric_masses(masses))
        return jnp.sqrt(sum(jtu.tree_leaves(terms)))


def _scaled_velocity(grads, masses):
    return jtu.tree_map(lambda g, m: -g / m, grads, masses)


class Euclidean(AbstractGeometry):
    """θ' = −∇F."""

    name: ClassVar[str] = "euclidean"

    def check_model(self, model) -> None:
        return None

    def velocity(self, grads, masses):
        return jtu.tree_map(jnp.negative, grads)

    def metric_masses(self, masses):
        return jtu.tree_map(lambda m: jnp.ones_like(m), masses)


class Wasserstein(AbstractGeometry):
    """θ_j' = −∇_{θ_j} F / m_j: the Wasserstein gradient flow of a particle measure."""

    name: ClassVar[str] = "wasserstein"

    def check_model(self, model) -> None:
        if model.masses() is None:
            raise ConfigError(
                "geometry",
                self.name,
                f"'euclidean' for {type(model).__name__}, which discretises no measure (no masses)",
            )
        if model.layered:
            raise ConfigError(
                "geometry",
                self.name,
                f"'conditional_wasserstein' or 'euclidean' for the layered model "
                f"{type(model).__name__}: its layer coordinate is fixed, not a parameter",
            )

    def velocity(self, grads, masses):
        return _scaled_velocity(grads, masses)

    def metric_masses(self, masses):
        return masses


class ConditionalWasserstein(AbstractGeometry):
    """θ_{k,j}' = −∇_{θ_{k,j}} F / m_{k,j}, the layer coordinate s_k frozen (conditional OT)."""

    name: ClassVar[str] = "conditional_wasserstein"

    def check_model(self, model) -> None:
        if model.masses() is None or not model.layered:
            usable = "'euclidean'" if model.masses() is None else "'euclidean' or 'wasserstein'"
            raise ConfigError(
                "geometry",
                self.name,
                f"{usable} for {type(model).__name__}, which has no layer coordinate with masses",
            )

    def velocity(self, grads, masses):
        return _scaled_velocity(grads, masses)

    def metric_masses(self, masses):
        return masses


GEOMETRIES = {g.name: g for g in (Euclidean, Wasserstein, ConditionalWasserstein)}


def as_geometry(geometry) -> AbstractGeometry:
    """A geometry object from a name ('euclidean', 'wasserstein', 'conditional_wasserstein')."""
    if isinstance(geometry, AbstractGeometry):
        return geometry
    if isinstance(geometry, str) and geometry in GEOMETRIES:
        return GEOMETRIES[geometry]()
    raise ConfigError("geometry", geometry, "one of " + ", ".join(repr(k) for k in GEOMETRIES))
