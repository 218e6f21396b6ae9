"""Mean-field networks: the parameters are a probability measure, discretised by particles.

**Deep (mean-field ResNet).** The state x(s) ∈ R^q, s ∈ [0, 1], obeys

    x'(s) = ∫_Θ f(x(s), θ) dμ_s(θ),    f(x, θ) = u σ(γ wᵀx + b),   θ = (u, w, b) ∈ R^q × R^q × R,

where μ is a probability measure on [0, 1] × Θ with uniform first marginal and μ_s its
conditional at depth s (docs/mean-field.md). gradflow discretises μ by L layers at
s_k = (k − ½)/L, k = 1..L, each holding M particles θ_{k,1..M} of mass 1/(L·M):

    x_{k+1} = x_k + (1/L) (1/M) Σ_j f(x_k, θ_{k,j}),    k = 0..L−1,

which is a ResNet of depth L and width M (see `MeanFieldResNet.to_resnet`). The embedding is the
fixed x_0 = A x_in with A = [I; 0] ∈ R^{q × d_in} and the readout the fixed f(x_in) = B x_L with
B = [0, I] ∈ R^{d_out × q} (the last d_out coordinates), the convention of Marion et al. (ICLR
2024) used by `gf.models.ResNet`; neither is trained. Choosing q ≥ d_in + d_out makes the
readout coordinates start at zero, so that the output at initialisation is the residual part
only.

The model declares masses 1/(L·M) and `layered = True`, so

- `geometry="conditional_wasserstein"` gives
  θ_{k,j}' = −L·M ∂F/∂θ_{k,j} = −∇_θ (δF/δμ)(s_k, θ_{k,j})
  with the layer coordinate s_k frozen: each conditional μ_{s_k} follows its own Wasserstein flow
  and the s-marginal stays uniform;
- `l2=λ` adds λ Σ_{k,j} (1/(LM)) |θ_{k,j}|² = λ ∫∫ |θ|² dμ_s(θ) ds (docs/mean-field.md; the paper's
  λ/2 is our λ).

The shallow two-layer mean-field network is `TwoLayerMeanField` (`_two_layer.py`); both share
`AbstractNeuronMeasure` (`_particles.py`: particles, trainability, `replicate`, `deduplicate`).

Particles are stored stacked — u and w as (L, M, q), b as (L, M) — and the forward pass is a
`lax.scan` over layers with a vectorised sum over particles.

??? cite
    Ding, Chen, Li, Wright, "Overparameterization of deep ResNet: zero loss and mean-field
    analysis", JMLR 2022; Isobe, "Convergence of continuous DNNs under Wasserstein gradient flow
    with L2 regularisation" (Łojasiewicz–Simon); Marion, Wu, Sander, Biau, "Implicit
    regularization of deep residual networks towards neural ODEs", ICLR 2024.
"""

from __future__ import annotations

import os
from typing import final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._arguments import takes
from .._custom_types import Array, Float, Inputs, Outputs
from .._errors import ConfigError
from .._result import alias
from .._validation import check, integer, positive_int
from ._base import AbstractLayeredModel, axis_size, masses_like
from ._particles import (
    AbstractNeuronMeasure,
    NeuronArguments,
    check_particle_shapes,
    gaussian_positions,
)
from ._two_layer import TwoLayerMeanField as TwoLayerMeanField
from .resnet import ResNet

# Particles per block in a layer's sum over particles (see `MeanFieldResNet._step`), chosen per
# backend because the best block is a property of the memory hierarchy:
# - CPU: 1024. A block's activations, n × 1024 floats, stay in cache; the gradient at L·M = 1e5
#   ran at 43% of its matmul floor with blocks of 1024 against 12% without
#   (benchmarks/mean_field.py, 2 cores).
# - GPU: no blocking (0). On an H200 (float64, q = 16, L = 10, n = 256) a scan over small blocks
#   serialises thousands of small kernels: at L·M = 1e6 the gradient took 50.6 ms with blocks of
#   1024, 19.8 ms with 8192, 12.9 ms with 65536 and 11.1 ms unblocked; at 1e5 5.9, 2.8, 1.74 and
#   1.82 ms (benchmarks/accelerator.py).
# Override per model with `MeanFieldResNet(..., particle_block=...)` (0: no blocking), or for the
# process with the environment variable GRADFLOW_PARTICLE_BLOCK.
PARTICLE_BLOCKS = {"cpu": 1024}


def particle_block(backend: str | None = None) -> int:
    """The particles per block of the layer sum on `backend` (default: JAX's default backend);
    0 means no blocking."""
    override = os.environ.get("GRADFLOW_PARTICLE_BLOCK")
    if override is not None:
        return max(int(override), 0)
    return PARTICLE_BLOCKS.get(backend or jax.default_backend(), 0)


@final
class MeanFieldResNet(AbstractLayeredModel, AbstractNeuronMeasure):
    """A deep mean-field ResNet: L layers of M neuron particles θ = (u, w, b), mass 1/(L·M) each.

    **Arguments:**

    - `in_dim`, `out_dim`: input and output dimensions d_in, d_out.
    - `dim`: the state dimension q (q ≥ max(d_in, d_out); q ≥ d_in + d_out keeps the input and
      readout coordinates apart).
    - `layers`: L ≥ 1. `particles`: M ≥ 1 per layer.
    - `key`: a `jax.random` key for the initial measure (not needed when `positions` is given).
    - `activation`: 'tanh' (default; analytic, as the Łojasiewicz theory needs), 'gelu',
      'sigmoid', 'softplus', 'relu' or 'identity' (`gradflow._activations`).
    - `init_scale`: the spread s of the default initial measure, the Gaussian
      u ~ N(0, s² I_q), w ~ N(0, s² I_q / q), b ~ N(0, s²), i.i.d. across particles and layers.
      The output at initialisation is O(s²/√M), so s sets the initial risk.
    - `positions`: the particles themselves, a dict {'u': (L, M, q), 'w': (L, M, q), 'b': (L, M)}
      or a tuple (u, w[, b]); or a callable `positions(key, (L, M), q) -> (u, w, b)` sampling
      another initial measure.
    - `bias`: whether b is trained (default True). With `bias=False`, b is a fixed array (zeros
      unless given) and θ = (u, w).
    - `input_scale`: γ in f(x, θ) = u σ(γ wᵀx + b) (default 1). `from_resnet` sets
      γ = 1/√(M q), the value for which the particle flow is the ResNet's flow (see there).
    - `particle_block`: particles per block of each layer's sum (0: no blocking); default the
      backend's (`particle_block()`: 1024 on a CPU, none on a GPU). It changes the order of the
      floating-point sum only.

    **Forward map:** x_0 = [x_in; 0],
    x_{k+1} = x_k + (1/(L M)) Σ_j u_{k,j} σ(γ w_{k,j}ᵀ x_k + b_{k,j}),
    output the last d_out coordinates of x_L.
    """

    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)
    particle_block: int | None = eqx.field(static=True, default=None)

    # Also takes key, activation, init_scale, positions, bias, input_scale: `NeuronArguments`.
    @takes(NeuronArguments, into="neurons")
    def __init__(
        self,
        in_dim: int,
        dim: int,
        layers: int,
        particles: int,
        out_dim: int,
        *,
        particle_block: int | None = None,
        neurons: NeuronArguments,
    ):
        in_dim = positive_int("in_dim", in_dim)
        out_dim = positive_int("out_dim", out_dim)
        dim = positive_int("dim", dim)
        layers = positive_int("layers", layers)
        particles = positive_int("particles", particles)
        shape = (layers, particles)
        draw = lambda key, s: gaussian_positions(key, shape, dim, s)
        self._init_neurons(neurons, shape, du=dim, dw=dim, sampler_dims=dim, draw=draw)
        self.in_features = in_dim
        self.out_features = out_dim
        self.particle_block = (
            None if particle_block is None else integer("particle_block", particle_block, minimum=0)
        )

    def _check_shapes(self) -> None:
        in_dim = positive_int("in_features", self.in_features)
        out_dim = positive_int("out_features", self.out_features)
        check(self.u.ndim >= 3, "positions.u", self.u.shape, "an array of shape (L, M, q)")
        layers, particles, dim = self.u.shape[-3:]
        check_particle_shapes(self.u, self.w, self.b, (layers, particles), dim, dim)
        check(
            dim >= max(in_dim, out_dim),
            "dim",
            dim,
            f"an integer ≥ max(in_dim, out_dim) = {max(in_dim, out_dim)}",
        )

    # -- sizes ------------------------------------------------------------------------------
    in_dim = alias("in_features", "d, the inputs' dimension.")
    out_dim = alias("out_features", "d', the outputs' dimension.")

    dim = axis_size("u", -1, "q, the dimension of the state (and of each u, w).")
    layers = axis_size("u", -3, "L, the number of layers.")

    def layer_positions(self) -> np.ndarray:
        """s_k = (k − ½)/L, k = 1..L: the depth of each layer (never moves)."""
        return (np.arange(self.layers) + 0.5) / self.layers

    def layer_weights(self) -> dict[str, Array]:
        """The particles by layer: u, w (L, M, q) and, if trained, b (L, M)."""
        return {"u": self.u, "w": self.w, **({"b": self.b} if self.bias else {})}

    # -- measure -----------------------------------------------------------------------------
    def masses(self):
        return masses_like(self, 1.0 / (self.layers * self.particles))

    # -- forward -----------------------------------------------------------------------------
    def embed(self, x: Inputs) -> Float[Array, "n q"]:
        """x_0 = A x with A = [I; 0]."""
        return jnp.pad(x, ((0, 0), (0, self.dim - self.in_dim)))

    def readout(self, h: Float[Array, "n q"]) -> Outputs:
        """B h with B = [0, I]: the last d_out coordinates."""
        return h[:, self.dim - self.out_dim :]

    def velocity(self, h: Float[Array, "n q"], k) -> Float[Array, "n q"]:
        """(1/M) Σ_j f(h, θ_{k,j}) at layer k."""
        sigma = self.sigma()
        a = sigma(self.input_scale * (h @ self.w[k].T) + self.b[k])
        return a @ self.u[k] / self.particles

    def hidden_states(self, x: Inputs) -> Float[Array, "L+1 n q"]:
        """x_0, ..., x_L for the batch."""
        h0 = self.embed(x)
        step = self._step()
        _, hs = jax.lax.scan(lambda h, th: (step(h, th),) * 2, h0, (self.u, self.w, self.b))
        return jnp.concatenate([h0[None], hs])

    def _step(self):
        """(x_k, θ_k) → x_{k+1} = x_k + (1/(LM)) Σ_j u_j σ(γ w_jᵀx_k + b_j), scanned over layers.

        The layer is memory-bound (its (n × M) activations are as large as its arithmetic), so:
        it is rematerialised (`jax.checkpoint`: the backward pass recomputes the activations
        instead of storing and reading them back), and beyond `particle_block` particles the sum
        over j runs block by block so that each block's activations stay in cache (padding
        particles have u = 0 and contribute nothing). On a CPU each roughly halves the time of a
        gradient at large L·M (benchmarks/mean_field.py); the block is chosen per backend (see
        `PARTICLE_BLOCKS`).
        """
        sigma, gamma = self.sigma(), self.input_scale
        scale = 1.0 / (self.layers * self.particles)
        m = self.particles
        block = particle_block() if self.particle_block is None else self.particle_block
        blocks = -(-m // block) if block > 0 else 1
        size = -(-m // blocks)

        @jax.checkpoint
        def block_sum(h, theta):
            u, w, b = theta
            return sigma(gamma * (h @ w.T) + b) @ u

        def step(h, theta):
            if blocks == 1:
                return h + scale * block_sum(h, theta)
            pad = blocks * size - m
            u, w, b = (jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)) for a in theta)
            chunks = (
                u.reshape(blocks, size, -1),
                w.reshape(blocks, size, -1),
                b.reshape(blocks, size),
            )
            total, _ = jax.lax.scan(
                lambda acc, th: (acc + block_sum(h, th), None), jnp.zeros_like(h), chunks
            )
            return h + scale * total

        return jax.checkpoint(step)

    def __call__(self, x: Inputs) -> Outputs:
        step = self._step()
        h, _ = jax.lax.scan(
            lambda h, th: (step(h, th), None), self.embed(x), (self.u, self.w, self.b)
        )
        return self.readout(h)

    # -- the ResNet it is ---------------------------------------------------------------------
    def to_resnet(self):
        """The `gf.models.ResNet` (depth L, width m = M, q = dim, no bias) with the same forward
        map: V_k = u_kᵀ/√M (q × M), W_k = γ √q w_k (M × q), since

            1/(L√m) V_k σ(W_k h/√q) = 1/(L M) Σ_j u_{k,j} σ(γ w_{k,j}ᵀ h).

        The ResNet has no bias, so the biases must be zero and fixed (`bias=False`, b = 0).

        **Same trajectory:** the ResNet flows by Z_k' = −L ∂F/∂Z_k (mass 1/L per layer), the
        particles by θ_{k,j}' = −L M ∂F/∂θ_{k,j}. Under the map above u' ↔ V' agree for every γ,
        while w' ↔ W' agree iff γ² M q = 1; `from_resnet` builds that model
        (γ = 1/√(M q), u = √M Vᵀ, w = √M W). For other γ the forward maps are equal but the
        flows differ by a constant metric factor γ² M q on w.
        """
        if self.bias or bool(jnp.any(self.b != 0)):
            raise ConfigError(
                "bias",
                "trainable or non-zero biases",
                "bias=False with zero biases (gf.models.ResNet has no bias)",
            )
        m, q = self.particles, self.dim
        v = jnp.swapaxes(self.u, -1, -2) / np.sqrt(m)  # (L, q, M)
        w = self.input_scale * np.sqrt(q) * self.w  # (L, M, q)
        return ResNet.from_weights(
            v, w, in_dim=self.in_dim, out_dim=self.out_dim, activation=self.activation
        )

    @classmethod
    def from_resnet(cls, resnet) -> MeanFieldResNet:
        """The particle system whose conditional-Wasserstein flow *is* the ResNet's flow.

        For a ResNet h_{k+1} = h_k + 1/(L√m) V_k σ(W_k h_k/√q): particles u_{k,j} = √m V_k[:, j],
        w_{k,j} = √m W_k[j, :], b = 0 (fixed), γ = 1/√(m q). Then the forward maps agree and
        θ_{k,j}' = −L m ∂F/∂θ_{k,j} is exactly V_k' = −L ∂F/∂V_k, W_k' = −L ∂F/∂W_k.

        Only for a normalised ResNet: without the 1/√m factor, u = m V would be needed for the
        forward map, and then the flows differ by the factor m on V.
        """
        check(
            resnet.normalise,
            "resnet",
            "a ResNet with normalise=False",
            "a ResNet with normalise=True (its flow is a particle flow only with 1/√m, 1/√q)",
        )
        v, w = resnet.V, resnet.W
        layers, q, m = v.shape
        u = np.sqrt(m) * jnp.swapaxes(v, -1, -2)
        wp = np.sqrt(m) * w
        return cls(
            resnet.in_dim,
            q,
            layers,
            m,
            resnet.out_dim,
            activation=resnet.activation,
            positions=(u, wp, jnp.zeros((layers, m))),
            bias=False,
            input_scale=1.0 / np.sqrt(m * q),
        )
