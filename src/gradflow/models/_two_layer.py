"""The two-layer mean-field network (Mei, Montanari & Nguyen, PNAS 2018; Chizat & Bach, NeurIPS
2018): f(x) = ∫ u σ(γ wᵀx + b) dμ(θ) ≈ (1/M) Σ_j u_j σ(γ w_jᵀx + b_j), θ = (u, w, b) with
u ∈ R^{d_out}, w ∈ R^{d_in}, particles of mass 1/M; `geometry="wasserstein"` gives
θ_j' = −M ∂F/∂θ_j = −∇_θ (δF/δμ)(θ_j).
"""

from __future__ import annotations

from typing import final

import jax
import numpy as np

from .._arguments import takes
from .._custom_types import Inputs, Outputs
from .._validation import check, positive_int
from ._base import axis_size, masses_like
from ._particles import AbstractNeuronMeasure, NeuronArguments, check_particle_shapes


@final
class TwoLayerMeanField(AbstractNeuronMeasure):
    """A two-layer mean-field network f(x) = (1/M) Σ_j u_j σ(γ w_jᵀx + b_j), particles of mass 1/M.

    **Arguments:**

    - `in_dim`, `out_dim`: d_in, d_out. `particles`: M ≥ 1. `key`: a `jax.random` key.
    - `activation`: as for `MeanFieldResNet`. `init_scale`: s in u ~ N(0, s² I),
      w ~ N(0, s² I/d_in), b ~ N(0, s²). `positions`: given particles (u (M, d_out), w (M, d_in),
      b (M,)) or a sampler `positions(key, (M,), (d_in, d_out)) -> (u, w, b)`.
    - `bias`, `input_scale`: as for `MeanFieldResNet`.

    Not layered: use `geometry="wasserstein"` (θ_j' = −M ∂F/∂θ_j = −∇_θ δF/δμ(θ_j)).
    """

    # Also takes key, activation, init_scale, positions, bias, input_scale: `NeuronArguments`.
    @takes(NeuronArguments, into="neurons")
    def __init__(self, in_dim: int, particles: int, out_dim: int, *, neurons: NeuronArguments):
        in_dim = positive_int("in_dim", in_dim)
        out_dim = positive_int("out_dim", out_dim)
        particles = positive_int("particles", particles)

        def draw(key, s):
            ku, kw, kb = jax.random.split(key, 3)
            u = s * jax.random.normal(ku, (particles, out_dim))
            w = s / np.sqrt(in_dim) * jax.random.normal(kw, (particles, in_dim))
            return u, w, s * jax.random.normal(kb, (particles,))

        lead, dims = (particles,), (in_dim, out_dim)
        self._init_neurons(neurons, lead, du=out_dim, dw=in_dim, sampler_dims=dims, draw=draw)

    def _check_shapes(self) -> None:
        check(self.u.ndim >= 2, "positions.u", self.u.shape, "an array of shape (M, d_out)")
        check(self.w.ndim >= 2, "positions.w", self.w.shape, "an array of shape (M, d_in)")
        check_particle_shapes(self.u, self.w, self.b, (self.particles,), self.out_dim, self.in_dim)

    in_dim = axis_size("w", -1, "d_in, the length of each w_j.")
    out_dim = axis_size("u", -1, "d_out, the length of each u_j.")

    def masses(self):
        return masses_like(self, 1.0 / self.particles)

    def __call__(self, x: Inputs) -> Outputs:
        a = self.sigma()(self.input_scale * (x @ self.w.T) + self.b)
        return a @ self.u / self.particles
