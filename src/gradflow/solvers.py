"""Following the velocity field: `flow` (adaptive ODE integration) and `descent` (optax).

`flow` integrates θ' = v(θ) = −G(θ)⁻¹ ∇F(θ) with diffrax under error control; `descent` takes
discrete steps θ_{k+1} = θ_k + η · optimiser(v(θ_k)), the baseline whose k-th iterate approximates
θ(kη) to first order in η. Both return a `Trajectory`. The whole solve is one compiled XLA loop:
the compiled function is cached on the shapes and the static configuration only, so a new dataset
or initial model of the same shapes, new tolerances, a new horizon or a new step size reuse it.

An ensemble (`ensemble(make_model, keys)`) flows in one compiled, vmapped solve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optax
import optimistix as optx

from ._chebyshev import RungeKuttaChebyshev
from ._errors import ConfigError, DivergenceError, SolverError
from ._validation import check, check_choice
from .data import Dataset
from .geometry import as_geometry
from .objective import make_objective, trainable_masses, value_and_grad
from ._trajectory import Trajectory

SOLVERS: dict[str, Callable[[], diffrax.AbstractSolver]] = {
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
    "kvaerno5": diffrax.Kvaerno5,
    "rkc": RungeKuttaChebyshev,
}

EVENT_OCCURRED = diffrax.RESULTS.event_occurred._value

OPTIMIZERS: dict[str, Callable[[float], optax.GradientTransformation]] = {
    "gd": lambda lr: optax.sgd(lr),
    "momentum": lambda lr: optax.sgd(lr, momentum=0.9),
    "nesterov": lambda lr: optax.sgd(lr, momentum=0.9, nesterov=True),
    "adam": lambda lr: optax.adam(lr),
}


class Ensemble(eqx.Module):
    """A batch of initial models, one per key, stacked along a leading axis of every array leaf.

    `gf.flow` and `gf.descent` run an ensemble in one compiled solve (vmap), and return a
    `Trajectory` whose series carry a leading member axis.
    """

    models: eqx.Module
    size: int = eqx.field(static=True)

    def member(self, e: int):
        return jtu.tree_map(lambda a: a[e] if eqx.is_array(a) else a, self.models)


def ensemble(make_model: Callable, keys) -> Ensemble:
    """Build an `Ensemble` by calling `make_model(key)` for each key (vmapped, one trace).

    Example: `gf.ensemble(lambda k: gf.models.DeepLinear([4, 4, 4], k, 1e-2), jr.split(key, 64))`.
    """
    keys = jnp.asarray(keys)
    check(keys.ndim >= 1 and keys.shape[0] >= 1, "keys", keys.shape, "a non-empty batch of keys")
    return Ensemble(eqx.filter_vmap(make_model)(keys), int(keys.shape[0]))


# ---------------------------------------------------------------------------------------------
# validation shared by flow and descent


def _prepare(model, data: Dataset, geometry, l2):
    """Validate, split the model, and build what the compiled solve needs."""
    is_ensemble = isinstance(model, Ensemble)
    single = model.member(0) if is_ensemble else model
    if not isinstance(data, Dataset):
        raise ConfigError("data", type(data).__name__, "a gradflow.data.Dataset")
    if single.in_dim != data.in_dim or single.out_dim != data.out_dim:
        raise ConfigError(
            "data",
            f"(in_dim={data.in_dim}, out_dim={data.out_dim})",
            f"dimensions matching the model's (in_dim={single.in_dim}, out_dim={single.out_dim})",
        )
    geometry = as_geometry(geometry)
    geometry.check_model(single)
    check(np.isfinite(l2) and l2 >= 0, "l2", l2, "a non-negative number")
    masses = trainable_masses(single)
    metric_masses = geometry.metric_masses(masses)
    filter_spec = single.trainable()
    if is_ensemble:
        params, static = eqx.partition(model.models, filter_spec)
    else:
        params, static = eqx.partition(model, filter_spec)
    stats = single.statistics(data)
    return is_ensemble, geometry, params, static, masses, metric_masses, stats


def _metrics(static, masses, metric_masses, geometry, l2, stats):
    """(params) → (F, |∇F|_G) with |∇F|_G² = Σ |g|²/m (the flow's metric)."""
    vg = value_and_grad(static, masses, l2)

    def metrics(params):
        f, g = vg(params, stats)
        sq = jtu.tree_map(lambda gi, m: jnp.sum(gi**2 / m), g, metric_masses)
        return f, jnp.sqrt(sum(jtu.tree_leaves(sq)))

    return metrics


def _finite_prefix(loss: np.ndarray) -> int:
    """Number of leading saved points at which every member's loss is finite."""
    ok = np.all(np.isfinite(np.atleast_2d(loss)), axis=0)
    return int(np.argmin(ok)) if not ok.all() else len(ok)


# ---------------------------------------------------------------------------------------------
# flow


@eqx.filter_jit
def _flow_solve(
    params,
    static,
    masses,
    metric_masses,
    stats,
    ts,
    t0,
    t1,
    rtol,
    atol,
    l2,
    geometry,
    solver,
    max_steps,
    progress,
    is_ensemble,
    pcoeff,
    icoeff,
    stop_below,
):
    vg = value_and_grad(static, masses, l2)

    def vector_field(t, p, args):
        _, g = vg(p, args)
        return geometry.velocity(g, masses)

    metrics = _metrics(static, masses, metric_masses, geometry, l2, stats)
    stopping = stop_below is not None
    if stopping:
        objective = make_objective(static, masses, l2)
        # F − level is checked after every accepted step (one forward pass); at a sign change
        # the crossing time is found by Newton on the step's dense output, and the solve ends
        # there.
        event = diffrax.Event(
            lambda t, y, args, **kw: objective(y, args) - stop_below,
            root_finder=optx.Newton(rtol=1e-10, atol=1e-10),
        )
    else:
        event = None

    def solve_one(p0):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(vector_field),
            solver,
            t0,
            t1,
            None,
            p0,
            args=stats,
            # RKC counts its own evaluations (its stage number varies per step).
            saveat=diffrax.SaveAt(
                ts=ts, t1=stopping, solver_state=isinstance(solver, RungeKuttaChebyshev)
            ),
            stepsize_controller=diffrax.PIDController(
                rtol=rtol, atol=atol, pcoeff=pcoeff, icoeff=icoeff
            ),
            max_steps=max_steps,
            throw=False,
            progress_meter=diffrax.TqdmProgressMeter() if progress else diffrax.NoProgressMeter(),
            event=event,
        )
        # Saves after an event are inf; metrics of them are discarded by `flow`.
        loss, gnorm = jax.vmap(metrics)(sol.ys)
        return (
            sol.ys,
            loss,
            gnorm,
            sol.stats["num_steps"],
            sol.stats["num_accepted_steps"],
            sol.stats["num_rejected_steps"],
            sol.result._value,
            sol.ts,
            sol.solver_state[3] if isinstance(solver, RungeKuttaChebyshev) else None,
        )

    if is_ensemble:
        return jax.vmap(solve_one)(params)
    return solve_one(params)


def _evaluations(solver, num_steps, num_rejected, counted) -> tuple[np.ndarray, bool]:
    """Vector-field evaluations of a solve, and whether the count is exact.

    Runge–Kutta: each attempted step (accepted or rejected) costs `stages − fsal` new evaluations,
    plus one at t0 and two for the initial step-size selection. For implicit solvers this counts
    each stage once: diffrax does not expose the Newton iterations, so it is a lower bound.
    RKC: its own count over accepted steps (+ 2 for the initial step size) is exact; a rejected
    step's stage number is lost with the step, so those are estimated at the accepted mean.
    """
    num_steps = np.asarray(num_steps)
    if isinstance(solver, RungeKuttaChebyshev):
        counted, rejected = np.asarray(counted), np.asarray(num_rejected)
        accepted = np.maximum(num_steps - rejected, 1)
        estimate = counted + 2 + np.rint(rejected * counted / accepted).astype(counted.dtype)
        return estimate, bool(np.all(rejected == 0))
    tableau = getattr(solver, "tableau", None)
    if tableau is None:  # a user's diffrax solver that is not a Runge–Kutta method
        return np.full_like(num_steps, -1), False
    return num_steps * (tableau.num_stages - int(tableau.fsal)) + 3, not tableau.implicit


def flow(
    model,
    data: Dataset,
    t1: float,
    *,
    geometry="euclidean",
    l2: float = 0.0,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    solver="tsit5",
    saveat: Sequence[float] | None = None,
    t0: float = 0.0,
    max_steps: int = 1_000_000,
    progress: bool = False,
    controller: str = "integral",
    stop_below: float | None = None,
) -> Trajectory:
    """Integrate the gradient flow θ' = −G⁻¹ ∇F(θ) from `model` on [t0, t1].

    F = risk + l2 · ∫|θ|² dμ (see `gradflow.objective`); G is the geometry's metric (see
    `gradflow.geometry`). The integration is error-controlled (diffrax PID controller with the
    given `rtol`, `atol`), one compiled XLA loop.

    **Arguments:**

    - `model`: an `AbstractModel`, or an `Ensemble` (from `gf.ensemble`) to flow a batch at once.
    - `data`: a `Dataset` whose dimensions match the model.
    - `t1`: final time (> t0).
    - `geometry`: 'euclidean', 'wasserstein', 'conditional_wasserstein' or an `AbstractGeometry`.
    - `l2`: λ ≥ 0 in the penalty λ ∫|θ|² dμ.
    - `rtol`, `atol`: tolerances (> 0).
    - `solver`: 'tsit5' (default), 'dopri5', 'dopri8', 'kvaerno5' (implicit, dense Newton: small
      stiff problems), 'rkc' (`RungeKuttaChebyshev`: explicit, second order, stable on long real
      intervals; for the stiff tails of large gradient flows, whose Jacobian spectrum is real) or
      a diffrax solver object.
    - `saveat`: times to save at (in [t0, t1], increasing); default: t0 and 256 log-spaced times
      from (t1 − t0)·1e-4 to t1.
    - `max_steps`: the solver's step budget; reaching it raises `SolverError`.
    - `progress`: show a progress bar (diffrax's tqdm meter).
    - `controller`: 'integral' (the default I-controller) or 'pid' (pcoeff = icoeff = 0.3,
      smoother step sizes on stiff problems).
    - `stop_below`: stop when F falls to `stop_below` (checked after each step, one forward pass;
      the crossing time is then located on the step's dense output by Newton's method). The
      trajectory holds the saves before that time and ends with the state at it
      (`info['stopped_at']`; None if F stayed above). Not for an `Ensemble`, whose members would
      stop at different times.

    **Returns:** a `Trajectory`.

    **Raises:** `ConfigError` for invalid input; `DivergenceError` if the state becomes non-finite
    and `SolverError` if the solve stops early, both carrying the finite part of the trajectory.
    """
    check(np.isfinite(t0), "t0", t0, "a finite number")
    check(np.isfinite(t1) and t1 > t0, "t1", t1, f"a finite number > t0 = {t0}")
    check(np.isfinite(rtol) and rtol > 0, "rtol", rtol, "a positive number")
    check(np.isfinite(atol) and atol > 0, "atol", atol, "a positive number")
    check(
        isinstance(max_steps, int | np.integer) and max_steps >= 1,
        "max_steps",
        max_steps,
        "a positive integer",
    )
    check_choice("controller", controller, ("integral", "pid"))
    if stop_below is not None:
        check(np.isfinite(stop_below), "stop_below", stop_below, "a finite number or None")
        check(
            not isinstance(model, Ensemble),
            "stop_below",
            stop_below,
            "None for an Ensemble (members would stop at different times)",
        )
    if isinstance(solver, str):
        check_choice("solver", solver, SOLVERS)
        solver_name, solver = solver, SOLVERS[solver]()
    elif isinstance(solver, diffrax.AbstractSolver):
        solver_name = type(solver).__name__.lower()
    else:
        raise ConfigError("solver", solver, "one of " + ", ".join(map(repr, SOLVERS)))
    if saveat is None:
        ts = np.concatenate([[t0], t0 + np.geomspace((t1 - t0) * 1e-4, t1 - t0, 256)])
    else:
        ts = np.asarray(saveat, dtype=float).reshape(-1)
        check(
            ts.size >= 1
            and np.all(np.isfinite(ts))
            and np.all(np.diff(ts) > 0)
            and ts[0] >= t0
            and ts[-1] <= t1,
            "saveat",
            f"{ts.size} times in [{ts.min() if ts.size else None}, {ts.max() if ts.size else None}]",
            f"increasing finite times within [t0, t1] = [{t0}, {t1}]",
        )
    is_ensemble, geometry, params, static, masses, metric_masses, stats = _prepare(
        model, data, geometry, l2
    )
    pcoeff, icoeff = (0.0, 1.0) if controller == "integral" else (0.3, 0.3)
    f64 = lambda v: jnp.asarray(v, dtype=float)
    ys, loss, gnorm, steps, accepted, rejected, result, saved_ts, counted = _flow_solve(
        params,
        static,
        masses,
        metric_masses,
        stats,
        f64(ts),
        f64(t0),
        f64(t1),
        f64(rtol),
        f64(atol),
        f64(l2),
        geometry,
        solver,
        int(max_steps),
        bool(progress),
        is_ensemble,
        pcoeff,
        icoeff,
        None if stop_below is None else f64(stop_below),
    )
    stopped_at = None
    result = np.asarray(result)
    if stop_below is not None:
        # diffrax returns the saves up to the end of the solve, then the final state, then inf.
        saved_ts = np.asarray(saved_ts)
        index = np.nonzero(np.isfinite(saved_ts))[0]
        if result == EVENT_OCCURRED:
            result = np.zeros_like(result)
            stopped_at = float(saved_ts[index[-1]])
            if index.size > 1 and saved_ts[index[-2]] >= stopped_at:
                index = np.delete(index, -2)  # the stop fell on a save: keep it once
        else:
            index = index[:-1]  # no stop: the final state repeats the last save (or is extra)
        ts = saved_ts[index]
        ys = jtu.tree_map(lambda a: a[index], ys)
        loss, gnorm = loss[index], gnorm[index]
    steps_np = np.asarray(steps)
    evaluations, exact = _evaluations(solver, steps_np, rejected, counted)
    stats_out = {
        "num_steps": steps_np.tolist(),
        "num_accepted_steps": np.asarray(accepted).tolist(),
        "num_rejected_steps": np.asarray(rejected).tolist(),
        "function_evaluations": evaluations.tolist(),
        "function_evaluations_exact": exact,
    }
    info = {
        "kind": "flow",
        "solver": solver_name,
        "geometry": geometry.name,
        "rtol": float(rtol),
        "atol": float(atol),
        "l2": float(l2),
        "t0": float(t0),
        "t1": float(t1),
        "max_steps": int(max_steps),
        "controller": controller,
        "stop_below": None if stop_below is None else float(stop_below),
        "stopped_at": stopped_at,
    }
    traj = Trajectory(jnp.asarray(ts), ys, static, loss, gnorm, metric_masses, stats_out, info)
    _raise_if_failed(traj, result, steps_np, max_steps)
    return traj


def _raise_if_failed(traj: Trajectory, result: np.ndarray, steps: np.ndarray, max_steps: int):
    loss = np.asarray(traj.loss)
    n_ok = _finite_prefix(loss)
    finite_state = all(
        bool(np.all(np.isfinite(np.asarray(a)))) for a in jtu.tree_leaves(traj.params)
    )
    if bool(np.all(result == 0)) and n_ok == len(traj) and finite_state:
        return
    partial = traj.truncate(max(n_ok, 1))
    t_last = float(traj.ts[max(n_ok, 1) - 1])
    if bool(np.any(steps >= max_steps)):
        raise SolverError(
            f"max_steps={max_steps} reached before t1={traj.info['t1']:g} (last saved t={t_last:g}); "
            "the flow may be stiff: try solver='rkc' (or 'kvaerno5' for small models), looser "
            "tolerances or a larger max_steps",
            partial,
        )
    raise DivergenceError(
        f"the state became non-finite after t={t_last:g} (last finite save); "
        "reduce the initial scale, the step, or tighten the tolerances",
        partial,
    )


# ---------------------------------------------------------------------------------------------
# descent


@eqx.filter_jit
def _descent_run(
    params,
    static,
    masses,
    metric_masses,
    stats,
    lr,
    l2,
    geometry,
    optimizer_name,
    optimizer,
    n_chunks,
    save_every,
    remainder,
    progress,
    is_ensemble,
):
    vg = value_and_grad(static, masses, l2)
    metrics = _metrics(static, masses, metric_masses, geometry, l2, stats)
    opt = optimizer if optimizer is not None else OPTIMIZERS[optimizer_name](1.0)

    def step(carry, _=None):
        p, state = carry
        _, g = vg(p, stats)
        # The geometry's (negative) velocity is the preconditioned gradient: −v = G⁻¹∇F.
        direction = jtu.tree_map(jnp.negative, geometry.velocity(g, masses))
        if optimizer is None:
            # Built-in optimisers are built with lr = 1 and scaled here, so that a new lr does
            # not recompile.
            updates, state = opt.update(direction, state, p)
            updates = jtu.tree_map(lambda u: lr * u, updates)
        else:
            updates, state = opt.update(direction, state, p)
        return (optax.apply_updates(p, updates), state), None

    def run_one(p0):
        def chunk(carry, i):
            carry = jax.lax.fori_loop(0, save_every, lambda _, c: step(c)[0], carry)
            if progress:
                jax.debug.callback(_descent_progress, i + 1, n_chunks)
            return carry, carry[0]

        carry0 = (p0, opt.init(p0))
        carry, saved = jax.lax.scan(chunk, carry0, jnp.arange(n_chunks))
        ys = jtu.tree_map(lambda a, b: jnp.concatenate([a[None], b]), p0, saved)
        if remainder:
            carry = jax.lax.fori_loop(0, remainder, lambda _, c: step(c)[0], carry)
            ys = jtu.tree_map(lambda a, b: jnp.concatenate([a, b[None]]), ys, carry[0])
        loss, gnorm = jax.vmap(metrics)(ys)
        return ys, loss, gnorm

    if is_ensemble:
        return jax.vmap(run_one)(params)
    return run_one(params)


_PROGRESS = {}


def _descent_progress(i, n):
    from tqdm.auto import tqdm

    i, n = int(i), int(n)
    bar = _PROGRESS.get("bar")
    if bar is None or bar.total != n or i == 1:
        if bar is not None:
            bar.close()
        bar = _PROGRESS["bar"] = tqdm(total=n, desc="descent", unit="save")
    bar.update(1)
    if i == n:
        bar.close()
        _PROGRESS.pop("bar", None)


def descent(
    model,
    data: Dataset,
    steps: int,
    lr: float,
    *,
    optimizer="gd",
    geometry="euclidean",
    l2: float = 0.0,
    save_every: int | None = None,
    progress: bool = False,
) -> Trajectory:
    """Discrete descent θ_{k+1} = θ_k − η · optimiser(G⁻¹∇F(θ_k)), the baseline for `flow`.

    With `optimizer='gd'` this is gradient descent in the chosen geometry, whose iterate k
    approximates the flow at time t = kη with an error O(η); the trajectory's times are t = kη.

    **Arguments:**

    - `model`, `data`, `geometry`, `l2`: as for `flow`.
    - `steps`: number of steps (≥ 1). `lr`: the step η (> 0).
    - `optimizer`: 'gd' (default), 'momentum', 'nesterov', 'adam', or an
      `optax.GradientTransformation` (then `lr` only sets the reported times t = kη).
    - `save_every`: save every this many steps (default: steps // 200, at least 1); the final
      step is always saved.
    - `progress`: show a progress bar.

    **Raises:** `ConfigError` for invalid input, `DivergenceError` if the iterates become
    non-finite (the trajectory up to the last finite save is attached).
    """
    check(isinstance(steps, int | np.integer) and steps >= 1, "steps", steps, "a positive integer")
    check(np.isfinite(lr) and lr > 0, "lr", lr, "a positive number")
    if isinstance(optimizer, str):
        check_choice("optimizer", optimizer, OPTIMIZERS)
        name, opt_obj = optimizer, None
    elif isinstance(optimizer, optax.GradientTransformation):
        name, opt_obj = "custom", optimizer
    else:
        raise ConfigError("optimizer", optimizer, "one of " + ", ".join(map(repr, OPTIMIZERS)))
    if save_every is None:
        save_every = max(1, steps // 200)
    check(
        isinstance(save_every, int | np.integer) and save_every >= 1,
        "save_every",
        save_every,
        "a positive integer",
    )
    save_every = min(int(save_every), int(steps))
    n_chunks, remainder = divmod(int(steps), save_every)
    is_ensemble, geometry, params, static, masses, metric_masses, stats = _prepare(
        model, data, geometry, l2
    )
    ys, loss, gnorm = _descent_run(
        params,
        static,
        masses,
        metric_masses,
        stats,
        jnp.asarray(lr, dtype=float),
        jnp.asarray(l2, dtype=float),
        geometry,
        name,
        opt_obj,
        n_chunks,
        save_every,
        remainder,
        bool(progress),
        is_ensemble,
    )
    step_idx = np.concatenate([np.arange(n_chunks + 1) * save_every, [steps] if remainder else []])
    stats_out = {"num_steps": int(steps), "function_evaluations": int(steps)}
    info = {
        "kind": "descent",
        "optimizer": name,
        "geometry": geometry.name,
        "lr": float(lr),
        "l2": float(l2),
        "steps": int(steps),
        "save_every": int(save_every),
        "t1": float(steps * lr),
    }
    traj = Trajectory(
        jnp.asarray(step_idx * lr), ys, static, loss, gnorm, metric_masses, stats_out, info
    )
    _raise_if_failed(traj, np.zeros(1), np.zeros(1), 1)
    return traj
