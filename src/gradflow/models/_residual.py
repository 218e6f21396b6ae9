"""What `ResNet` and `NeuralODE` share: residual weights at L layers (or nodes), the embedding and
the readout, the activation, and the normalisation of Marion, Wu, Sander and Biau (ICLR 2024):

    h_0 = A x,   h_{k+1} = h_k + (1/L) c_out V_{k+1} σ(c_in W_{k+1} h_k),   f(x) = B h_L,

with (c_out, c_in) = (1/√m, 1/√q) (`normalise=True`, the paper's analysis and gradflow's default)
or (1, 1) (`normalise=False`, the official code's forward pass). V_k ∈ R^{q×m}, W_k ∈ R^{m×q} are
stored stacked, V (L, q, m) and W (L, m, q); A ∈ R^{q×d}, B ∈ R^{d'×q} are stored only when given
or trained (otherwise the fixed A = [I_d; 0] and B = [0, I_{d'}] are rebuilt from the sizes).

Masses: layer k carries mass 1/L (one particle per layer of a measure over (s, Z) with uniform
layer marginal), A and B mass 1, so the `conditional_wasserstein` geometry gives the paper's flow
Z_k' = −L ∂F/∂Z_k, A' = −∂F/∂A, B' = −∂F/∂B.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from .._activations import ACTIVATIONS
from .._custom_types import Array, Float
from .._errors import ConfigError
from .._validation import check, check_choice
from ._base import AbstractLayeredModel, DimsFromIO, axis_size, masses_like

RESIDUAL_LEAVES = ("V", "W")


def embedding(in_dim: int, dim: int) -> Float[Array, "q d"]:
    """A = [I_d; 0] ∈ R^{q×d}: the input occupies the first d coordinates of the state."""
    return jnp.eye(dim, in_dim)


def readout(dim: int, out_dim: int) -> Float[Array, "dp q"]:
    """B = [0, I_{d'}] ∈ R^{d'×q}: the output is the last d' coordinates of the state."""
    return jnp.eye(out_dim, dim, k=dim - out_dim)


def _is_positive_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 1


class AbstractResidualNetwork(DimsFromIO, AbstractLayeredModel):
    """A residual network in depth (see the module docstring): the fields and members `ResNet`
    and `NeuralODE` share. Subclasses define the forward map `__call__` from the weights.

    **Fields:**

    - `V` (L, q, m), `W` (L, m, q): the residual weights of the L layers (nodes).
    - `A` (q, d), `B` (d', q): the embedding and the readout, or None for the fixed [I; 0] and
      [0, I] of sizes `io_dims`.
    - `io_dims`: (d, d').
    - `activation`: a name of `gradflow._activations.ACTIVATIONS`.
    - `train_embedding`: A and B are stored and trained (mass 1).
    - `frozen`: residual leaves kept fixed, a subset of ('V', 'W').
    - `normalise`: the 1/√m and 1/√q factors (True) or none (False).

    Every invariant of these fields is checked in `__check_init__`, so that a network rebuilt
    from a file (which bypasses `__init__`) is checked too. Arrays may carry leading batch axes
    (an ensemble's fixed arrays rebuilt from a file): shapes are checked on the trailing axes.
    """

    V: Float[Array, "L q m"]
    W: Float[Array, "L m q"]
    A: Float[Array, "q d"] | None
    B: Float[Array, "dp q"] | None
    io_dims: tuple[int, int] = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    train_embedding: bool = eqx.field(static=True)
    frozen: tuple[str, ...] = eqx.field(static=True)
    # A default, so that networks saved before the field existed read back as they were made.
    normalise: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_choice("activation", self.activation, ACTIVATIONS)
        check(
            type(self.frozen) is tuple and all(f in RESIDUAL_LEAVES for f in self.frozen),
            "frozen",
            self.frozen,
            "a subset of ('V', 'W'): residual weights kept fixed",
        )
        for name in ("train_embedding", "normalise"):
            value = getattr(self, name)
            check(type(value) is bool, name, value, "True or False")
        io = self.io_dims
        check(
            type(io) is tuple and len(io) == 2 and all(_is_positive_int(d) for d in io),
            "io_dims",
            io,
            "a pair of positive integers (in_dim, out_dim)",
        )
        check(
            not self.train_embedding or (self.A is not None and self.B is not None),
            "train_embedding",
            self.train_embedding,
            "False unless the embedding A and readout B are stored",
        )
        self._check_shapes()

    def _check_shapes(self) -> None:
        V, W, A, B = self.V, self.W, self.A, self.B
        shapes = {"V": V.shape, "W": W.shape}
        shapes.update({"A": A.shape} if A is not None else {})
        shapes.update({"B": B.shape} if B is not None else {})
        if (
            V.ndim < 3
            or W.ndim < 3
            or (A is not None and A.ndim < 2)
            or (B is not None and B.ndim < 2)
        ):
            raise ConfigError("weights", shapes, "V (L, q, m), W (L, m, q), A (q, d), B (d', q)")
        depth, dim, width = V.shape[-3:]
        in_dim, out_dim = self.io_dims
        ok = W.shape[-3:] == (depth, width, dim)
        ok = ok and (A is None or A.shape[-2:] == (dim, in_dim))
        ok = ok and (B is None or B.shape[-2:] == (out_dim, dim))
        if not ok:
            raise ConfigError(
                "weights",
                shapes,
                f"V (L, q, m), W (L, m, q), A (q, d), B (d', q) with matching L, q, m and "
                f"(d, d') = {self.io_dims}",
            )
        check(depth >= 1 and width >= 1, "weights", shapes, "depth L ≥ 1 and width m ≥ 1")
        # The fixed A = [I; 0] and B = [0, I] need room for the input and the output.
        if A is None:
            check(
                dim >= in_dim, "dim", dim, f"dim ≥ in_dim = {in_dim} (A = [I; 0] embeds the input)"
            )
        if B is None:
            check(
                dim >= out_dim,
                "dim",
                dim,
                f"dim ≥ out_dim = {out_dim} (B = [0, I] reads the output)",
            )

    # sizes -------------------------------------------------------------------------------
    depth = axis_size("V", -3, "L, the number of layers (nodes).")
    dim = axis_size("V", -2, "q, the dimension of the state.")
    width = axis_size("V", -1, "m, the width of each residual block.")

    # the gradient flow's ingredients --------------------------------------------------------
    def trainable(self):
        """V and W unless frozen; A and B if `train_embedding`."""
        spec = jtu.tree_map(lambda _: False, self)
        spec = eqx.tree_at(
            lambda m: (m.V, m.W), spec, ("V" not in self.frozen, "W" not in self.frozen)
        )
        for name in ("A", "B"):
            if getattr(self, name) is not None:
                spec = eqx.tree_at(
                    lambda m, name=name: getattr(m, name), spec, self.train_embedding
                )
        return spec

    def masses(self):
        """1/L for each layer of V and W (conditional-Wasserstein), 1 for A and B."""
        return masses_like(self, 1.0, V=1.0 / self.depth, W=1.0 / self.depth)

    def layer_weights(self) -> dict[str, Array]:
        """The weights indexed by layer, each stacked along a leading axis of length L."""
        return {"V": self.V, "W": self.W}

    # forward pieces ----------------------------------------------------------------------
    def embedding_matrices(self) -> tuple[Array, Array]:
        """(A, B): the stored arrays, or [I; 0] and [0, I] when fixed.

        Fixed standard embeddings are not stored as arrays (they are rebuilt from the static
        sizes), so that every array leaf of a default network is a trainable residual weight:
        ensembles of networks then stack, vmap and save like any other model.
        """
        in_dim, out_dim = self.io_dims
        a = embedding(in_dim, self.dim) if self.A is None else self.A
        b = readout(self.dim, out_dim) if self.B is None else self.B
        return a, b

    def root_sizes(self) -> tuple[float, float]:
        """(√m, √q), the divisors of the normalised network, or (1, 1) without normalisation."""
        if self.normalise:
            return np.sqrt(self.width), np.sqrt(self.dim)
        return 1.0, 1.0

    def sigma(self):
        """The activation function σ."""
        return ACTIVATIONS[self.activation]
