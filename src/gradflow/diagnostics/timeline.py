"""The saddle-to-saddle story of a deep linear trajectory (docs/deep-linear.md): when each mode
is learned, which critical points the flow passed, and the loss on each plateau against the
critical value it sits at (`saddle_timeline`; the points themselves: `critical_points`)."""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._errors import ConfigError
from .._loss_checks import squared_loss_factor, trajectory_loss
from .._result import Record
from .._validation import check
from ..analytic import critical_value, teacher_modes
from ..fits import crossing_time

__all__ = ["SaddleTimeline", "saddle_timeline", "learn_order", "visited_sets"]


@dataclasses.dataclass(frozen=True)
class SaddleTimeline(Record):
    """The saddles a trajectory visited and when it learned each mode (see `saddle_timeline`).

    - `ts`: saved times (T,).
    - `singular_values`: s (r,), decreasing.
    - `mode_strengths`: (T, r), u_j(t) = U_jᵀ W(t) V_j (W Σ_xx^{1/2} for non-whitened data).
    - `learn_times`: (r,), first time u_j crosses s_j/2 (interpolated), NaN if never.
    - `order` (property): the learned modes in the order they were learned.
    - `visited_modes` (property): the sets J visited, as sorted tuples: (), {first}, {first,
      second}, ...
    - `critical_values`: F_J for each visited J (`analytic.critical_value`, × 2/d_out for mse).
    - `plateau_losses`, `plateau_times`, `plateau_indices`: the measured loss at each plateau, at
      the saved time where |∇F| is smallest within the plateau's window (see `saddle_timeline`).
    """

    ts: np.ndarray
    singular_values: np.ndarray
    mode_strengths: np.ndarray
    learn_times: np.ndarray
    critical_values: np.ndarray
    plateau_losses: np.ndarray
    plateau_times: np.ndarray
    plateau_indices: list

    DERIVED = ("order", "visited_modes")

    @property
    def order(self) -> list[int]:
        """The modes with a (finite) learning time, by learning time."""
        return learn_order(self.learn_times)

    @property
    def visited_modes(self) -> list[tuple[int, ...]]:
        """J_0 = (), J_1 = (first,), J_2 = the first two sorted, ...: the saddles visited."""
        return visited_sets(self.order)

    @property
    def plateau_deviation(self) -> np.ndarray:
        """plateau_losses − critical_values."""
        return self.plateau_losses - self.critical_values


@eqx.filter_jit
def _mode_strengths(params, static, u, v, whiten):
    """u_j(t) = U_jᵀ W(t) Σ_xx^{1/2} V_j at every save (T, r), as one compiled function for every
    call of these shapes (a closure jitted per call would be traced again each time)."""

    def strengths(p):
        w = eqx.combine(p, static).product() @ whiten
        return jnp.sum(u * (w @ v), axis=0)

    return jax.vmap(strengths)(params)


def learn_order(learn_times) -> list[int]:
    """The modes j with a finite learning time, sorted by it."""
    learned = [j for j in range(len(learn_times)) if np.isfinite(learn_times[j])]
    return sorted(learned, key=lambda j: learn_times[j])


def visited_sets(order) -> list[tuple[int, ...]]:
    """The sets of modes learned before each plateau: (), then each prefix of `order`, sorted."""
    return [tuple(sorted(order[:i])) for i in range(len(order) + 1)]


def saddle_timeline(traj, data, fraction: float = 0.5, *, loss=None) -> SaddleTimeline:
    """Label a deep linear trajectory with the saddles it visited and its mode learning times.

    Mode strengths u_j(t) = U_jᵀ W(t) V_j are computed at every save (vmapped). Mode j is learned
    at the first time u_j crosses `fraction`·s_j (default s_j/2), interpolated between saves
    linearly in the logit log(u_j/(s_j − u_j)) (`fits.crossing_time(..., interpolation='logit')`:
    exact for the balanced depth-2 solution) where 0 < u_j < s_j, linearly in u_j otherwise. The
    modes are then ordered by learning time; the trajectory visited J_0 = ∅, J_1 = {first},
    J_2 = {first, second}, ..., with critical values F_{J_i}.

    **Plateau loss.** Plateau i is the time window between learning J_i's last mode and the next
    (for i = 0 from the first save, for the last from its learning time to the last save). Its
    loss is the measured loss at the save in that window where |∇F| is smallest: the point where
    the trajectory passes closest to the critical set. From a per-layer init scale ε it differs
    from the critical value by the residue of the mode just learned (quadratic: ½(s_i − u_i)²)
    plus the growth of the next one (linear: −s_j u_j), whose minimum over the window is
    O(u_0^{c}) with c < 1 set by the ratio of neighbouring singular values; it vanishes as ε → 0.

    **Arguments:** `traj`: a single (not ensemble) trajectory of a `DeepLinear` or
    `AdjacencyDeepLinear`; `data`: its `Dataset`; `fraction` ∈ (0, 1); `loss`: the loss it was
    flowed with, 'half_mse' or 'mse' (default: the one `traj.info` names).
    """
    from ..models import AbstractLinearModel

    if not isinstance(traj.static, AbstractLinearModel):
        raise ConfigError(
            "traj",
            f"a trajectory of a {type(traj.static).__name__}",
            "a trajectory of a linear network (DeepLinear, AdjacencyDeepLinear)",
        )
    factor = 2.0 * squared_loss_factor(
        trajectory_loss(traj, loss),
        data.out_dim,
        "saddle_timeline compares plateaus with a squared loss's critical values",
    )
    check(
        traj.ensemble_size is None,
        "traj",
        "an ensemble trajectory",
        "a single trajectory (use traj.member(e))",
    )
    check(0.0 < fraction < 1.0, "fraction", fraction, "a number in (0, 1)")
    u, s, v, inv_half = teacher_modes(data)
    whiten = np.linalg.inv(inv_half)

    ts = np.asarray(traj.ts)
    ms = np.asarray(_mode_strengths(traj.params, traj.static, u, v, whiten))
    learn = np.array(
        [
            crossing_time(ts, ms[:, j], fraction * s[j], interpolation="logit", upper=s[j])
            for j in range(s.size)
        ]
    )
    order = learn_order(learn)
    visited = visited_sets(order)
    crit = np.array([factor * critical_value(data, j) for j in visited])
    bounds = [ts[0]] + [learn[j] for j in order] + [ts[-1]]
    loss = np.asarray(traj.loss)
    gnorm = np.asarray(traj.grad_norm)
    p_loss, p_time, p_idx = [], [], []
    for i in range(len(visited)):
        window = np.nonzero((ts >= bounds[i]) & (ts <= bounds[i + 1]))[0]
        if window.size == 0:
            p_loss.append(np.nan), p_time.append(np.nan), p_idx.append(None)
            continue
        k = int(window[np.argmin(gnorm[window])])
        p_loss.append(loss[k]), p_time.append(ts[k]), p_idx.append(k)
    return SaddleTimeline(
        ts=ts,
        singular_values=s,
        mode_strengths=ms,
        learn_times=learn,
        critical_values=crit,
        plateau_losses=np.array(p_loss, float),
        plateau_times=np.array(p_time, float),
        plateau_indices=p_idx,
    )
