"""Conservation laws of deep linear gradient flows, and the invariants of the adjacency form.

Along the gradient flow of a deep linear network the matrices C_k = W_{k+1}ᵀW_{k+1} − W_k W_kᵀ
(k = 1..H−1) are constant (MODELS.md §1); in adjacency form they are the inner diagonal blocks of
AAᵀ − AᵀA. Their drift certifies the integrator.

**Scale of the relative drift.** C_k is a difference of two Gram matrices with
|W_{k+1}ᵀW_{k+1}|_F ≤ |W_{k+1}|_F² and |W_kW_kᵀ|_F ≤ |W_k|_F²; an integrator whose local error on
each weight is δ·|W| (relative tolerance δ) perturbs C_k by O(δ·(|W_k|_F² + |W_{k+1}|_F²)). We
therefore divide the drift by scale = max_t Σ_k |W_k(t)|_F² (for the adjacency form the same
number, |A(t)|_F²: the squared norm of all trainable parameters), so that `relative` is directly
comparable with the solver's rtol. (Dividing by |C_k(0)| instead would be meaningless from a
balanced or near-zero init, where C_k(0) ≈ 0.)
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

__all__ = ["conservation_drift", "adjacency_invariants"]


def _map_over_saves(fn, traj):
    """Apply `fn(model)` at every saved time (vmapped; twice for an ensemble)."""

    def one(params):
        return fn(eqx.combine(params, traj.static))

    mapped = jax.vmap(one)
    if traj.ensemble_size is not None:
        mapped = jax.vmap(mapped)
    return eqx.filter_jit(mapped)(traj.params)


def _conserved_and_scale(model):
    cs = model.conserved()
    params, _ = eqx.partition(model, model.trainable())
    sq = sum(jnp.sum(p**2) for p in jtu.tree_leaves(params))
    return cs, sq


def conservation_drift(traj) -> dict:
    """How far the conserved quantities C_k moved along a trajectory.

    Works for any model with a `conserved()` method (`DeepLinear`, `AdjacencyDeepLinear`); the
    conserved quantities are evaluated at every saved time in one vmapped computation.

    **Returns:** a dict with

    - `max_abs`: max_t max_k |C_k(t) − C_k(0)|_F;
    - `relative`: `max_abs` / `scale`;
    - `scale`: max_t Σ_k |W_k(t)|_F² (the squared norm of the trainable parameters; see the
      module docstring for why this is the right yardstick);
    - `per_layer`: [max_t |C_k(t) − C_k(0)|_F for k = 1..H−1];
    - `series`: the array (T, H−1) of |C_k(t) − C_k(0)|_F (for plotting).

    For an ensemble trajectory every entry carries a leading member axis (maxima per member).
    """
    cs, sq = _map_over_saves(_conserved_and_scale, traj)
    axis = 0 if traj.ensemble_size is None else 1
    if len(cs) == 0:  # depth 1: nothing is conserved
        zeros = np.zeros(() if axis == 0 else (traj.ensemble_size,))
        return {
            "max_abs": zeros,
            "relative": zeros,
            "scale": np.asarray(jnp.max(sq, axis=axis)),
            "per_layer": [],
            "series": np.zeros(np.shape(sq) + (0,)),
        }
    series = []
    for c in cs:
        c0 = jnp.take(c, jnp.array([0]), axis=axis)
        series.append(jnp.sqrt(jnp.sum((c - c0) ** 2, axis=(-2, -1))))
    series = jnp.stack(series, axis=-1)  # (*E, T, H-1)
    per_layer = jnp.max(series, axis=axis)  # (*E, H-1)
    max_abs = jnp.max(per_layer, axis=-1)
    scale = jnp.max(sq, axis=axis)
    out = {
        "max_abs": np.asarray(max_abs),
        "relative": np.asarray(max_abs / jnp.where(scale > 0, scale, 1.0)),
        "scale": np.asarray(scale),
        "per_layer": [np.asarray(per_layer[..., k]) for k in range(per_layer.shape[-1])],
        "series": np.asarray(series),
    }
    if traj.ensemble_size is None:
        for key in ("max_abs", "relative", "scale"):
            out[key] = float(out[key])
        out["per_layer"] = [float(x) for x in out["per_layer"]]
    return out


def _adjacency_numbers(model):
    return model.nilpotency_residual(), model.pattern_leakage(), jnp.linalg.norm(model.adjacency)


def adjacency_invariants(traj) -> dict:
    """The invariants of an adjacency-form trajectory (`AdjacencyDeepLinear`), max over time.

    **Returns:** a dict with `nilpotency_residual` (max_t |A(t)^{H+1}|_F, zero for a block-shift
    A), `pattern_leakage` (max_t |A(t) off the block-shift pattern|_F; the flow's right-hand side
    vanishes off the pattern, so this stays exactly 0), `scale` (max_t |A(t)|_F, to read the two
    above relative to) and `conservation` (the `conservation_drift` dict).
    """
    nil, leak, norm = _map_over_saves(_adjacency_numbers, traj)
    axis = 0 if traj.ensemble_size is None else 1
    out = {
        "nilpotency_residual": np.asarray(jnp.max(nil, axis=axis)),
        "pattern_leakage": np.asarray(jnp.max(leak, axis=axis)),
        "scale": np.asarray(jnp.max(norm, axis=axis)),
        "conservation": conservation_drift(traj),
    }
    if traj.ensemble_size is None:
        for key in ("nilpotency_residual", "pattern_leakage", "scale"):
            out[key] = float(out[key])
    return out
