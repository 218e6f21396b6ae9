"""Stationarity of a particle measure, particle by particle (docs/mean-field.md).

For a measure μ = Σ_j m_j δ_{θ_j} of neurons (`AbstractNeuronMeasure`: a two-layer mean-field
network, or a mean-field ResNet whose layer k holds particles of mass 1/(L·M)), the first
variation δF/δμ is a function on parameter space, and its gradient at a particle is the particle's
gradient divided by its mass:

    ∇_θ (δF/δμ)(θ_j) = (1/m_j) ∂F/∂θ_j.

The Wasserstein flow moves each particle with velocity −∇_θ (δF/δμ)(θ_j), and μ is a critical
point of F exactly when this vanishes at every particle. Being a function of the measure, it does
not change when every particle is repeated (`replicate`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import ConfigError
from .._problem import GradientFlowProblem
from ..models import AbstractNeuronMeasure

__all__ = ["particle_gradients"]


def particle_gradients(model, data, *, l2: float = 0.0, loss="half_mse") -> np.ndarray:
    """|∇_θ (δF/δμ)(θ_j)| = |∂F/∂θ_j| / m_j for every particle of `model` (module docstring).

    **Arguments:** `model`, an `AbstractNeuronMeasure` (e.g. `MeanFieldResNet`); `data`; `l2`, the
    penalty λ in F = risk + λ ∫|θ|² dμ; `loss` as for `gf.flow`. The gradient is taken in θ =
    (u, w, b), or (u, w) without a trained bias.

    **Returns:** an array of the particles' shape without the coordinate axis: (L, M) for a
    mean-field ResNet, (M,) for a two-layer network.
    """
    if not isinstance(model, AbstractNeuronMeasure):
        raise ConfigError("model", type(model).__name__, "a particle model (AbstractNeuronMeasure)")
    problem, params = GradientFlowProblem.from_model(model, data, loss=loss, l2=l2)
    grads = jax.grad(problem.objective)(params)
    masses = problem.masses

    def scaled(name):
        return getattr(grads, name) / getattr(masses, name)

    parts = [scaled("u"), scaled("w")] + ([scaled("b")[..., None]] if model.bias else [])
    return np.asarray(jnp.linalg.norm(jnp.concatenate(parts, axis=-1), axis=-1))
