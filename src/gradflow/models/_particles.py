"""What the mean-field models share: a measure over neurons θ = (u, w, b), discretised by
particles of equal mass, each contributing u σ(γ wᵀx + b) (Mei, Montanari & Nguyen 2018; Chizat &
Bach 2018; Ding, Chen, Li & Wright 2022).

Particles are stored stacked along the last-but-one axis of u and w and the last axis of b (a
leading layer axis for `MeanFieldResNet`). Every particle has the same mass, 1/(number of
particles), so repeating every particle r times (`replicate`) is the same measure: it has the same
forward map and the same Wasserstein flow, and `deduplicate` undoes it.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from .._activations import ACTIVATIONS
from .._custom_types import Array, Float
from .._errors import ConfigError
from .._validation import check, check_choice, positive, positive_int
from ._base import AbstractParticleModel, axis_size


@dataclasses.dataclass(frozen=True)
class NeuronArguments:
    """The constructor arguments every neuron measure takes after its sizes: the initial measure
    (`key`, `init_scale`, `positions`) and the neuron u σ(γ wᵀx + b) (`activation`, `bias`,
    γ = `input_scale`), described in `MeanFieldResNet`. The constructors take them through
    `gradflow._arguments.takes` and give them to `AbstractNeuronMeasure._init_neurons`.
    """

    key: jax.Array | None = None
    activation: str = "tanh"
    init_scale: float = 1.0
    positions: dict | tuple | Callable | None = None
    _: dataclasses.KW_ONLY
    bias: bool = True
    input_scale: float = 1.0


class AbstractNeuronMeasure(AbstractParticleModel):
    """Particles θ_j = (u_j, w_j, b_j) of neurons u σ(γ wᵀx + b), all of one mass.

    **Fields:** `u` (..., M, d_u), `w` (..., M, d_w), `b` (..., M): the particles; `activation`
    (a name of `gradflow._activations.ACTIVATIONS`); `bias` (whether b is trained; otherwise it is
    a fixed array); `input_scale` γ > 0. Subclasses add their sizes, the forward map, `masses` and
    the shape checks of `_check_shapes`.
    """

    u: Float[Array, "... M du"]
    w: Float[Array, "... M dw"]
    b: Float[Array, "... M"]
    activation: str = eqx.field(static=True)
    bias: bool = eqx.field(static=True)
    input_scale: float = eqx.field(static=True)

    def __check_init__(self):
        check_choice("activation", self.activation, ACTIVATIONS)
        check(type(self.bias) is bool, "bias", self.bias, "True or False")
        positive("input_scale", self.input_scale)
        self._check_shapes()

    @abc.abstractmethod
    def _check_shapes(self) -> None:
        """Raise `ConfigError` unless u, w, b have the shapes of this model's particles."""

    def _init_neurons(
        self,
        arguments: NeuronArguments,
        lead: tuple[int, ...],
        *,
        du: int,
        dw: int,
        sampler_dims,
        draw: Callable[[jax.Array, float], tuple[Array, Array, Array]],
    ) -> None:
        """Set the fields of this base class in a constructor, from `arguments`: the particles
        u (*lead, du), w (*lead, dw), b (*lead,) (`lead` = (M,) or (L, M)) given by
        `arguments.positions`, drawn by it as `positions(key, lead, sampler_dims)`, or drawn by
        the model's default initial measure `draw(key, init_scale)`; then the neuron's fields.
        """
        scale = check_init_scale(arguments.init_scale)
        u, w, b = initial_positions(
            arguments.positions, arguments.key, lead, sampler_dims, lambda key: draw(key, scale)
        )
        check_particle_shapes(u, w, b, lead, du, dw)  # the particles the arguments describe
        self.u, self.w, self.b = u, w, b
        self.activation = arguments.activation
        self.bias = bool(arguments.bias)
        self.input_scale = positive("input_scale", arguments.input_scale)

    particles = axis_size("u", -2, "M, the number of particles (per layer).")

    def sigma(self):
        """The activation function σ."""
        return ACTIVATIONS[self.activation]

    def particle_positions(self) -> Array:
        """θ_j as one array (..., M, p): [u, w, b] or, without a trained bias, [u, w]."""
        parts = [self.u, self.w] + ([self.b[..., None]] if self.bias else [])
        return jnp.concatenate(parts, axis=-1)

    def trainable(self):
        """u, w, and b if `bias`."""
        spec = jtu.tree_map(eqx.is_inexact_array, self)
        if not self.bias:
            spec = eqx.tree_at(lambda m: m.b, spec, False)
        return spec

    def replicate(self, factor: int):
        """The same measure with every particle repeated `factor` times (M → factor·M, each copy
        of mass 1/(factor·M)): the same forward map and the same flow, whose copies stay equal.

        Runs with different M can so share the array shapes (and the compiled solve) of the
        largest one; `deduplicate(factor)` goes back.
        """
        factor = positive_int("factor", factor)
        rep = lambda a, axis: jnp.repeat(a, factor, axis=axis)
        return eqx.tree_at(
            lambda m: (m.u, m.w, m.b),
            self,
            (rep(self.u, -2), rep(self.w, -2), rep(self.b, -1)),
        )

    def deduplicate(self, factor: int):
        """The inverse of `replicate(factor)`: the first of every `factor` consecutive particles
        (M → M/factor; the copies of a replicated measure are equal along its flow)."""
        factor = positive_int("factor", factor)
        check(
            self.particles % factor == 0,
            "factor",
            factor,
            f"a divisor of the number of particles {self.particles}",
        )
        return eqx.tree_at(
            lambda m: (m.u, m.w, m.b),
            self,
            (self.u[..., ::factor, :], self.w[..., ::factor, :], self.b[..., ::factor]),
        )


def check_particle_shapes(u, w, b, lead: tuple[int, ...], du: int, dw: int) -> None:
    """u (*lead, du), w (*lead, dw), b (*lead,) with lead = (M,) or (L, M), compared on the
    trailing axes (an ensemble's fixed b read from a file keeps its member axis)."""
    expected = {"u": (*lead, du), "w": (*lead, dw), "b": lead}
    for name, arr in (("u", u), ("w", w), ("b", b)):
        shape = expected[name]
        if arr.ndim < len(shape) or arr.shape[arr.ndim - len(shape) :] != shape:
            raise ConfigError(f"positions.{name}", arr.shape, f"an array of shape {shape}")
    check(min(lead) >= 1, "positions.u", u.shape, "at least one particle (per layer)")


def check_init_scale(init_scale) -> float:
    check(
        isinstance(init_scale, int | float)
        and not isinstance(init_scale, bool)
        and np.isfinite(init_scale)
        and init_scale >= 0,
        "init_scale",
        init_scale,
        "a non-negative number",
    )
    return float(init_scale)


def positions_from(positions, shape_lm: tuple[int, ...], field: str = "positions"):
    """(u, w, b) from a dict {'u','w','b'} or a tuple; b may be omitted (zeros of `shape_lm`)."""
    if isinstance(positions, dict):
        u, w, b = positions.get("u"), positions.get("w"), positions.get("b")
    else:
        try:
            parts = tuple(positions)
        except TypeError:
            raise ConfigError(
                field, type(positions).__name__, "a dict with u, w[, b] or a tuple (u, w[, b])"
            ) from None
        if len(parts) not in (2, 3):
            raise ConfigError(field, f"{len(parts)} arrays", "a tuple (u, w) or (u, w, b)")
        u, w = parts[0], parts[1]
        b = parts[2] if len(parts) == 3 else None
    if u is None or w is None:
        raise ConfigError(field, "missing u or w", "a dict with u, w[, b] or a tuple (u, w[, b])")
    u = jnp.asarray(u, dtype=float)
    w = jnp.asarray(w, dtype=float)
    b = jnp.zeros(shape_lm) if b is None else jnp.asarray(b, dtype=float)
    return u, w, b


def initial_positions(positions, key, shape: tuple[int, ...], dims, draw):
    """(u, w, b) of the initial particles of leading shape `shape`: the arrays `positions` (a dict
    or tuple, see `positions_from`), or drawn by the sampler `positions(key, shape, dims)`, or
    when `positions` is None by the default `draw(key)`; drawing needs a key."""
    if positions is not None and not callable(positions):
        return positions_from(positions, shape)
    check(key is not None, "key", key, "a jax.random key (or pass positions=)")
    if positions is None:
        return draw(key)
    return positions_from(positions(key, shape, dims), shape)


def gaussian_positions(key, shape: tuple[int, ...], dim: int, scale: float):
    """The default initial measure: u ~ N(0, s² I_q), w ~ N(0, s² I_q/q), b ~ N(0, s²), i.i.d.

    Returns (u, w, b) of shapes shape + (q,), shape + (q,), shape.
    """
    ku, kw, kb = jax.random.split(key, 3)
    s = float(scale)
    u = s * jax.random.normal(ku, shape + (dim,))
    w = s / np.sqrt(dim) * jax.random.normal(kw, shape + (dim,))
    b = s * jax.random.normal(kb, shape)
    return u, w, b
