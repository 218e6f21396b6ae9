"""How far a trajectory went: the transport distance from its start, and the length of its path in
the flow's own metric (docs/mean-field.md, docs/geometries.md).

For a particle measure μ_t moved by a flow, W_C(μ_0, μ_t) (`distance_travelled`) is at most the
length of the path, ∫_0^t |θ'|_G dt (`cumulative_path_length`): a geodesic is the shortest curve.
Their ratio near 1 means the particles moved along nearly straight, non-crossing paths.
"""

from __future__ import annotations

import numpy as np

from .._errors import ConfigError
from .._validation import check_choice
from .transport import conditional_wasserstein

__all__ = ["distance_travelled", "cumulative_path_length"]


def distance_travelled(traj, indices=None, method: str = "auto", epsilon=None) -> np.ndarray:
    """W_C(μ_0, μ_{t_i}) (W_2 for a non-layered model) at saved indices `indices` (default all).

    Always ≤ the path length up to t_i (a geodesic is shortest); their ratio near 1 means the
    particles moved along nearly straight, non-crossing paths.
    """
    if traj.ensemble_size is not None:
        raise ConfigError("traj", "an ensemble trajectory", "a single trajectory (use .member(e))")
    idx = range(len(traj)) if indices is None else [int(i) for i in indices]
    start = traj.at(0)
    return np.array(
        [conditional_wasserstein(start, traj.at(i), method=method, epsilon=epsilon) for i in idx]
    )


def cumulative_path_length(traj, how: str = "speed") -> np.ndarray:
    """The length ∫_0^{t_i} |θ'|_G dt of the path in the flow's own metric, at every saved time.

    |v|_G² = Σ_j m_j |v_j|² = ∫ |v|² dμ (the W_C speed of the curve μ_t for the conditional
    flow). Two estimates:

    - 'speed': along a gradient flow |θ'|_G = |∇F|_G, so the length is ∫ |∇F|_G dt, integrated
      by the trapezoid rule on the saved `grad_norm` (accurate where saves are dense relative to
      the change of |∇F|_G, e.g. log-spaced saves on an exponential or power-law tail).
    - 'polygon': Σ |θ(t_{i+1}) − θ(t_i)|_G through the saved points (`Trajectory.path_length`
      summed cumulatively; a lower bound).
    """
    check_choice("how", how, ("speed", "polygon"))
    if how == "polygon":
        seg = np.asarray(traj.segment_lengths())
        return np.concatenate([np.zeros(seg.shape[:-1] + (1,)), np.cumsum(seg, axis=-1)], axis=-1)
    ts = np.asarray(traj.ts)
    g = np.asarray(traj.grad_norm)
    inc = 0.5 * (g[..., 1:] + g[..., :-1]) * np.diff(ts)
    return np.concatenate([np.zeros(inc.shape[:-1] + (1,)), np.cumsum(inc, axis=-1)], axis=-1)
