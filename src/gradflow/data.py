"""Datasets and their generators.

A `Dataset` is a pair of arrays `x` (n, d_in) and `y` (n, d_out). Every generator takes an explicit
`jax.random` key. The risk is always F = (1/2n) Σ_i |f(x_i) − y_i|² (docs/objective.md), and for models
that are linear in the input the data enter only through the moments
Σ_xx = XᵀX/n, Σ_yx = YᵀX/n and tr Σ_yy = |Y|²/n (see `Dataset.moments`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._activations import ACTIVATIONS
from ._custom_types import Array, Float, Inputs, Targets
from ._errors import ConfigError
from ._npz import numeric_array, read_npz
from ._validation import check, positive_int


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
            raise ConfigError(
                "data", (self.x.shape, self.y.shape), "x of shape (n, d_in), y (n, d_out)"
            )
        if self.x.shape[0] != self.y.shape[0]:
            raise ConfigError(
                "data", (self.x.shape, self.y.shape), "x and y with the same number of rows n"
            )
        # Only concrete arrays can be checked: inside jit/vmap the values are tracers.
        try:
            finite = np.all(np.isfinite(np.asarray(self.x))) and np.all(
                np.isfinite(np.asarray(self.y))
            )
        except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
            return
        if not finite:
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
        return Dataset(self.x[perm[:k]], self.y[perm[:k]]), Dataset(
            self.x[perm[k:]], self.y[perm[k:]]
        )


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
    check(
        bool(np.all(np.isfinite(s)) and np.all(s > 0)),
        "singular_values",
        list(s),
        "positive finite numbers",
    )
    if whiten:
        check(n >= in_dim, "n", n, f"n ≥ in_dim = {in_dim} to whiten the inputs")
    kx, ku, kv = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n, in_dim))
    if whiten:
        # Σ_xx is the uncentred second moment XᵀX/n: no centring (which would also drop the rank
        # to n − 1 and make n = in_dim impossible).
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


# ---------------------------------------------------------------------------------------------
# Data for residual networks (docs/resnets.md)


def gaussian(key, n: int, in_dim: int = 16, out_dim: int = 16) -> Dataset:
    """x_i, y_i independent N(0, I): the default data of Marion et al. (ICLR 2024), with
    in_dim = out_dim = 16. The targets are unrelated to the inputs, so fitting them is pure
    interpolation (possible for a wide enough network: m ≳ n, the paper's Prop. 5)."""
    for name, v in (("n", n), ("in_dim", in_dim), ("out_dim", out_dim)):
        check(isinstance(v, int | np.integer) and v >= 1, name, v, "a positive integer")
    kx, ky = jax.random.split(key)
    return Dataset(jax.random.normal(kx, (n, in_dim)), jax.random.normal(ky, (n, out_dim)))


TEACHERS = ("ode", "two_layer")


def teacher(
    key,
    in_dim: int,
    out_dim: int,
    n: int,
    kind: str = "ode",
    width: int = 32,
    noise: float = 0.0,
    length_scale: float = 0.3,
) -> Dataset:
    """Data y = g(x) + noise · ε from a random smooth teacher g, with x, ε ~ N(0, I).

    - `kind="ode"`: g is a fixed neural ODE, H' = (1/√m) V(s) σ(W(s) H/√q) with GELU, q =
      max(in_dim, out_dim), width m = `width`, and every entry of V, W a Gaussian process in depth
      (squared-exponential kernel, `length_scale`), H(0) = [x; 0], g(x) = last out_dim coordinates
      of H(1): the limit of `ResNet(init="smooth")` (solved by diffrax at rtol = atol = 1e-10 on 32
      nodes with linear interpolation).
    - `kind="two_layer"`: g(x) = (1/√m) V tanh(W x/√d), V, W with N(0, 1) entries.

    **Arguments:** `key`; sizes `in_dim`, `out_dim`, `n`; `kind`; `width` m; `noise` ≥ 0 (the
    standard deviation of the Gaussian label noise); `length_scale` of the ODE teacher's weights.
    """
    from .models import ResNet

    for name, v in (("n", n), ("in_dim", in_dim), ("out_dim", out_dim), ("width", width)):
        positive_int(name, v)
    if kind not in TEACHERS:
        raise ConfigError("kind", kind, "one of " + ", ".join(map(repr, TEACHERS)))
    check(np.isfinite(noise) and noise >= 0, "noise", noise, "a non-negative number")
    kx, kt, ke = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n, in_dim))
    if kind == "ode":
        dim = max(in_dim, out_dim)
        net = ResNet(
            in_dim, dim, width, 32, out_dim, key=kt, init="smooth", length_scale=length_scale
        )
        y = eqx.filter_jit(lambda m, x: m(x))(net.ode_limit(), x)
    else:
        kv, kw = jax.random.split(kt)
        v = jax.random.normal(kv, (out_dim, width))
        w = jax.random.normal(kw, (width, in_dim))
        y = ACTIVATIONS["tanh"](x @ w.T / np.sqrt(in_dim)) @ v.T / np.sqrt(width)
    return Dataset(x, y + noise * jax.random.normal(ke, y.shape))


def tanh_teacher(key, n: int, in_dim: int, out_dim: int, width: int = 16) -> Dataset:
    """Data from a random one-hidden-layer tanh teacher with a bias, the small smooth regression
    problem of the mean-field experiments (conditional-ot, lojasiewicz, mean-field-limit):

        x_i ~ N(0, I_d),    y_i = (1/√K) V tanh(W x_i + c),

    with K = `width` neurons and V (d' × K), W (K × d), c (K) of i.i.d. N(0, 1) entries. Unlike
    `teacher(kind="two_layer")` the pre-activation is not scaled by 1/√d and has a bias, so some
    neurons saturate. The key is split into (x, W, V, c) in that order (runs are reproducible
    from the key alone).
    """
    for name, v in (("n", n), ("in_dim", in_dim), ("out_dim", out_dim), ("width", width)):
        positive_int(name, v)
    kx, kw, kv, kc = jax.random.split(key, 4)
    x = jax.random.normal(kx, (n, in_dim))
    w = jax.random.normal(kw, (width, in_dim))
    c = jax.random.normal(kc, (width,))
    v = jax.random.normal(kv, (out_dim, width))
    return Dataset(x, jnp.tanh(x @ w.T + c) @ v.T / np.sqrt(width))


DIGIT_TARGETS = ("onehot", "regression")


def digits(key=None, dim: int | None = None, targets: str = "onehot") -> Dataset:
    """scikit-learn's bundled handwritten digits (1797 images of 8×8 pixels; no download).

    Inputs: the 64 pixels, flattened and standardised feature-wise (zero mean, unit variance;
    the two constant pixels stay 0). If `dim` is given, they are projected on their top `dim`
    principal components and each component is rescaled to unit variance (a deterministic,
    whitened PCA), so inputs stay O(1) whatever `dim`.

    Targets: `"onehot"` (default): y_i = e_{label} ∈ R^10, fitted by the squared loss and read out
    by argmax (see `digit_labels`); `"regression"`: y_i = the label standardised to zero mean and
    unit variance, one column.

    `key`, if given, shuffles the rows (use `Dataset.split(fraction, key)` for train/test).
    """
    from sklearn.datasets import load_digits

    if targets not in DIGIT_TARGETS:
        raise ConfigError("targets", targets, "one of " + ", ".join(map(repr, DIGIT_TARGETS)))
    raw = load_digits()
    x = np.asarray(raw.data, dtype=float)
    labels = np.asarray(raw.target)
    std = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    if dim is not None:
        check(
            isinstance(dim, int | np.integer) and 1 <= dim <= 64,
            "dim",
            dim,
            "an integer between 1 and 64 (the number of pixels)",
        )
        _, s, vt = np.linalg.svd(x, full_matrices=False)
        x = x @ vt[:dim].T / (s[:dim] / np.sqrt(x.shape[0]))
    if targets == "onehot":
        y = np.eye(10)[labels]
    else:
        y = ((labels - labels.mean()) / labels.std())[:, None]
    if key is not None:
        perm = np.asarray(jax.random.permutation(key, x.shape[0]))
        x, y = x[perm], y[perm]
    return Dataset(jnp.asarray(x), jnp.asarray(y))


def digit_labels(y: Float[Array, "n 10"]) -> Array:
    """The class of each one-hot target (or the predicted class of each output): argmax."""
    return jnp.argmax(y, axis=-1)


def load_npz(
    path,
    *,
    field: str = "data",
    in_dim: int | None = None,
    out_dim: int | None = None,
    dtype=jnp.float64,
) -> Dataset:
    """The dataset in `path`: arrays `x` (n, d_in) and `y` (n, d_out) or (n,).

    `in_dim`/`out_dim`, when given, are the dimensions the configuration expects; a file that
    disagrees is refused naming both.
    """
    arrays = read_npz(path, field, "arrays x (n, d_in) and y (n, d_out)")
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise ConfigError(
            field, f"{path} without {', '.join(missing)}", "arrays named x (n, d_in) and y"
        )
    x = numeric_array(field, "x", arrays["x"])
    y = numeric_array(field, "y", arrays["y"])
    if y.ndim == 1:
        y = y[:, None]
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ConfigError(
            field, f"x {x.shape}, y {y.shape}", "x (n, d_in) and y (n, d_out) with the same n >= 1"
        )
    for name, want, got in (("d_in", in_dim, x.shape[1]), ("d_out", out_dim, y.shape[1])):
        if want is not None and want != got:
            raise ConfigError(field, f"{name} = {got} in {os.fspath(path)}", f"{name} = {want}")
    return Dataset(jnp.asarray(x, dtype), jnp.asarray(y, dtype))


def save_npz(path, data: Dataset) -> None:
    """Write `data` as arrays `x` and `y` (the layout `load_npz` reads)."""
    np.savez(path, x=np.asarray(data.x), y=np.asarray(data.y))
