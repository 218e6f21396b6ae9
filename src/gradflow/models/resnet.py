"""Deep residual networks with a 1/L residual scaling, the model of Marion, Wu, Sander and Biau,
"Implicit regularization of deep residual networks towards neural ODEs" (ICLR 2024).

    h_0 = A x,   h_{k+1} = h_k + 1/(L√m) · V_{k+1} σ(W_{k+1} h_k / √q),   f(x) = B h_L,

k = 0..L−1, with A = [I_d; 0] ∈ R^{q×d} and B = [0, I_{d'}] ∈ R^{d'×q} (fixed by default),
V_k ∈ R^{q×m}, W_k ∈ R^{m×q}. The layers are stored stacked, V of shape (L, q, m) and W of shape
(L, m, q), and the forward pass is one `jax.lax.scan` over them.

The network is the explicit Euler scheme, step 1/L, of the neural ODE
h'(s) = (1/√m) V(s) σ(W(s) h(s)/√q) whose weights are constant on [k/L, (k+1)/L) (see
`NeuralODE` and `ResNet.ode_limit`).

Masses: layer k carries mass 1/L (one particle per layer of a measure over (s, Z) with uniform
layer marginal), A and B mass 1. So the `conditional_wasserstein` geometry gives the paper's flow
Z_k' = −L ∂F/∂Z_k, A' = −∂F/∂A, B' = −∂F/∂B, while `euclidean` gives Z_k' = −∂F/∂Z_k; the two
differ only by the time of the residual weights being multiplied by L.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from .._custom_types import Array, Float, Inputs, Outputs
from .._errors import ConfigError
from .._validation import check, check_choice
from ._base import AbstractLayeredModel, masses_like

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "gelu": lambda z: jax.nn.gelu(z, approximate=False),
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "identity": lambda z: z,
}
INITS = ("tied", "smooth", "iid")
RESIDUAL_LEAVES = ("V", "W")


def embedding(in_dim: int, dim: int) -> Float[Array, "q d"]:
    """A = [I_d; 0] ∈ R^{q×d}: the input occupies the first d coordinates of the state."""
    return jnp.eye(dim, in_dim)


def readout(dim: int, out_dim: int) -> Float[Array, "dp q"]:
    """B = [0, I_{d'}] ∈ R^{d'×q}: the output is the last d' coordinates of the state."""
    return jnp.eye(out_dim, dim, k=dim - out_dim)


def _positive_int(name, value):
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 1
    check(ok, name, value, "a positive integer")
    return int(value)


def check_dims(in_dim, dim, width, depth, out_dim) -> tuple[int, int, int, int, int]:
    """Validate the sizes of a residual network (q ≥ d and q ≥ d' for A = [I; 0], B = [0, I])."""
    in_dim = _positive_int("in_dim", in_dim)
    dim = _positive_int("dim", dim)
    width = _positive_int("width", width)
    depth = _positive_int("depth", depth)
    out_dim = _positive_int("out_dim", out_dim)
    check(dim >= in_dim, "dim", dim, f"dim ≥ in_dim = {in_dim} (A = [I; 0] embeds the input)")
    check(dim >= out_dim, "dim", dim, f"dim ≥ out_dim = {out_dim} (B = [0, I] reads the output)")
    return in_dim, dim, width, depth, out_dim


def check_frozen(frozen) -> tuple[str, ...]:
    frozen = tuple(frozen)
    check(
        all(f in RESIDUAL_LEAVES for f in frozen),
        "frozen",
        frozen,
        "a subset of ('V', 'W'): residual weights kept fixed",
    )
    return frozen


def residual_trainable(model) -> object:
    """Filter spec shared by `ResNet` and `NeuralODE`: V, W unless frozen; A, B if trained."""
    spec = jtu.tree_map(lambda _: False, model)
    spec = eqx.tree_at(
        lambda m: (m.V, m.W), spec, ("V" not in model.frozen, "W" not in model.frozen)
    )
    for name in ("A", "B"):
        if getattr(model, name) is not None:
            spec = eqx.tree_at(lambda m, name=name: getattr(m, name), spec, model.train_embedding)
    return spec


def embedding_matrices(model) -> tuple[Array, Array]:
    """(A, B) of `ResNet` or `NeuralODE`: the stored arrays, or [I; 0] and [0, I] when fixed.

    Fixed standard embeddings are not stored as arrays (they are rebuilt from the static sizes),
    so that every array leaf of a default network is a trainable residual weight: ensembles of
    networks then stack, vmap and save like any other model.
    """
    in_dim, out_dim = model.io_dims
    dim = model.V.shape[-2]
    a = embedding(in_dim, dim) if model.A is None else model.A
    b = readout(dim, out_dim) if model.B is None else model.B
    return a, b


def residual_masses(model):
    """1/L for each layer of V and W (conditional-Wasserstein), 1 for A and B."""
    depth = model.V.shape[0]
    return masses_like(model, 1.0, V=1.0 / depth, W=1.0 / depth)


# ---------------------------------------------------------------------------------------------
# initialisations


def smooth_gp(key, shape, s, length_scale: float) -> Float[Array, "S ..."]:
    """Independent Gaussian processes on [0, 1], evaluated at the points `s`.

    Every entry of the returned (len(s), *shape) array is a centred GP with unit variance whose
    covariance is the squared-exponential kernel exp(−(s − s')²/(2ℓ²)) up to ~e^{−50}: the process
    is the spectral quadrature Σ_j √p_j (a_j cos(ω_j s) + b_j sin(ω_j s)) with a_j, b_j ~ N(0, 1)
    and ω_j = jδ, p_j = (2 − [j = 0]) δ ĝ(ω_j), ĝ(ω) = ℓ/√(2π) e^{−ω²ℓ²/2} the kernel's spectral
    density. By Poisson summation its covariance is the SE kernel periodised with period
    P = 2π/δ = 2 + 10ℓ, which differs from the SE kernel on |s − s'| ≤ 1 by ≤ e^{−(1+10ℓ)²/(2ℓ²)};
    frequencies are kept up to 10/ℓ. The draw depends on `key` and `length_scale` only, not on
    the points, so networks of different depths built from one key discretise *the same*
    continuous function of depth.
    """
    period = 2.0 + 10.0 * length_scale
    delta = 2 * np.pi / period
    n_freq = int(np.ceil(10.0 / (length_scale * delta))) + 1
    omega = delta * np.arange(n_freq)
    density = length_scale / np.sqrt(2 * np.pi) * np.exp(-0.5 * (omega * length_scale) ** 2)
    weights = np.where(omega == 0, 1.0, 2.0) * delta * density
    ka, kb = jax.random.split(key)
    a = jax.random.normal(ka, (n_freq, *shape))
    b = jax.random.normal(kb, (n_freq, *shape))
    s = jnp.asarray(s, dtype=float)[:, None]
    root = jnp.sqrt(jnp.asarray(weights))
    cos, sin = root * jnp.cos(s * omega), root * jnp.sin(s * omega)
    return jnp.tensordot(cos, a, axes=1) + jnp.tensordot(sin, b, axes=1)


def residual_init(key, init: str, depth: int, dim: int, width: int, length_scale: float):
    """(V, W) of shapes (L, q, m) and (L, m, q) for the initialisation `init`.

    - `tied` (the paper's): V_k = 0, W_k = W for all k with W ~ N(0, 1) entries: the network
      starts as the trivial neural ODE h' = 0.
    - `smooth`: V_k = V_0(k/L), W_k = W_0(k/L), every entry a unit-variance Gaussian process in
      s with squared-exponential kernel of length scale ℓ (`smooth_gp`).
    - `iid`: V_k, W_k independent N(0, 1) entries for each layer (no continuous limit).
    """
    check_choice("init", init, INITS)
    kv, kw = jax.random.split(key)
    if init == "tied":
        w = jax.random.normal(kw, (width, dim))
        return jnp.zeros((depth, dim, width)), jnp.broadcast_to(w, (depth, width, dim))
    if init == "iid":
        return (
            jax.random.normal(kv, (depth, dim, width)),
            jax.random.normal(kw, (depth, width, dim)),
        )
    check(
        np.isfinite(length_scale) and length_scale > 0,
        "length_scale",
        length_scale,
        "a positive number (the GP length scale in depth s ∈ [0, 1])",
    )
    s = np.arange(1, depth + 1) / depth
    return (
        smooth_gp(kv, (dim, width), s, length_scale),
        smooth_gp(kw, (width, dim), s, length_scale),
    )


# ---------------------------------------------------------------------------------------------
# the model


class ResNet(AbstractLayeredModel):
    """The residual network h_{k+1} = h_k + 1/(L√m) V_{k+1} σ(W_{k+1} h_k/√q), f(x) = B h_L.

    **Arguments:**

    - `in_dim` (d), `dim` (q ≥ d, d'), `width` (m), `depth` (L), `out_dim` (d'): sizes.
    - `key`: a `jax.random` key for the residual weights.
    - `activation`: 'gelu' (default, exact erf form), 'tanh', 'relu' (breaks the theory's C²
      assumption) or 'identity'.
    - `init`: 'tied' (default, the paper's), 'smooth' or 'iid'; see `residual_init`.
    - `length_scale`: ℓ of the smooth init's squared-exponential kernel in s ∈ [0, 1].
    - `train_embedding`: also train A and B (mass 1); by default they are fixed.
    - `frozen`: residual leaves kept fixed, e.g. ('V',) for the scalar ReLU counter-example.

    `ResNet.from_weights(V, W, ...)` builds one from given stacked weights.
    """

    V: Float[Array, "L q m"]
    W: Float[Array, "L m q"]
    A: Float[Array, "q d"] | None
    B: Float[Array, "dp q"] | None
    io_dims: tuple[int, int] = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    train_embedding: bool = eqx.field(static=True)
    frozen: tuple[str, ...] = eqx.field(static=True)

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
        weights=None,
    ):
        in_dim, dim, width, depth, out_dim = check_dims(in_dim, dim, width, depth, out_dim)
        check_choice("activation", activation, ACTIVATIONS)
        check_choice("init", init, INITS)
        self.activation = activation
        self.train_embedding = bool(train_embedding)
        self.frozen = check_frozen(frozen)
        self.io_dims = (in_dim, out_dim)
        # Fixed standard embeddings are rebuilt from io_dims (see `embedding_matrices`).
        self.A = embedding(in_dim, dim) if self.train_embedding else None
        self.B = readout(dim, out_dim) if self.train_embedding else None
        if weights is not None:
            self.V, self.W = weights
            return
        check(key is not None, "key", key, "a jax.random key")
        self.V, self.W = residual_init(key, init, depth, dim, width, length_scale)

    def __check_init__(self):
        check_stacked(self.V, self.W, *embedding_matrices(self))

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
    ) -> ResNet:
        """The network with stacked residual weights V (L, q, m), W (L, m, q).

        A, B default to [I; 0] and [0, I] of sizes `in_dim`, `out_dim` (default q); given ones
        are stored (and trained if `train_embedding`).
        """
        V = jnp.asarray(V, dtype=float)
        W = jnp.asarray(W, dtype=float)
        if V.ndim != 3 or W.ndim != 3:
            raise ConfigError("weights", (V.shape, W.shape), "V of shape (L, q, m), W (L, m, q)")
        depth, dim, width = V.shape
        in_dim = dim if in_dim is None else in_dim
        out_dim = dim if out_dim is None else out_dim
        model = cls(
            in_dim,
            dim,
            width,
            depth,
            out_dim,
            activation=activation,
            train_embedding=train_embedding,
            frozen=frozen,
            weights=(V, W),
        )
        a, b = embedding_matrices(model)
        a = a if A is None else jnp.asarray(A, dtype=float)
        b = b if B is None else jnp.asarray(B, dtype=float)
        if A is not None or B is not None or train_embedding:
            model = eqx.tree_at(lambda m: (m.A, m.B), model, (a, b), is_leaf=lambda x: x is None)
        check_stacked(model.V, model.W, a, b)
        return model

    # sizes -------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return self.V.shape[-3]

    @property
    def dim(self) -> int:
        return self.V.shape[-2]

    @property
    def width(self) -> int:
        return self.V.shape[-1]

    @property
    def in_dim(self) -> int:
        return self.io_dims[0]

    @property
    def out_dim(self) -> int:
        return self.io_dims[1]

    # the gradient flow's ingredients --------------------------------------------------------
    def trainable(self):
        return residual_trainable(self)

    def masses(self):
        return residual_masses(self)

    def layer_weights(self) -> dict[str, Array]:
        """The weights indexed by layer, each stacked along a leading axis of length L."""
        return {"V": self.V, "W": self.W}

    # forward -----------------------------------------------------------------------------
    def hidden_states(self, x: Inputs) -> Float[Array, "L+1 n q"]:
        """h_0, ..., h_L for the batch x."""
        h0 = x @ embedding_matrices(self)[0].T
        _, hs = jax.lax.scan(self._step(), h0, (self.V, self.W))
        return jnp.concatenate([h0[None], hs])

    def _step(self):
        """(h_k, (V_{k+1}, W_{k+1})) → (h_{k+1}, h_{k+1}), for `jax.lax.scan` over the layers.

        Rematerialised (`jax.checkpoint`): the backward pass recomputes each layer's activations
        from its input instead of storing them; for these small, memory-bound layers that is
        about twice as fast. The step closes over numbers only, never over the stacked weights.
        """
        sigma = ACTIVATIONS[self.activation]
        scale = 1.0 / (self.depth * np.sqrt(self.width))
        root_q = np.sqrt(self.dim)

        @jax.checkpoint
        def step(h, vw):
            v, w = vw
            h = h + scale * sigma(h @ w.T / root_q) @ v.T
            return h, h

        return step

    def __call__(self, x: Inputs) -> Outputs:
        a, b = embedding_matrices(self)
        step = self._step()
        h, _ = jax.lax.scan(lambda h, vw: (step(h, vw)[0], None), x @ a.T, (self.V, self.W))
        return h @ b.T

    def ode_limit(self, interpolation: str = "linear", rtol: float = 1e-10, atol: float = 1e-10):
        """The `NeuralODE` whose weights interpolate this network's layers (see `NeuralODE`)."""
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
        )


def check_stacked(V, W, A, B) -> None:
    """Shapes V (L, q, m), W (L, m, q), A (q, d), B (d', q) agree (skips batched leaves)."""
    if V.ndim != 3 or W.ndim != 3 or A.ndim != 2 or B.ndim != 2:
        return  # stacked along time or ensemble members: checked at construction
    depth, dim, width = V.shape
    if W.shape != (depth, width, dim) or A.shape[0] != dim or B.shape[1] != dim:
        raise ConfigError(
            "weights",
            {"V": V.shape, "W": W.shape, "A": A.shape, "B": B.shape},
            "V (L, q, m), W (L, m, q), A (q, d), B (d', q) with matching L, q, m",
        )
    if depth < 1 or width < 1:
        raise ConfigError("weights", V.shape, "depth ≥ 1 and width ≥ 1")
