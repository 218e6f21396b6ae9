"""Deep residual networks with a 1/L residual scaling, the model of Marion, Wu, Sander and Biau,
"Implicit regularization of deep residual networks towards neural ODEs" (ICLR 2024):

    h_0 = A x,   h_{k+1} = h_k + 1/(L√m) · V_{k+1} σ(W_{k+1} h_k / √q),   f(x) = B h_L,

k = 0..L−1, with A = [I_d; 0] ∈ R^{q×d} and B = [0, I_{d'}] ∈ R^{d'×q} (fixed by default),
V_k ∈ R^{q×m}, W_k ∈ R^{m×q}. With `normalise=False` the 1/√m and 1/√q factors are dropped,
h_{k+1} = h_k + (1/L) V_{k+1} σ(W_{k+1} h_k), the forward pass of the paper's official code. The
layers are stored stacked, V of shape (L, q, m) and W of shape (L, m, q), and the forward pass is
one `jax.lax.scan` over them.

The network is the explicit Euler scheme, step 1/L, of the neural ODE
h'(s) = (1/√m) V(s) σ(W(s) h(s)/√q) whose weights are constant on [k/L, (k+1)/L) (see
`NeuralODE` and `ResNet.ode_limit`).

Masses: layer k carries mass 1/L, A and B mass 1 (see `AbstractResidualNetwork`). So the
`conditional_wasserstein` geometry gives the paper's flow Z_k' = −L ∂F/∂Z_k, while `euclidean`
gives Z_k' = −∂F/∂Z_k; the two differ only by the time of the residual weights being multiplied
by L.

**Weight layouts.** `ResNet.from_weights(V, W, layout=...)` and `ResNet.stacked_weights(layout)`
read and write the weights of other code (see `LAYOUTS`):

- `"gradflow"`: V (L, q, m), W (L, m, q), acting on column vectors as in the equation above.
- `"official"`: the paper's official PyTorch code (its scripts `finite_training_time_*.py` and
  `infinite_training_time.py`, of which a copy is kept at `shared/reference/marion-official/`):
  `V = torch.zeros(N, M, d)`, `W = torch.randn(d, M).repeat(N, 1, 1)` of shapes (L, m, q) and
  (L, q, m), acting on row vectors: `x = x + sigma(x.mm(W[k])).mm(V[k]) / N` with
  `sigma = nn.GELU()` (exact), no 1/√m or 1/√q and no embedding (d = q = d'). Hence
  V[k, i, j] = V_official[k, j, i] and W[k, j, i] = W_official[k, i, j] (k the layer, i a state
  coordinate, j a hidden unit), with `normalise=False`. Its loss `((pred − Y)**2).mean()` is
  gradflow's `loss="mse"`, and its SGD step `lr = N · η` on all V_k, W_k is the explicit Euler
  step η of the conditional-Wasserstein flow of that loss.
"""

from __future__ import annotations

from typing import final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._activations import ACTIVATIONS as ACTIVATIONS  # the names experiments import from here
from .._custom_types import Array, Float, Inputs, Outputs
from .._errors import ConfigError
from .._validation import check, check_choice, positive_int
from ._inits import INITS as INITS
from ._inits import residual_init
from ._residual import AbstractResidualNetwork, embedding, readout

LAYOUTS = ("gradflow", "official")
# The normalisation each layout's code uses (`from_weights(normalise=None)` takes it).
_LAYOUT_NORMALISE = {"gradflow": True, "official": False}


def _to_gradflow(V, W, layout: str) -> tuple[Array, Array]:
    """(V, W) of `layout` as gradflow's (L, q, m), (L, m, q) (see the module docstring)."""
    V = jnp.asarray(V, dtype=float)
    W = jnp.asarray(W, dtype=float)
    if V.ndim != 3 or W.ndim != 3:
        expected = (
            "V (L, q, m), W (L, m, q)" if layout == "gradflow" else "V (L, m, q), W (L, q, m)"
        )
        raise ConfigError("weights", (V.shape, W.shape), f"3-d arrays {expected} ({layout} layout)")
    if layout == "official":  # row-vector convention: every layer transposed
        return jnp.swapaxes(V, -1, -2), jnp.swapaxes(W, -1, -2)
    return V, W


@final
class ResNet(AbstractResidualNetwork):
    """The residual network h_{k+1} = h_k + 1/(L√m) V_{k+1} σ(W_{k+1} h_k/√q), f(x) = B h_L.

    **Arguments:**

    - `in_dim` (d), `dim` (q ≥ d, d'), `width` (m), `depth` (L), `out_dim` (d'): sizes.
    - `key`: a `jax.random` key for the residual weights.
    - `activation`: 'gelu' (default, exact erf form), 'tanh', 'relu' (breaks the theory's C²
      assumption), 'identity', 'sigmoid' or 'softplus' (`gradflow._activations`).
    - `init`: 'tied' (default, the paper's), 'smooth' or 'iid'; see `residual_init`.
    - `length_scale`: ℓ of the smooth init's squared-exponential kernel in s ∈ [0, 1].
    - `train_embedding`: also train A and B (mass 1); by default they are fixed.
    - `frozen`: residual leaves kept fixed, e.g. ('V',) for the scalar ReLU counter-example.
    - `init_scale`: the standard deviation s of the initial weights' Gaussian entries
      (default 1, the paper's).
    - `normalise`: keep the 1/√m and 1/√q factors (default True); False gives
      h_{k+1} = h_k + (1/L) V_{k+1} σ(W_{k+1} h_k), the convention of the official code.

    `ResNet.from_weights(V, W, ...)` builds one from given stacked weights, in gradflow's layout
    or the official code's.
    """

    def __init__(
        self,
        in_dim: int,
        dim: int,
        width: int,
        depth: int,
        out_dim: int,
        key=None,
        activation: str = "gelu",
        init: str = "tied",
        length_scale: float = 0.2,
        train_embedding: bool = False,
        frozen=(),
        *,
        init_scale: float = 1.0,
        normalise: bool = True,
        weights=None,
    ):
        # Arguments that only size the arrays are checked here; every stored invariant is
        # checked by `__check_init__` (also for networks rebuilt from files).
        in_dim, dim, width, depth, out_dim = (
            positive_int(name, value)
            for name, value in zip(
                ("in_dim", "dim", "width", "depth", "out_dim"),
                (in_dim, dim, width, depth, out_dim),
                strict=True,
            )
        )
        self.io_dims = (in_dim, out_dim)
        self.activation = activation
        self.train_embedding = bool(train_embedding)
        self.frozen = tuple(frozen) if isinstance(frozen, tuple | list) else frozen
        self.normalise = normalise
        # Fixed standard embeddings are rebuilt from io_dims (see `embedding_matrices`).
        self.A = embedding(in_dim, dim) if self.train_embedding else None
        self.B = readout(dim, out_dim) if self.train_embedding else None
        if weights is not None:
            self.V, self.W = weights
            return
        check_choice("init", init, INITS)
        check(key is not None, "key", key, "a jax.random key")
        self.V, self.W = residual_init(key, init, depth, dim, width, length_scale, init_scale)

    @classmethod
    def from_weights(
        cls,
        V,
        W,
        in_dim=None,
        out_dim=None,
        activation="gelu",
        train_embedding=False,
        frozen=(),
        A=None,
        B=None,
        *,
        layout: str = "gradflow",
        normalise: bool | None = None,
    ) -> ResNet:
        """The network with stacked residual weights V, W in the given layout.

        **Arguments:**

        - `V`, `W`: the weights of the L layers; `layout="gradflow"` (default): V (L, q, m),
          W (L, m, q); `layout="official"`: V (L, m, q), W (L, q, m) of the official PyTorch
          code of Marion et al., converted by V[k] = V_official[k]ᵀ, W[k] = W_official[k]ᵀ (see
          the module docstring).
        - `in_dim`, `out_dim`: d and d' of the fixed A = [I; 0] and B = [0, I] (default q).
        - `A` (q, d), `B` (d', q): given embedding and readout, stored (and trained if
          `train_embedding`).
        - `activation`, `train_embedding`, `frozen`: as for `ResNet`.
        - `normalise`: as for `ResNet`; default (None) the layout's own convention, True for
          'gradflow' and False for 'official' (whose forward pass has no 1/√m, 1/√q).
        """
        check_choice("layout", layout, LAYOUTS)
        V, W = _to_gradflow(V, W, layout)
        depth, dim, width = V.shape
        normalise = _LAYOUT_NORMALISE[layout] if normalise is None else normalise
        model = cls(
            dim if in_dim is None else in_dim,
            dim,
            width,
            depth,
            dim if out_dim is None else out_dim,
            activation=activation,
            train_embedding=train_embedding,
            frozen=frozen,
            normalise=normalise,
            weights=(V, W),
        )
        if A is None and B is None:
            return model
        a, b = model.embedding_matrices()
        a = a if A is None else jnp.asarray(A, dtype=float)
        b = b if B is None else jnp.asarray(B, dtype=float)
        model = eqx.tree_at(lambda m: (m.A, m.B), model, (a, b), is_leaf=lambda x: x is None)
        model.__check_init__()  # tree_at bypasses it: check the given A, B
        return model

    def stacked_weights(self, layout: str = "gradflow") -> tuple[Array, Array]:
        """(V, W) in `layout`: gradflow's (L, q, m), (L, m, q), or the official code's (L, m, q),
        (L, q, m) (the inverse of `from_weights`; see the module docstring)."""
        check_choice("layout", layout, LAYOUTS)
        if layout == "official":
            return jnp.swapaxes(self.V, -1, -2), jnp.swapaxes(self.W, -1, -2)
        return self.V, self.W

    # forward -----------------------------------------------------------------------------
    def hidden_states(self, x: Inputs) -> Float[Array, "L+1 n q"]:
        """h_0, ..., h_L for the batch x."""
        h0 = x @ self.embedding_matrices()[0].T
        _, hs = jax.lax.scan(self._step(), h0, (self.V, self.W))
        return jnp.concatenate([h0[None], hs])

    def _step(self):
        """(h_k, (V_{k+1}, W_{k+1})) → (h_{k+1}, h_{k+1}), for `jax.lax.scan` over the layers.

        Rematerialised (`jax.checkpoint`): the backward pass recomputes each layer's activations
        from its input instead of storing them; for these small, memory-bound layers that is
        about twice as fast. The step closes over numbers only, never over the stacked weights.
        """
        sigma = self.sigma()
        root_m, root_q = self.root_sizes()
        scale = 1.0 / (self.depth * root_m)

        @jax.checkpoint
        def step(h, vw):
            v, w = vw
            h = h + scale * sigma(h @ w.T / root_q) @ v.T
            return h, h

        return step

    def __call__(self, x: Inputs) -> Outputs:
        a, b = self.embedding_matrices()
        step = self._step()
        h, _ = jax.lax.scan(lambda h, vw: (step(h, vw)[0], None), x @ a.T, (self.V, self.W))
        return h @ b.T

    def ode_limit(self, interpolation: str = "linear", rtol: float = 1e-10, atol: float = 1e-10):
        """The `NeuralODE` whose weights interpolate this network's layers (see `NeuralODE`);
        it has the same normalisation."""
        from .neural_ode import NeuralODE

        return NeuralODE(
            self.V,
            self.W,
            self.A,
            self.B,
            io_dims=self.io_dims,
            activation=self.activation,
            interpolation=interpolation,
            rtol=rtol,
            atol=atol,
            train_embedding=self.train_embedding,
            frozen=self.frozen,
            normalise=self.normalise,
        )


def relu_counter_example(half_depth: int, activation: str = "relu") -> ResNet:
    """The network of the ReLU counter-example of Marion et al. (docs/resnets.md): depth 2L
    (L = `half_depth`), d = q = m = 1, V_k = 1 frozen and w_k(0) = (−1)^k/(2L), k = 1..2L, so
    that h_{k+1} = h_k + (1/(2L)) σ(w_{k+1} h_k). With ReLU and a positive input the odd layers are
    dead; the even ones converge to `gf.analytic.relu_fixed_point(L, C)` when fitted to y = Cx."""
    half_depth = positive_int("half_depth", half_depth)
    k = np.arange(1, 2 * half_depth + 1)
    w = ((-1.0) ** k / (2 * half_depth)).reshape(-1, 1, 1)
    return ResNet.from_weights(np.ones_like(w), w, activation=activation, frozen=("V",))
