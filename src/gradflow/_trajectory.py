"""The `Trajectory`: saved times, the stacked parameters, F, |∇F|, and solver statistics.

A trajectory stores the trainable parameters stacked along time (and, for an ensemble, along a
leading member axis) and the model's fixed part once; `traj.models` recombines them and
`traj.at(i)` gives the model at saved index i. `save`/`load` write NetCDF (xarray, h5netcdf) with
every array in float64, so a round trip is exact; `save_metrics` writes the scalar series to
Parquet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from ._custom_types import Array, Float, PyTree


class Trajectory(eqx.Module):
    """A solved (or descended) trajectory.

    **Fields:**

    - `ts`: saved times (T,). For `descent`, t = step · lr, the flow time the steps approximate.
    - `params`: the trainable parameters, each leaf stacked as (T, ...) — or (E, T, ...) for an
      ensemble of E members.
    - `static`: the model's fixed part (structure and non-trainable arrays).
    - `loss`: F at the saved times, (T,) or (E, T).
    - `grad_norm`: |∇F|_G at the saved times, the gradient's norm in the flow's metric
      (Σ_j |∇_{θ_j}F|²/m_j)^{1/2}, so that dF/dt = −|∇F|_G² along the flow.
    - `masses`: the metric masses of the trainable leaves (1 for the Euclidean geometry).
    - `stats`: solver statistics (steps, accepted, rejected, function evaluations, ...).
    - `info`: how it was made (solver, geometry, tolerances, ...).
    """

    ts: Float[Array, " T"]
    params: PyTree
    static: PyTree
    loss: Float[Array, "*E T"]
    grad_norm: Float[Array, "*E T"]
    masses: PyTree
    stats: dict = eqx.field(static=True)
    info: dict = eqx.field(static=True)

    @property
    def ensemble_size(self) -> int | None:
        """Number of members for an ensemble trajectory, None for a single one."""
        return self.loss.shape[0] if self.loss.ndim == 2 else None

    def __len__(self) -> int:
        return self.ts.shape[0]

    @property
    def models(self):
        """The model pytree with every trainable leaf stacked along time."""
        return eqx.combine(self.params, self.static)

    def at(self, i: int):
        """The model at saved index `i` (for an ensemble: every member, batched)."""
        if self.ensemble_size is None:
            params = jtu.tree_map(lambda a: a[i], self.params)
        else:
            params = jtu.tree_map(lambda a: a[:, i], self.params)
        return eqx.combine(params, self.static)

    @property
    def final(self):
        return self.at(len(self) - 1)

    def member(self, e: int) -> Trajectory:
        """Member `e` of an ensemble trajectory, as a single trajectory."""
        if self.ensemble_size is None:
            raise ValueError("member() is for ensemble trajectories")
        return Trajectory(
            self.ts,
            jtu.tree_map(lambda a: a[e], self.params),
            self.static,
            self.loss[e],
            self.grad_norm[e],
            self.masses,
            {k: (v[e] if isinstance(v, list | tuple) else v) for k, v in self.stats.items()},
            self.info,
        )

    def truncate(self, length: int) -> Trajectory:
        """The first `length` saved points."""
        if self.ensemble_size is None:
            params = jtu.tree_map(lambda a: a[:length], self.params)
        else:
            params = jtu.tree_map(lambda a: a[:, :length], self.params)
        return Trajectory(
            self.ts[:length],
            params,
            self.static,
            self.loss[..., :length],
            self.grad_norm[..., :length],
            self.masses,
            self.stats,
            self.info,
        )

    @property
    def result(self) -> str | list[str]:
        """How the solve ended: 'successful', 'event_occurred' (stopped at a level),
        'max_steps_reached', 'dt_min_reached', 'nonfinite', ... (a list for an ensemble)."""
        return self.info.get("result", "successful")

    @classmethod
    def concatenate(cls, trajectories) -> Trajectory:
        """Trajectories of consecutive solves joined in time.

        Each one must start where the previous one ended or after it; a first point that repeats
        the previous trajectory's last time (a piece that saves its start) is dropped. Solver
        statistics are added (member by member for an ensemble; flags are and-ed), `info` is the
        first's with `t1`, `result` and `stopped_at` of the last, a `pieces` count, and values
        that differ between the pieces (e.g. the solver) joined by '+'.
        """
        trajectories = list(trajectories)
        if not trajectories:
            raise ValueError("concatenate needs at least one trajectory")
        first = trajectories[0]
        axis = 0 if first.ensemble_size is None else 1
        keep = [np.arange(len(first))]
        for prev, nxt in zip(trajectories, trajectories[1:], strict=False):
            t_prev, t_next = float(prev.ts[-1]), np.asarray(nxt.ts)
            if t_next[0] < t_prev:
                raise ValueError(
                    f"trajectories overlap: one starts at t={t_next[0]:g} before t={t_prev:g}"
                )
            keep.append(np.arange(1 if t_next[0] == t_prev else 0, len(nxt)))

        def cat(arrays, ax):
            return jnp.concatenate(
                [jnp.take(a, k, axis=ax) for a, k in zip(arrays, keep, strict=True)], axis=ax
            )

        params = jtu.tree_map(lambda *a: cat(a, axis), *[t.params for t in trajectories])
        stats = {}
        for key in first.stats:
            values = [t.stats.get(key) for t in trajectories]
            if isinstance(values[0], bool):
                stats[key] = all(bool(v) for v in values)
            elif all(isinstance(v, int | float | list) for v in values):
                stats[key] = np.sum(np.asarray(values), axis=0).tolist()
            else:
                stats[key] = values[-1]
        info = dict(first.info)
        for key in {k for t in trajectories[1:] for k in t.info}:
            values = [t.info.get(key) for t in trajectories]
            if all(isinstance(v, str) for v in values) and len(set(values)) > 1:
                info[key] = "+".join(dict.fromkeys("+".join(values).split("+")))
        last = trajectories[-1].info
        for key in ("t1", "result", "stopped_at"):
            if key in last:
                info[key] = last[key]
        info["pieces"] = sum(t.info.get("pieces", 1) for t in trajectories)
        lead = first.loss.ndim - 1
        return cls(
            cat([t.ts for t in trajectories], 0),
            params,
            first.static,
            cat([t.loss for t in trajectories], lead),
            cat([t.grad_norm for t in trajectories], lead),
            first.masses,
            stats,
            info,
        )

    def path_length(self) -> Float[Array, "*E"]:
        """∫ |θ'|_G dt, the length of the path in the flow's metric |v|_G² = Σ_j m_j |v_j|²,
        measured along the polygon through the saved points (a lower bound that converges as the
        saves get denser)."""
        return jnp.sum(self.segment_lengths(), axis=-1)

    def segment_lengths(self) -> Float[Array, "*E T-1"]:
        """|θ(t_{i+1}) − θ(t_i)|_G for consecutive saved points."""
        axis = 0 if self.ensemble_size is None else 1

        def leaf_sq(a, m):
            d = jnp.diff(a, axis=axis)
            d = m * d**2
            return jnp.sum(d.reshape(*d.shape[: axis + 1], -1), axis=-1)

        sq = jtu.tree_leaves(jtu.tree_map(leaf_sq, self.params, self.masses))
        return jnp.sqrt(sum(sq))

    def metrics_frame(self):
        """The scalar series as a pandas DataFrame (columns t, loss, grad_norm[, member])."""
        import pandas as pd

        if self.ensemble_size is None:
            return pd.DataFrame(
                {
                    "t": np.asarray(self.ts),
                    "loss": np.asarray(self.loss),
                    "grad_norm": np.asarray(self.grad_norm),
                }
            )
        e, t = self.loss.shape
        return pd.DataFrame(
            {
                "member": np.repeat(np.arange(e), t),
                "t": np.tile(np.asarray(self.ts), e),
                "loss": np.asarray(self.loss).reshape(-1),
                "grad_norm": np.asarray(self.grad_norm).reshape(-1),
            }
        )

    def save_metrics(self, path) -> Path:
        """Write `metrics_frame()` to Parquet (float64, exact)."""
        path = Path(path)
        self.metrics_frame().to_parquet(path, index=False)
        return path

    def save(self, path) -> Path:
        """Write the whole trajectory to NetCDF, atomically; every array in its own dtype, so a
        round trip is exact. The model is described in JSON, never pickled; the file layout is
        in `gradflow._trajectory_io`."""
        from ._trajectory_io import save_trajectory

        return save_trajectory(self, path)

    @classmethod
    def load(cls, path, like=None) -> Trajectory:
        """Read a trajectory written by `save`. For a model class not registered with gradflow,
        pass `like=model` (a model of that class: its non-array fields are used, the arrays
        come from the file). Raises a one-line `FileFormatError` for a file it cannot read."""
        from ._trajectory_io import load_trajectory

        return load_trajectory(path, like=like)


def _jsonable(value: Any):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray | jax.Array):
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
