"""Initial residual weights of a `ResNet` (docs/resnets.md): tied, smooth in depth, or i.i.d."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float
from .._validation import check, check_choice

INITS = ("tied", "smooth", "iid")


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


def residual_init(
    key, init: str, depth: int, dim: int, width: int, length_scale: float, scale: float = 1.0
):
    """(V, W) of shapes (L, q, m) and (L, m, q) for the initialisation `init`, entries of
    standard deviation `scale` (s):

    - `tied` (the paper's): V_k = 0, W_k = W for all k with W ~ N(0, s²) entries: the network
      starts as the trivial neural ODE h' = 0.
    - `smooth`: V_k = V_0(k/L), W_k = W_0(k/L), every entry s times a unit-variance Gaussian
      process in depth with squared-exponential kernel of length scale ℓ (`smooth_gp`).
    - `iid`: V_k, W_k independent N(0, s²) entries for each layer (no continuous limit).

    The official code of Marion et al. draws the tied W with `torch.randn` (s = 1) and uses no
    1/√m, 1/√q factors: `ResNet(..., normalise=False)` with the default s.
    """
    check_choice("init", init, INITS)
    check(
        isinstance(scale, int | float | np.floating)
        and not isinstance(scale, bool)
        and np.isfinite(scale)
        and scale > 0,
        "init_scale",
        scale,
        "a positive number (the standard deviation of the initial weights' entries)",
    )
    kv, kw = jax.random.split(key)
    if init == "tied":
        w = scale * jax.random.normal(kw, (width, dim))
        return jnp.zeros((depth, dim, width)), jnp.broadcast_to(w, (depth, width, dim))
    if init == "iid":
        return (
            scale * jax.random.normal(kv, (depth, dim, width)),
            scale * jax.random.normal(kw, (depth, width, dim)),
        )
    check(
        np.isfinite(length_scale) and length_scale > 0,
        "length_scale",
        length_scale,
        "a positive number (the GP length scale in depth s ∈ [0, 1])",
    )
    s = np.arange(1, depth + 1) / depth
    return (
        scale * smooth_gp(kv, (dim, width), s, length_scale),
        scale * smooth_gp(kw, (width, dim), s, length_scale),
    )
