"""`gf.flow`: the gradient flow θ' = −G⁻¹∇F(θ), integrated by diffrax under error control.

The whole solve is one compiled XLA loop (`diffrax.diffeqsolve`), cached on the shapes and the
static configuration only: a new dataset or initial model of the same shapes, new tolerances, a new
horizon or new save times reuse it. An `Ensemble` flows in one vmapped solve in which every member
keeps its own step size.

The exact flow of a loss bounded below cannot blow up in finite time — its path length on [0, T]
in the flow's metric is at most (T (F(0) − inf F))^{1/2} — so a solve that cannot go on (step
budget spent, step size collapsing, non-finite values) is a *numerical* failure: `SolverError`,
carrying the trajectory up to the last accepted state at its true time and an estimate of the
stiffness there.
"""

from __future__ import annotations

from collections.abc import Sequence

import diffrax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from ._clock import check_saves as check_saves  # the save times (used by _pieces too)
from ._clock import default_saves, flow_time, solver_time
from ._errors import SolverError
from ._settings import FlowSettings, takes_flow_settings
from ._solve import result_names, solve
from ._solvers import EXPLICIT_STABILITY, evaluations, largest_curvature
from ._trajectory import Trajectory


@takes_flow_settings
def flow(
    model,
    data,
    t1: float,
    *,
    saveat: Sequence[float] | diffrax.SaveAt | None = None,
    event: diffrax.Event | None = None,
    t0: float = 0.0,
    progress: bool = False,
    throw: bool = True,
    clock: str = "linear",
    settings: FlowSettings,
) -> Trajectory:
    """Integrate the gradient flow θ' = −G⁻¹∇F(θ) from `model` on [t0, t1].

    F = risk + l2 · ∫|θ|² dμ (`GradientFlowProblem`), G the geometry's metric. The integration
    is error-controlled (each step's local error below atol + rtol·|θ|) and is one compiled loop.

    **Arguments:**

    - `model`: an `AbstractModel`, or an `Ensemble` (`gf.ensemble`) to flow a batch at once.
    - `data`: a `Dataset` whose dimensions match the model; for an `Ensemble`, also a list of
      datasets of equal shapes, one per member (each member flows on its own data).
    - `t1`: final time (> t0).
    - `geometry`: 'euclidean', 'wasserstein', 'conditional_wasserstein' or an `AbstractGeometry`.
    - `loss`: 'half_mse' (default, (1/2n)Σ|f − y|²), 'mse', 'cross_entropy', 'logistic', an
      `AbstractLoss` or a function (outputs, targets) → scalar (`gradflow.losses`).
    - `l2`: λ ≥ 0 in the penalty λ ∫|θ|² dμ.
    - `rtol`, `atol`: tolerances (> 0; rtol ≥ 1e-6 in float32).
    - `solver`: 'tsit5' (default), 'dopri5', 'dopri8', 'kvaerno5' (implicit, dense Newton: small
      stiff problems), 'rkc' (`RungeKuttaChebyshev`: stabilised explicit, for the stiff tails of
      large flows, whose Jacobian spectrum is real), or any diffrax solver.
    - `controller`: 'integral' (default), 'pid', or any diffrax step-size controller.
    - `saveat`: times to save at (increasing, in [t0, t1]) or a `diffrax.SaveAt(ts=...)`;
      default `default_saves(t0, t1)`: t0 and 256 log-spaced times.
    - `event`: a `diffrax.Event` ending the solve; `stop_below`: end it where F falls to this
      level (the crossing located by Newton's method on the dense output). The trajectory then
      holds the saves before the stop and ends with the state at it (`info['stopped_at']`).
      Not for an `Ensemble`.
    - `max_steps`: the step budget. `progress`: a progress bar (diffrax's tqdm meter).
    - `throw`: raise `SolverError` if the solve fails (default); with False return what was
      computed, with `traj.result` saying how it ended.
    - `dtype`: 'float64' (default) or 'float32' (the whole solve; recorded in `info`).
    - `ensemble` (for an `Ensemble`): how the members are solved. 'map' (one after another in
      one compiled program, each with its own steps; an integer g maps over groups of g vmapped
      members), 'vmap' (one batched loop, each member its own step size, the batch running until
      its slowest member is done), 'lockstep' (one system: every member takes the steps of the
      hardest one), or 'auto' (default: on a CPU 'map' over groups sized to the members'
      parameters, on an accelerator 'vmap'; see `ENSEMBLE_STRATEGIES` in `gradflow._solve` for
      the measurements behind it).
    - `clock`: the variable the solver steps in: 'linear' (default, t) or 'log' (s = log(1 + t),
      t0 ≥ 0: dθ/ds = (1 + t) θ'(t) = −e^s G⁻¹∇F(θ)), for flows whose solution changes on the
      time scale t itself, e.g. a loss without minimiser (logistic on separable data, |θ| ~ log t):
      there the steps in s stay of order one and a decade of t costs a fixed number of steps.
      Tolerances then bound the local error per step in s; save times and the returned times are t.

    **Returns:** a `Trajectory`.

    **Raises:** `ConfigError` for invalid input (a non-finite initial F included, before any
    compilation); `SolverError` if the solve stops early (step budget, step size collapsing,
    non-finite values), carrying the trajectory up to the last accepted state.
    """
    problem, params, options, info, is_ensemble = settings.setup(
        model, data, t0=t0, t1=t1, event=event, progress=bool(progress), clock=clock
    )
    ts = default_saves(t0, t1) if saveat is None else check_saves(saveat, t0, t1)
    problem.check_finite_start(params, is_ensemble)
    traj, _, _ = run_solve(problem, params, ts, options, info, None, is_ensemble, throw=throw)
    return traj


def run_solve(problem, params, ts, options, info, carry, ensemble, *, throw=True):
    """Solve on [info['t0'], info['t1']] saving at `ts`; returns (trajectory, carry, final state)
    where the final state and the carry continue the flow exactly.

    The trajectory holds the saves the solve reached and, if it ended early (event, failure),
    the final state at its true time. Raises `SolverError` on failure when `throw`.
    """
    dtype = problem.dtype
    t0, t1 = solver_time([info["t0"], info["t1"]], options.clock)
    out, extra = solve(
        problem,
        params,
        jnp.asarray(t0, dtype),
        jnp.asarray(t1, dtype),
        jnp.asarray(solver_time(ts, options.clock), dtype),
        options,
        carry,
        ensemble,
    )
    # XLA options beyond the defaults change the rounding: the record says which were used
    # (only when there are some; older records lack the key)
    if extra:
        info = {**info, "compiler_options": extra}
    times, ys, loss, gnorm, (steps, accepted, rejected, counted), result, new_carry = out
    names = result_names(result)
    times = flow_time(np.asarray(times), options.clock)
    loss, gnorm = np.asarray(loss), np.asarray(gnorm)
    # diffrax writes the saves it reached, then the final state (its `t1` save), then inf: the
    # final state is the last finite time.
    last = np.sum(np.isfinite(times), axis=-1) - 1
    rows = _rows(times, loss, ys, last, names, ensemble)
    evals, exact = evaluations(
        options.solver, steps, rejected, np.asarray(counted) + (2 if carry is None else 0)
    )
    stats = {
        "num_steps": np.asarray(steps).tolist(),
        "num_accepted_steps": np.asarray(accepted).tolist(),
        "num_rejected_steps": np.asarray(rejected).tolist(),
        "function_evaluations": evals.tolist(),
        "function_evaluations_exact": exact,
    }
    stopped = bool(np.all(names == "event_occurred"))
    info = {
        **info,
        "result": names.tolist() if ensemble else str(names),
        "stopped_at": float(times[last]) if stopped and not ensemble else None,
    }
    pick = lambda a: jnp.take(a, rows, axis=1 if ensemble else 0)
    row_times = times[0, rows] if ensemble else times[rows]
    traj = Trajectory(
        jnp.asarray(row_times),
        jtu.tree_map(pick, ys),
        problem.static,
        pick(jnp.asarray(loss)),
        pick(jnp.asarray(gnorm)),
        problem.metric_masses,
        stats,
        info,
    )
    if throw and failed(traj):
        raise SolverError(failure_message(problem, traj, info), traj)
    if ensemble:
        final = jtu.tree_map(lambda a: a[np.arange(a.shape[0]), last], ys)
    else:
        final = jtu.tree_map(lambda a: a[int(last)], ys)
    return traj, new_carry, final


def failed(traj: Trajectory) -> bool:
    """Whether a solve failed (for an ensemble: any member)."""
    return not np.all(np.isin(np.atleast_1d(traj.result), ("successful", "event_occurred")))


def _rows(times, loss, ys, last, names, ensemble) -> np.ndarray:
    """Indices of the rows to keep: the saves every member reached (those before its final
    state), then, for a single solve that ended early, the final state unless it repeats the last
    save. Rows whose state or F is not finite are never kept (accepted states are finite: this is
    a guard)."""
    finite = np.isfinite(loss)
    for leaf in jtu.tree_leaves(ys):
        leaf = np.asarray(leaf)
        finite &= np.all(np.isfinite(leaf.reshape(*leaf.shape[: loss.ndim], -1)), axis=-1)
    n_saves = int(np.min(last))
    ok = np.all(np.atleast_2d(finite)[:, :n_saves], axis=0)
    prefix = int(np.argmin(ok)) if not ok.all() else n_saves  # never past a gap
    rows = np.arange(prefix)
    if ensemble:
        return rows
    last = int(last)
    if (
        str(names) != "successful"
        and finite[last]
        and (rows.size == 0 or times[last] > times[rows[-1]])
    ):
        rows = np.append(rows, last)
    return rows


def failure_message(problem, traj, info) -> str:
    """One line: why and where the solve stopped, the stiffness there, and what to try."""
    ensemble = traj.ensemble_size is not None
    bad = [str(n) for n in np.atleast_1d(traj.result) if n not in ("successful", "event_occurred")]
    reason = {
        "max_steps_reached": f"max_steps={info['max_steps']} reached",
        "dt_min_reached": "the step size collapsed (trial steps non-finite or far too stiff)",
    }.get(bad[0], bad[0].replace("_", " "))
    t_last = float(traj.ts[-1]) if len(traj) else info["t0"]
    where = f"{reason} at t={t_last:g} before t1={info['t1']:g}"
    if ensemble:
        where += f" ({len(bad)} member(s) failed)"
    advice = (
        "try solver='rkc' (large models) or 'kvaerno5' (small ones), looser tolerances, "
        "or a larger max_steps"
    )
    if ensemble or not len(traj):
        return f"{where}; {advice}"
    rho = float(largest_curvature(problem, jtu.tree_map(lambda a: a[-1], traj.params)))
    if not np.isfinite(rho):
        return f"{where}; the vector field is not finite near the last state ({advice})"
    h = EXPLICIT_STABILITY / rho if rho > 0 else np.inf
    return (
        f"{where}; the flow's Jacobian has spectral radius ≈ {rho:.3g} there, so an explicit "
        f"method's steps are limited to ≈ {h:.3g} (≈ {(info['t1'] - t_last) / h:.3g} more steps "
        f"to t1): {advice}"
    )
