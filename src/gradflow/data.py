"""Datasets and their generators.

A `Dataset` is a pair of arrays `x` (n, d_in) and `y` (n, d_out). Every generator takes an explicit
`jax.random` key. The risk is always F = (1/2n) Σ_i |f(x_i) − y_i|² (DESIGN.md), and for models
that are linear in the input the data enter only through the moments
Σ_xx = XᵀX/n, Σ_yx = YᵀX/n and tr Σ_yy = |Y|²/n (see `Dataset.moments`).
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, Float, Inputs, Targets
from ._errors import ConfigError, check


class Moments(eqx.Module):
    """Second moments of a dataset: Σ_xx = XᵀX/n, Σ_yx = YᵀX/n, tr Σ_yy = |Y|_F²/n."""

    sxx: Float[Array, "d_in d_in"]
    syx: Float[Array, "d_out d_in"]
    tr_syy: Float[Array, ""]


class Dataset(eqx.Module):
    """Inputs `x` of shape (n, d_in) and targets `y` of shape (n, d_out)."""

    x: Inputs
    y: Targets

    def __check_init__(self):
        if self.x.ndim != 2 or self.y.ndim != 2:
            raise ConfigError("data", (self.x.shape, self.y.shape), "x of shape (n, d_in), y (n, d_out)")
        if self.x.shape[0] != self.y.shape[0]:
            raise ConfigError(
                "data", (self.x.shape, self.y.shape), "x and y with the same number of rows n"
            )
        # Only check concrete arrays: inside jit/vmap the values are tracers.
        if not isinstance(self.x, jax.core.Tracer) and not isinstance(self.y, jax.core.Tracer):
            if not (np.all(np.isfinite(np.asarray(self.x))) and np.all(np.isfinite(np.asarray(self.y)))):
                raise ConfigError("data", "non-finite entries", "finite x and y")

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def in_dim(self) -> int:
        return self.x.shape[1]

    @property
    def out_dim(self) -> int:
        return self.y.shape[1]

    def moments(self) -> Moments:
        """Σ_xx = XᵀX/n, Σ_yx = YᵀX/n, tr Σ_yy = |Y|²/n."""
        n = self.x.shape[0]
        return Moments(self.x.T @ self.x / n, self.y.T @ self.x / n, jnp.sum(self.y**2) / n)

    def split(self, fraction: float, key) -> tuple[Dataset, Dataset]:
        """Random split into (train, test) with `fraction` of the rows in train."""
        check(0.0 < fraction < 1.0, "fraction", fraction, "a number in (0, 1)")
        perm = jax.random.permutation(key, self.n)
        k = int(round(fraction * self.n))
        return Dataset(self.x[perm[:k]], self.y[perm[:k]]), Dataset(self.x[perm[k:]], self.y[perm[k:]])


def _orthonormal_columns(key, rows: int, cols: int) -> Array:
    """A (rows, cols) matrix with orthonormal columns, Haar distributed (QR with sign fix)."""
    q, r = jnp.linalg.qr(jax.random.normal(key, (rows, cols)))
    return q * jnp.sign(jnp.diagonal(r))


def linear_teacher(
    key,
    in_dim: int,
    out_dim: int,
    n: int,
    singular_values: Sequence[float],
    whiten: bool = True,
) -> Dataset:
    """Data from a linear teacher whose input–output correlation has given singular values.

    Draws X (n, d_in); if `whiten`, transforms it so that Σ_xx = XᵀX/n = I exactly (this needs
    n ≥ d_in). Then chooses Y so that Σ_yx = YᵀX/n = U S Vᵀ exactly, where U (d_out, r) and
    V (d_in, r) are Haar-random with orthonormal columns and S = diag(singular_values): with
    whitened inputs Y = X V S Uᵀ; otherwise Y = X Σ_xx⁻¹ V S Uᵀ.

    **Arguments:**

    - `key`: a `jax.random` key.
    - `in_dim`, `out_dim`, `n`: sizes (n ≥ in_dim when whitening).
    - `singular_values`: r ≤ min(in_dim, out_dim) positive numbers: the singular values of Σ_yx.
    - `whiten`: make Σ_xx = I exactly (otherwise X has i.i.d. N(0, 1) entries).

    **Returns:** a `Dataset`. The teacher's factors are not stored; recover them with
    `jnp.linalg.svd(data.moments().syx)`.
    """
    for name, v in (("in_dim", in_dim), ("out_dim", out_dim), ("n", n)):
        check(isinstance(v, int | np.integer) and v >= 1, name, v, "a positive integer")
    s = np.asarray(singular_values, dtype=float).reshape(-1)
    r = s.size
    check(
        1 <= r <= min(in_dim, out_dim),
        "singular_values",
        list(s),
        f"between 1 and min(in_dim, out_dim) = {min(in_dim, out_dim)} values",
    )
    check(bool(np.all(np.isfinite(s)) and np.all(s > 0)), "singular_values", list(s), "positive finite numbers")
    if whiten:
        check(n >= in_dim, "n", n, f"n ≥ in_dim = {in_dim} to whiten the inputs")
    kx, ku, kv = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n, in_dim))
    if whiten:
        x = x - x.mean(axis=0)
        cov = x.T @ x / n
        evals, evecs = jnp.linalg.eigh(cov)
        x = x @ evecs @ jnp.diag(evals**-0.5) @ evecs.T
    u = _orthonormal_columns(ku, out_dim, r)
    v = _orthonormal_columns(kv, in_dim, r)
    teacher = v @ jnp.diag(jnp.asarray(s)) @ u.T  # (d_in, d_out)
    if whiten:
        y = x @ teacher
    else:
        # Σ_yx = teacherᵀ Σ_xx; rescale so that Σ_yx has exactly the singular values s.
        sxx = x.T @ x / n
        y = x @ jnp.linalg.solve(sxx, teacher)
    return Dataset(x, y)
