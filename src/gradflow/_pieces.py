"""`gf.flow_in_pieces`: a long flow solved piece by piece, with progress, bounded memory, a stop
level, and checkpoints that make it resumable.

A long flow saved at many times is solved in consecutive pieces of `piece` save intervals. Each
piece continues from the previous one's exact final state *and* its solver state (a carried stage,
RKC's spectral-radius estimate), step-size controller state and proposed next step, so the pieces
take the steps one solve would take, except where a piece boundary clips a step. Between pieces:
progress is reported, `on_piece` may reduce what is kept, the stop level is checked, the interrupt
flag is honoured, and — with `checkpoint=FOLDER` — the piece and the state to continue are written
atomically. Called again with the same arguments and folder, `flow_in_pieces` continues from the
last piece written and returns a trajectory bit-identical to an uninterrupted run (XLA on one
machine is deterministic: same program, same inputs, same bits).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from . import _interrupt
from ._errors import ConfigError, SolverError
from ._flow import check_saves, failed, failure_message, run_solve
from ._netcdf import read_arrays, write_arrays
from ._settings import FlowSettings, takes_flow_settings
from ._solve import solve_program
from ._trajectory import Trajectory
from ._validation import check, integer

CARRY_FORMAT = "gradflow.flow-checkpoint"
CARRY_VERSION = 1


@takes_flow_settings
def flow_in_pieces(
    model,
    data,
    ts,
    *,
    piece: int,
    checkpoint: str | Path | None = None,
    on_piece: Callable[[Trajectory], Trajectory] | None = None,
    progress: bool | Callable[[int, int], None] | None = None,
    settings: FlowSettings,
) -> Trajectory:
    """The gradient flow from `model` saved at the times `ts` (from ts[0] to ts[-1]), solved in
    pieces of `piece` save intervals.

    **Arguments:**

    - `model`, `data`, `geometry`, `loss`, `l2`, `rtol`, `atol`, `solver`, `controller`,
      `max_steps` (per piece), `dtype`, `ensemble`: as for `gf.flow`.
    - `ts`: the save times, increasing, at least two; the flow starts at ts[0].
    - `piece`: save intervals per piece (≥ 1). Pieces of one length share one compiled solve;
      the number of saves held in memory at once, and of states whose metrics are computed in
      one batch, is `piece + 1`.
    - `checkpoint`: a folder (created if needed). After each piece its trajectory and the state
      to continue are written there atomically; a later call with the same arguments continues
      from the last piece written (a call with other arguments is refused).
    - `on_piece`: `piece_trajectory -> trajectory to keep` (e.g. `lambda p: p.truncate(1)` to
      keep no states of a huge model); what it returns is what is checkpointed and joined.
    - `progress`: True for a progress bar with the time remaining, or a function
      `progress(pieces_done, pieces_total)`.
    - `stop_below`: end the flow where F falls to this level (see `gf.flow`); not for ensembles.

    **Returns:** the joined `Trajectory` (`info['pieces']` pieces; solver statistics summed).

    **Raises:** as `gf.flow`; `SolverError` carries every piece computed so far;
    `RunInterrupted` (after the checkpoint is written) if an interrupt was requested.
    """
    piece = integer("piece", piece, minimum=1)
    ts = np.asarray(ts, dtype=float).reshape(-1)
    check(ts.size >= 2, "ts", ts.tolist(), "at least two save times (start and end)")
    ts = check_saves(ts, float(ts[0]), float(ts[-1]))
    problem, params, options, info, is_ensemble = settings.setup(
        model, data, t0=float(ts[0]), t1=float(ts[-1])
    )
    problem.check_finite_start(params, is_ensemble)
    bounds = list(range(0, ts.size - 1, piece)) + [ts.size - 1]
    total = len(bounds) - 1
    store = None
    if checkpoint is not None:
        template = model.member(0) if is_ensemble else model
        store = _Checkpoint(
            Path(checkpoint), _fingerprint(problem, params, ts, piece, info), template
        )
    pieces, carry, start = [], None, 0
    if store is not None and store.exists():
        pieces, params, carry, start, done = store.load(
            problem, params, ts, bounds, options, is_ensemble
        )
        if done:
            return Trajectory.concatenate(pieces)
    report = _progress(progress, total)
    report(start)
    for i in range(start, total):
        a, b = bounds[i], bounds[i + 1]
        piece_info = {**info, "t0": float(ts[a]), "t1": float(ts[b])}
        traj, carry, params = run_solve(
            problem, params, ts[a : b + 1], options, piece_info, carry, is_ensemble, throw=False
        )
        if failed(traj):
            partial = Trajectory.concatenate([*pieces, traj]) if pieces else traj
            raise SolverError(failure_message(problem, traj, piece_info), partial)
        kept = traj if on_piece is None else on_piece(traj)
        pieces.append(kept)
        stopped = traj.info["stopped_at"] is not None
        done = stopped or i + 1 == total
        if store is not None:
            store.write(i, kept, params, carry, done)
        report(i + 1)
        if done:
            break
        _interrupt.check()
    return Trajectory.concatenate(pieces)


def _progress(progress, total: int) -> Callable[[int], None]:
    if progress is None or progress is False:
        return lambda done: None
    if callable(progress):
        return lambda done: progress(done, total)
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="flow", unit="piece")

    def report(done: int) -> None:
        bar.update(done - bar.n)
        if done == total:
            bar.close()

    return report


def _fingerprint(problem, params, ts, piece, info) -> str:
    """SHA-256 of everything that determines the flow: save grid, pieces, settings, the initial
    parameters and the data's statistics (arrays by value), shapes and dtypes."""
    digest = hashlib.sha256()
    settings = {k: v for k, v in info.items() if k not in ("t0", "t1")}
    digest.update(
        json.dumps(
            [settings, piece, str(jtu.tree_structure(params))], sort_keys=True, default=str
        ).encode()
    )
    digest.update(np.ascontiguousarray(ts).tobytes())
    for leaf in jtu.tree_leaves((params, problem.statistics, problem.masses, problem.static)):
        if eqx.is_array(leaf):
            a = np.ascontiguousarray(np.asarray(leaf))
            digest.update(f"{a.shape}{a.dtype}".encode())
            digest.update(a.tobytes())
    return digest.hexdigest()


class _Checkpoint:
    """A folder of `piece-NNNNN.nc` trajectories and `carry.nc`, the state to continue."""

    def __init__(self, folder: Path, fingerprint: str, template):
        self.folder, self.fingerprint, self.template = folder, fingerprint, template
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError("checkpoint", str(folder), f"a writable folder ({err})") from None

    @property
    def carry_path(self) -> Path:
        return self.folder / "carry.nc"

    def piece_path(self, i: int) -> Path:
        return self.folder / f"piece-{i:05d}.nc"

    def exists(self) -> bool:
        return self.carry_path.is_file()

    def write(self, i: int, kept: Trajectory, params, carry, done: bool) -> None:
        kept.save(self.piece_path(i))
        arrays = {}
        for j, leaf in enumerate(jtu.tree_leaves((params, carry))):
            arrays[f"leaf{j}"] = np.asarray(leaf)
        attrs = {"fingerprint": self.fingerprint, "next_piece": i + 1, "done": int(done)}
        write_arrays(
            self.carry_path, arrays, attrs, format_name=CARRY_FORMAT, format_version=CARRY_VERSION
        )

    def load(self, problem, params, ts, bounds, options, ensemble):
        arrays, attrs = read_arrays(self.carry_path, CARRY_FORMAT, max_version=CARRY_VERSION)
        if attrs.get("fingerprint") != self.fingerprint:
            raise ConfigError(
                "checkpoint",
                str(self.folder),
                "a folder written by this same flow (same model, data, save times and settings); "
                "this one holds another flow's checkpoint",
            )
        start = int(attrs["next_piece"])
        pieces = [Trajectory.load(self.piece_path(i), like=self.template) for i in range(start)]
        # The structure of (params, carry) from an abstract trace of the first piece's solve.
        shapes = eqx.filter_eval_shape(
            solve_program,
            problem,
            params,
            jnp.asarray(ts[0], problem.dtype),
            jnp.asarray(ts[bounds[1]], problem.dtype),
            jnp.asarray(ts[: bounds[1] + 1], problem.dtype),
            options,
            None,
            ensemble,
        )
        template = (params, shapes[-1])
        leaves, treedef = jtu.tree_flatten(template)
        check(
            len(arrays) == len(leaves),
            "checkpoint",
            str(self.carry_path),
            "a carry file matching this flow's solver state",
        )
        restored = []
        for j, leaf in enumerate(leaves):
            a = arrays[f"leaf{j}"]
            dtype = getattr(leaf, "dtype", None)
            restored.append(jnp.asarray(a, dtype=dtype) if dtype is not None else a.item())
        params, carry = jtu.tree_unflatten(treedef, restored)
        return pieces, params, carry, start, bool(attrs["done"])
