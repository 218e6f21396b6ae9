"""Conservation laws of deep linear gradient flows, and the invariants of the adjacency form
(docs/deep-linear.md).

Along the gradient flow of a deep linear network W = W_H ⋯ W_1 the matrices
C_k = W_{k+1}ᵀW_{k+1} − W_k W_kᵀ (k = 1..H−1) are constant: with G = ∂F/∂W (F any function of the
product), W_k' = −W_{>k}ᵀ G W_{<k}ᵀ, so W_{k+1}ᵀW_{k+1}' = W_k'W_kᵀ = −W_{>k}ᵀ G W_{≤k}ᵀ and
the two Gram matrices have the same derivative (an L2 penalty breaks this). In adjacency form they are the inner diagonal blocks of AAᵀ − AᵀA. Their drift certifies the
integrator.

**Scale of the relative drift.** C_k is a difference of two Gram matrices with
|W_{k+1}ᵀW_{k+1}|_F ≤ |W_{k+1}|_F² and |W_kW_kᵀ|_F ≤ |W_k|_F²; an integrator whose local error on
each weight is δ·|W| (relative tolerance δ) perturbs C_k by O(δ·(|W_k|_F² + |W_{k+1}|_F²)). We
therefore divide the drift by scale = max_t Σ_k |W_k(t)|_F² (for the adjacency form the same
number, |A(t)|_F²: the squared norm of all trainable parameters), so that `relative` is directly
comparable with the solver's rtol. (Dividing by |C_k(0)| instead would be meaningless from a
balanced or near-zero init, where C_k(0) ≈ 0.)
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from .._errors import ConfigError
from .._result import Record

__all__ = ["ConservationDrift", "conservation_drift", "AdjacencyInvariants", "adjacency_invariants"]


@dataclasses.dataclass(frozen=True)
class ConservationDrift(Record):
    """Result of `conservation_drift` (for an ensemble every entry has a leading member axis).

    - `max_abs`: max_t max_k |C_k(t) − C_k(0)|_F.
    - `relative`: `max_abs` / `scale`, comparable with the solver's rtol.
    - `scale`: max_t Σ_k |W_k(t)|_F², the squared norm of the trainable parameters (the module
      docstring says why this is the right yardstick).
    - `per_layer`: [max_t |C_k(t) − C_k(0)|_F for k = 1..H−1].
    - `series`: (T, H−1) array of |C_k(t) − C_k(0)|_F (for plotting).
    """

    max_abs: float
    relative: float
    scale: float
    per_layer: list
    series: np.ndarray


@dataclasses.dataclass(frozen=True)
class AdjacencyInvariants(Record):
    """Result of `adjacency_invariants` (maxima over the saved times).

    - `nilpotency_residual`: max_t |A(t)^{H+1}|_F (zero for a block-shift A).
    - `pattern_leakage`: max_t |A(t) off the block-shift pattern|_F (the flow's right-hand side
      vanishes off the pattern, so this stays exactly 0).
    - `scale`: max_t |A(t)|_F, to read the two above relative to.
    - `conservation`: the `ConservationDrift` of the trajectory.
    """

    nilpotency_residual: float
    pattern_leakage: float
    scale: float
    conservation: ConservationDrift


def _check_deep_linear(traj, adjacency_only: bool = False):
    from ..models import AdjacencyDeepLinear, DeepLinear

    kinds = (AdjacencyDeepLinear,) if adjacency_only else (DeepLinear, AdjacencyDeepLinear)
    if not isinstance(traj.static, kinds):
        accepted = " or ".join(k.__name__ for k in kinds)
        raise ConfigError("traj", f"a trajectory of a {type(traj.static).__name__}", accepted)


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


def conservation_drift(traj) -> ConservationDrift:
    """How far the conserved quantities C_k moved along a trajectory: |C_k(t) − C_k(0)|_F.

    For a trajectory of a `DeepLinear` or `AdjacencyDeepLinear` (single or ensemble); the
    conserved quantities are evaluated at every saved time in one vmapped computation.

    **Returns:** a `ConservationDrift` (floats for a single trajectory, arrays with a leading
    member axis for an ensemble).
    """
    _check_deep_linear(traj)
    cs, sq = _map_over_saves(_conserved_and_scale, traj)
    axis = 0 if traj.ensemble_size is None else 1
    scale = jnp.max(sq, axis=axis)
    if len(cs) == 0:  # depth 1: nothing is conserved
        series = jnp.zeros(jnp.shape(sq) + (0,))
        max_abs = jnp.zeros_like(scale)
        per_layer = []
    else:
        diffs = []
        for c in cs:
            c0 = jnp.take(c, jnp.array([0]), axis=axis)
            diffs.append(jnp.sqrt(jnp.sum((c - c0) ** 2, axis=(-2, -1))))
        series = jnp.stack(diffs, axis=-1)  # (*E, T, H-1)
        per_k = jnp.max(series, axis=axis)  # (*E, H-1)
        max_abs = jnp.max(per_k, axis=-1)
        per_layer = [np.asarray(per_k[..., k]) for k in range(per_k.shape[-1])]
    relative = max_abs / jnp.where(scale > 0, scale, 1.0)
    if traj.ensemble_size is None:
        return ConservationDrift(
            float(max_abs),
            float(relative),
            float(scale),
            [float(x) for x in per_layer],
            np.asarray(series),
        )
    return ConservationDrift(
        np.asarray(max_abs), np.asarray(relative), np.asarray(scale), per_layer, np.asarray(series)
    )


def _adjacency_numbers(model):
    return model.nilpotency_residual(), model.pattern_leakage(), jnp.linalg.norm(model.adjacency)


def adjacency_invariants(traj) -> AdjacencyInvariants:
    """The invariants of an adjacency-form trajectory (`AdjacencyDeepLinear`), max over time:
    |A^{H+1}|_F, |A off the block-shift pattern|_F, |A|_F and the conservation drift.

    **Returns:** an `AdjacencyInvariants`.
    """
    _check_deep_linear(traj, adjacency_only=True)
    nil, leak, norm = _map_over_saves(_adjacency_numbers, traj)
    axis = 0 if traj.ensemble_size is None else 1
    numbers = [np.asarray(jnp.max(x, axis=axis)) for x in (nil, leak, norm)]
    if traj.ensemble_size is None:
        numbers = [float(x) for x in numbers]
    return AdjacencyInvariants(*numbers, conservation_drift(traj))
