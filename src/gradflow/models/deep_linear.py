"""Deep linear networks, in layer form and in adjacency-matrix form.

Layer form: W_k ∈ R^{n_k × n_{k−1}}, k = 1..H, product W = W_H ⋯ W_1, f(x) = W x.
With squared loss the risk depends on the data only through second moments:

    F = ½ tr(W Σ_xx Wᵀ) − tr(W Σ_yxᵀ) + ½ tr Σ_yy,

and the gradient flow is Ẇ_k = W_{>k}ᵀ (Σ_yx − W Σ_xx) W_{<k}ᵀ, with the conservation laws
C_k = W_{k+1}ᵀ W_{k+1} − W_k W_kᵀ (k = 1..H−1).

Adjacency form (Wendin & Altafini, "Gradient flow equations for deep linear neural networks: a
survey from a network perspective", 2025): the N = Σ_k n_k neurons are the nodes; A ∈ R^{N×N} is
block-shift with block (k−1, k) = W_kᵀ. Then the corner block (0, H) of A^H is Wᵀ, A^{H+1} = 0, and
the gradient flow of F(A) is the polynomial matrix ODE

    Ȧ = −Σ_{j=1}^{H} (A^{j−1})ᵀ Q (A^{H−j})ᵀ,   Q = E_0 (W Σ_xx − Σ_yx)ᵀ E_Hᵀ,

(E_0, E_H the node selectors of the input and output layers), which with whitened, rotated data is
the survey's Ȧ = Σ_j (A^{H−j})ᵀ (E − A^H)(A^{j−1})ᵀ. Autodiff of F(A) produces exactly this
right-hand side, and it keeps the block-shift pattern by itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float
from .._errors import ConfigError
from .._validation import check
from ._base import AbstractLinearModel, DimsFromWidths


def check_widths(widths, data=None) -> tuple[int, ...]:
    """`widths` = [d_in, n_1, ..., d_out] as a tuple of positive integers (at least two); with
    `data` (a `Dataset`), d_in and d_out must also match its input and output dimensions.
    **Raises:** `ConfigError` naming `widths`."""
    try:
        widths = tuple(int(w) for w in widths)
    except (TypeError, ValueError):
        raise ConfigError("widths", widths, "a list of at least two positive integers") from None
    check(
        len(widths) >= 2 and all(w >= 1 for w in widths),
        "widths",
        list(widths),
        "a list of at least two positive integers [d_in, n_1, ..., d_out]",
    )
    if data is not None:
        check(
            widths[0] == data.in_dim and widths[-1] == data.out_dim,
            "widths",
            list(widths),
            f"[d_in = {data.in_dim}, ..., d_out = {data.out_dim}] matching the data",
        )
    return widths


def chain(weights: Sequence[Array]) -> Array:
    """W_H ⋯ W_1 for weights [W_1, ..., W_H]."""
    out = weights[0]
    for w in weights[1:]:
        out = w @ out
    return out


@final
class DeepLinear(DimsFromWidths, AbstractLinearModel):
    """A deep linear network f(x) = W_H ⋯ W_1 x.

    **Arguments:**

    - `widths`: [n_0 = d_in, n_1, ..., n_H = d_out]; H = len(widths) − 1 layers.
    - `key`: a `jax.random` key for the initial weights.
    - `init_scale`: per-layer scale ε: W_k has i.i.d. N(0, ε²/n_{k−1}) entries, so that each layer
      shrinks a generic vector by about ε and the product by about ε^H.

    Use `DeepLinear.from_weights([W_1, ..., W_H])` to build from given matrices.
    """

    weights: tuple[Float[Array, "n_k n_km1"], ...]

    def __init__(self, widths=None, key=None, init_scale: float = 1e-3, *, weights=None):
        if weights is not None:
            weights = tuple(jnp.asarray(w, dtype=float) for w in weights)
            check(len(weights) >= 1, "weights", weights, "a non-empty list of matrices")
            for k in range(1, len(weights)):
                if weights[k].shape[1] != weights[k - 1].shape[0]:
                    raise ConfigError(
                        "weights",
                        [w.shape for w in weights],
                        "matrices W_1..W_H with W_k of shape (n_k, n_{k-1})",
                    )
            self.weights = weights
            return
        widths = check_widths(widths)
        check(
            np.isfinite(init_scale) and init_scale > 0,
            "init_scale",
            init_scale,
            "a positive number",
        )
        check(key is not None, "key", key, "a jax.random key")
        keys = jax.random.split(key, len(widths) - 1)
        self.weights = tuple(
            init_scale / np.sqrt(widths[k]) * jax.random.normal(keys[k], (widths[k + 1], widths[k]))
            for k in range(len(widths) - 1)
        )

    @classmethod
    def from_weights(cls, weights: Sequence[Array]) -> DeepLinear:
        """The network with layers [W_1, ..., W_H] (W_k of shape (n_k, n_{k−1}))."""
        return cls(weights=weights)

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.weights[0].shape[-1],) + tuple(w.shape[-2] for w in self.weights)

    @property
    def depth(self) -> int:
        return len(self.weights)

    def product(self) -> Float[Array, "d_out d_in"]:
        """W = W_H ⋯ W_1."""
        return chain(self.weights)

    def conserved(self) -> list[Array]:
        """C_k = W_{k+1}ᵀ W_{k+1} − W_k W_kᵀ, k = 1..H−1 (constant along the gradient flow)."""
        w = self.weights
        return [w[k + 1].T @ w[k + 1] - w[k] @ w[k].T for k in range(len(w) - 1)]

    def to_adjacency(self) -> Float[Array, "N N"]:
        """The block-shift adjacency matrix A (N = Σ_k n_k) with block (k−1, k) = W_kᵀ."""
        widths = self.widths
        offsets = np.concatenate([[0], np.cumsum(widths)])
        a = jnp.zeros((offsets[-1], offsets[-1]))
        for k, w in enumerate(self.weights, start=1):
            a = a.at[offsets[k - 1] : offsets[k], offsets[k] : offsets[k + 1]].set(w.T)
        return a

    @classmethod
    def from_adjacency(cls, adjacency: Array, widths: Sequence[int]) -> DeepLinear:
        """Read the layers back from a block-shift adjacency matrix (the inverse of `to_adjacency`)."""
        widths = check_widths(widths)
        offsets = np.concatenate([[0], np.cumsum(widths)])
        check(
            adjacency.shape == (offsets[-1], offsets[-1]),
            "adjacency",
            adjacency.shape,
            f"a square matrix of size sum(widths) = {offsets[-1]}",
        )
        return cls.from_weights(
            [
                adjacency[offsets[k - 1] : offsets[k], offsets[k] : offsets[k + 1]].T
                for k in range(1, len(widths))
            ]
        )


@final
class AdjacencyDeepLinear(DimsFromWidths, AbstractLinearModel):
    """A deep linear network parametrised by its adjacency matrix A (all N² entries move).

    The risk is computed from the corner block (0, H) of A^H = Wᵀ, so the gradient flow of this
    model *is* the survey's adjacency-form matrix ODE (see the module docstring). Build it with
    `AdjacencyDeepLinear.from_layers(deep_linear)` and go back with `.to_layers()`.
    """

    adjacency: Float[Array, "N N"]
    widths: tuple[int, ...] = eqx.field(static=True)

    def __check_init__(self):
        n = sum(self.widths)
        if self.adjacency.shape[-2:] != (n, n):
            raise ConfigError("adjacency", self.adjacency.shape, f"shape ({n}, {n}) = sum(widths)")

    @classmethod
    def from_layers(cls, model: DeepLinear) -> AdjacencyDeepLinear:
        return cls(model.to_adjacency(), tuple(model.widths))

    def to_layers(self) -> DeepLinear:
        return DeepLinear.from_adjacency(self.adjacency, self.widths)

    @property
    def depth(self) -> int:
        return len(self.widths) - 1

    def _offsets(self):
        return np.concatenate([[0], np.cumsum(self.widths)])

    def power(self, p: int) -> Array:
        out = self.adjacency
        for _ in range(p - 1):
            out = out @ self.adjacency
        return out

    def product(self) -> Float[Array, "d_out d_in"]:
        """W, read off the corner block (0, H) of A^H (which is Wᵀ)."""
        o = self._offsets()
        corner = self.power(self.depth)[o[0] : o[1], o[-2] : o[-1]]
        return corner.T

    def pattern_mask(self) -> np.ndarray:
        """Boolean mask of the block-shift pattern (blocks (k−1, k))."""
        o = self._offsets()
        mask = np.zeros((o[-1], o[-1]), dtype=bool)
        for k in range(1, len(self.widths)):
            mask[o[k - 1] : o[k], o[k] : o[k + 1]] = True
        return mask

    def nilpotency_residual(self) -> Array:
        """|A^{H+1}|_F, zero for every block-shift matrix."""
        return jnp.linalg.norm(self.power(self.depth + 1))

    def pattern_leakage(self) -> Array:
        """|A restricted to the complement of the block-shift pattern|_F."""
        return jnp.linalg.norm(jnp.where(self.pattern_mask(), 0.0, self.adjacency))

    def conserved(self) -> list[Array]:
        """The inner diagonal blocks of AAᵀ − AᵀA, which equal C_k of the layer form."""
        a = self.adjacency
        m = a @ a.T - a.T @ a
        o = self._offsets()
        return [m[o[k] : o[k + 1], o[k] : o[k + 1]] for k in range(1, len(self.widths) - 1)]
