"""Initial conditions of the deep-linear survey and the conservation laws they fix
(docs/critical-points.md).

Along the flow C_k = W_{k+1}ᵀW_{k+1} − W_k W_kᵀ (k = 1..H−1) is constant, so an initialisation
chooses the fibre (the level set of the C_k) the trajectory lives in:

- **δ-balanced** (`delta_balanced_init`): C_k = δ I for every k. Built layer by layer: W_1 random,
  then W_{k+1} = Q diag(√m) Eᵀ from the eigendecomposition W_kW_kᵀ + δI = E diag(m) Eᵀ restricted
  to m > 0, with Q (n_{k+1} × rank) random orthonormal columns; then
  W_{k+1}ᵀW_{k+1} = W_kW_kᵀ + δI exactly. It needs W_kW_kᵀ + δI ⪰ 0 (δ ≥ 0, or W_k's singular
  values ≥ √|δ|) and rank ≤ n_{k+1}; δ = 0 is balanced.
- **decoupled** (`decoupled_init`): W_k = R_k diag(a_k) R_{k−1}ᵀ with R_0 = V, R_H = U (the data's
  modes), R_k the first r coordinate vectors of hidden layer k, and per-layer, per-mode strengths
  a_{k,j}. With whitened inputs each mode evolves alone (a_{k,j}' = (s_j − Π_l a_{l,j}) Π_{l≠k}
  a_{l,j}), and the laws are per mode: a_{k+1,j}² − a_{k,j}² = const, i.e.
  C_k = R_k diag(a_{k+1}² − a_k²) R_kᵀ. (Non-whitened data: W_1 gets the factor Σ_xx^{−1/2} of
  the whitening change of variables, and C_1 then differs from the law: `law_residual` says so.)
- **aligned** (`aligned_init`): the same with Haar-random orthonormal hidden frames R_k: adjacent
  layers' singular vectors match (W_k's left ones are W_{k+1}'s right ones) and the end frames are
  the data's; it is a decoupled init in rotated hidden coordinates (an orthogonal symmetry), with
  C_k = R_k diag(a_{k+1}² − a_k²) R_kᵀ.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .._result import Record, not_json
from .._validation import check
from ..data import Dataset

__all__ = ["LinearInit", "delta_balanced_init", "decoupled_init", "aligned_init"]


@dataclasses.dataclass(frozen=True)
class LinearInit(Record):
    """A deep linear initialisation and the conservation laws it fixes.

    `kind` ('delta_balanced', 'decoupled', 'aligned'), `laws` (the laws in words), `conserved`
    (the C_k at the init, measured), `delta` (δ for a δ-balanced init, else None),
    `mode_differences` ((H−1, r): a_{k+1,j}² − a_{k,j}² for decoupled / aligned inits, else None),
    `law_residual` (max |C_k − the law's C_k|: ≈ 1e-15 certifies the construction), `model`.
    """

    kind: str
    laws: list
    conserved: list
    delta: float | None
    mode_differences: np.ndarray | None
    law_residual: float
    model: object = not_json(repr=False)


def _orthonormal(key, rows, cols) -> np.ndarray:
    q, r = np.linalg.qr(np.asarray(jax.random.normal(key, (rows, cols))))
    return q * np.sign(np.diag(r))


def _conserved(weights) -> list:
    return [
        weights[k + 1].T @ weights[k + 1] - weights[k] @ weights[k].T
        for k in range(len(weights) - 1)
    ]


def delta_balanced_init(widths, delta: float, key, init_scale: float = 1.0) -> LinearInit:
    """A δ-balanced `DeepLinear` (C_k = δI, module docstring); W_1 has N(0, init_scale²/n_0)
    entries. **Raises:** `ConfigError` where a layer cannot carry W_kW_kᵀ + δI."""
    from ..models.deep_linear import DeepLinear, check_widths

    widths = check_widths(widths)
    delta = float(delta)
    check(np.isfinite(delta), "delta", delta, "a finite number")
    keys = jax.random.split(key, len(widths))
    w = [init_scale / np.sqrt(widths[0]) * np.asarray(jax.random.normal(keys[0], widths[1::-1]))]
    for k in range(1, len(widths) - 1):
        m, e = np.linalg.eigh(w[-1] @ w[-1].T + delta * np.eye(widths[k]))
        check(
            bool(m.min() >= -1e-12 * max(1.0, abs(m).max())),
            "delta",
            delta,
            f"δ ≥ −(smallest singular value of W_{k})² = {-(np.linalg.svd(w[-1])[1].min() ** 2):.3g}",
        )
        keep = m > 1e-12 * max(1.0, abs(m).max())
        rank = int(keep.sum())
        check(
            rank <= widths[k + 1],
            "widths",
            list(widths),
            f"n_{k + 1} ≥ rank(W_{k}W_{k}ᵀ + δI) = {rank} for a δ-balanced init",
        )
        q = _orthonormal(keys[k], widths[k + 1], rank)
        w.append(q @ np.diag(np.sqrt(m[keep])) @ e[:, keep].T)
    conserved = _conserved(w)
    residual = max(
        (float(np.max(np.abs(c - delta * np.eye(c.shape[0])))) for c in conserved), default=0.0
    )
    return LinearInit(
        kind="delta_balanced",
        laws=[f"C_{k} = {delta:g} I" for k in range(1, len(widths) - 1)],
        conserved=conserved,
        delta=delta,
        mode_differences=None,
        law_residual=residual,
        model=DeepLinear.from_weights([jnp.asarray(x) for x in w]),
    )


def _mode_init(data: Dataset, widths, strengths, frames_key, kind) -> LinearInit:
    from ..models.deep_linear import DeepLinear, check_widths
    from ._deep_linear import teacher_modes

    widths = check_widths(widths, data)
    depth = len(widths) - 1
    u, s, v, inv_half = teacher_modes(data)
    r = s.size
    check(min(widths[1:-1], default=r) >= r, "widths", list(widths), f"hidden widths ≥ r = {r}")
    a = np.asarray(strengths, float)
    a = np.broadcast_to(a, (depth, r)) if a.ndim < 2 else a
    check(
        a.shape == (depth, r) and bool(np.all(np.isfinite(a))),
        "strengths",
        np.asarray(strengths).tolist(),
        f"a number, {r} numbers (one per mode) or a ({depth}, {r}) array (per layer, per mode)",
    )
    hidden = widths[1:-1]
    if frames_key is None:
        frames = [np.eye(n, r) for n in hidden]
    else:
        keys = jax.random.split(frames_key, max(len(hidden), 1))
        frames = [_orthonormal(keys[i], n, r) for i, n in enumerate(hidden)]
    frames = [v] + frames + [u]
    w = [frames[k] @ np.diag(a[k - 1]) @ frames[k - 1].T for k in range(1, depth + 1)]
    w[0] = w[0] @ inv_half  # non-whitened data: the change of variables W_1 ↦ W_1 Σ_xx^{1/2}
    diffs = a[1:] ** 2 - a[:-1] ** 2
    conserved = _conserved(w)
    expected = [frames[k] @ np.diag(diffs[k - 1]) @ frames[k].T for k in range(1, depth)]
    residual = max(
        (float(np.max(np.abs(c - e))) for c, e in zip(conserved, expected, strict=True)),
        default=0.0,
    )
    return LinearInit(
        kind=kind,
        laws=[
            f"a_{k + 1},j² − a_{k},j² = const for each mode j (C_{k} = R_{k} diag(·) R_{k}ᵀ)"
            for k in range(1, depth)
        ],
        conserved=conserved,
        delta=None,
        mode_differences=diffs,
        law_residual=residual,
        model=DeepLinear.from_weights([jnp.asarray(x) for x in w]),
    )


def decoupled_init(data: Dataset, widths, strengths) -> LinearInit:
    """W_k = R_k diag(a_k) R_{k−1}ᵀ on the data's modes with coordinate hidden frames (module
    docstring); `strengths`: a, one per mode, or (H, r) per layer and mode."""
    return _mode_init(data, widths, strengths, None, "decoupled")


def aligned_init(data: Dataset, widths, strengths, key) -> LinearInit:
    """As `decoupled_init` with Haar-random orthonormal hidden frames R_k (from `key`)."""
    return _mode_init(data, widths, strengths, key, "aligned")
