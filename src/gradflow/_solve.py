"""The compiled solve behind `gf.flow`: one `diffrax.diffeqsolve` of θ' = −G⁻¹∇F(θ).

`solve` is compiled once per shapes and static options (`SolveOptions`), so new data, a new
initial model, new tolerances, horizon or save times reuse the compiled loop. Its carry
(`SolveCarry`) holds the solver's and controller's state so that `flow_in_pieces` continues a
solve exactly where a piece ended. How an ensemble is batched (`ensemble_strategy`) and how a
small solve is compiled on a CPU (`compiler_options`) are per-backend choices made here, where the
loop is built.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jax.flatten_util import ravel_pytree

from ._clock import on_clock
from ._problem import GradientFlowProblem
from ._programs import stored_jit
from ._solvers import AbstractCountingSolver, proposed_step
from ._validation import check_choice, integer

# diffrax's outcomes, by their public names, for `Trajectory.result`.
RESULT_NAMES = (
    "successful",
    "event_occurred",
    "max_steps_reached",
    "dt_min_reached",
    "max_steps_rejected",
    "nonlinear_divergence",
    "nonlinear_max_steps_reached",
    "nonfinite",
    "nonfinite_input",
    "singular",
    "breakdown",
    "stagnation",
    "conlim",
    "internal_error",
)


class SolveOptions(eqx.Module):
    """Everything about a solve that is not the problem, the state or the time interval.

    Numbers that change from run to run (tolerances, the stop level) are arrays, so that changing
    them does not recompile the solve.
    """

    solver: diffrax.AbstractSolver
    controller: diffrax.AbstractStepSizeController
    event: diffrax.Event | None
    stop_below: jax.Array | None
    max_steps: int = eqx.field(static=True)
    progress: bool = eqx.field(static=True)
    ensemble: str = eqx.field(static=True, default="vmap")
    group: int = eqx.field(static=True, default=1)
    clock: str = eqx.field(static=True, default="linear")


def _above_level(t, y, args, **kwargs):
    """F(y) − level: the stop event's condition (a sign change ends the solve)."""
    problem, level = args
    return problem.objective(y) - level


def _velocity(t, y, args):
    problem, _ = args
    return problem.velocity(y)


def _velocities(t, y, args):
    """The vector field of a whole ensemble as one system (members share the steps)."""
    problem, _ = args
    return problem.over_members(lambda member, p: member.velocity(p), y)


# How an ensemble is solved (`flow(..., ensemble=...)`):
# - "vmap": one batched loop; every member keeps its own step size, but the loop runs until the
#   slowest member is done and every iteration pays for the whole batch (finished members are
#   masked, not skipped).
# - "map": the members one after another inside one compiled program (`jax.lax.map`, `group`
#   members vmapped at a time); each its own step size, no masked work, one member's state in
#   cache at a time.
# - "lockstep": the members as one ODE system; one step-size controller for all (its error
#   norm is the RMS over every member's), so every member takes steps set by the hardest ones.
# - "auto": per backend. On an accelerator "vmap" (thousands of members fill the device: 1,024
#   seeds cost ~10x one seed on an H200). On a CPU "map" over vmapped groups whose parameters
#   together stay within `CPU_GROUP_BYTES` (`cpu_group`): vmapping a few small members
#   vectorises their small matrix products, but a batch whose stacked solver stages outgrow the
#   core's cache, and which steps until its slowest member is done, is slower than the members
#   one after another. Measured by benchmarks/ensemble.py (64 seeds of a depth-4 linear network,
#   idle 2-core EPYC, 2026-12-07): at width 16 (8 KB of parameters per member) vmap 0.60x,
#   groups of 4 0.67x, one at a time 0.84x of 64 single solves; at width 32 (32 KB) vmap 1.73x,
#   groups of 4 1.12x, one at a time 0.91x. 48 KB per group gives 6 at width 16 and 1 at 32.
ENSEMBLE_STRATEGIES = ("auto", "vmap", "map", "lockstep")

CPU_GROUP_BYTES = 48 * 1024
CPU_GROUP_MAX = 64


def cpu_group(member_bytes: int) -> int:
    """Members per vmapped group on a CPU: as many as fit in `CPU_GROUP_BYTES` of parameters,
    at least 1 and at most `CPU_GROUP_MAX`."""
    return max(1, min(CPU_GROUP_MAX, CPU_GROUP_BYTES // max(1, int(member_bytes))))


def ensemble_strategy(name, group: int = 1, member_bytes: int = 0) -> tuple[str, int]:
    """(strategy, group size) that `name` ('auto', a strategy, or an integer group size for
    'map') stands for on the current backend, for members of `member_bytes` bytes of
    parameters each."""
    if isinstance(name, int | np.integer) and not isinstance(name, bool):
        return "map", integer("ensemble", name, minimum=1)
    check_choice("ensemble", name, ENSEMBLE_STRATEGIES)
    if name != "auto":
        return name, group
    if jax.default_backend() == "cpu":
        return "map", cpu_group(member_bytes)
    return "vmap", 1


def _flat_state(solver, params) -> bool:
    """Whether the solve runs on the parameters raveled into one vector (`ravel_pytree`).

    An explicit Runge-Kutta step is the same elementwise arithmetic on one vector as on the
    leaves, but each stage combination and the error norm is then one kernel instead of one per
    leaf: XLA's cost per kernel is most of a step for small models (deep-linear quick, 3 leaves
    of 4x4: 1.65 s instead of 1.92 s for 93k tsit5 steps, the same steps and there bitwise the
    same states; 2026-12-07, 2-core EPYC). In general the two differ by round-off: the error
    norm sums the leaves in another order. Leaves of one dtype only (raveling would cast others);
    other solvers keep the leaves (an implicit solver's linear solves and the Chebyshev solver's
    random power-iteration start depend on them).
    """
    leaves = jax.tree_util.tree_leaves(params)
    dtypes = {jnp.result_type(leaf) for leaf in leaves}
    return isinstance(solver, diffrax.AbstractERK) and len(leaves) > 1 and len(dtypes) == 1


def _on_flat(vector_field, unravel):
    """`vector_field` on the raveled state: unravel, evaluate, ravel."""

    def flat(t, y, args):
        return ravel_pytree(vector_field(t, unravel(y), args))[0]

    return flat


def _event_on_flat(event: diffrax.Event, unravel) -> diffrax.Event:
    """`event` with each condition function evaluated on the unraveled state."""

    def condition(cond_fn):
        return lambda t, y, args, **kwargs: cond_fn(t, unravel(y), args, **kwargs)

    cond_fn = jax.tree_util.tree_map(condition, event.cond_fn, is_leaf=callable)
    return diffrax.Event(cond_fn, event.root_finder, event.direction)


class SolveCarry(eqx.Module):
    """What a continued solve needs besides the parameters: the solver's state (e.g. a carried
    stage), the controller's state and its proposed next step, and whether a jump was made."""

    solver_state: object
    controller_state: object
    made_jump: object
    dt: jax.Array


def solve_program(
    problem: GradientFlowProblem,
    params,
    t0,
    t1,
    ts,
    options: SolveOptions,
    carry: SolveCarry | None,
    ensemble: bool,
):
    """One compiled solve of θ' = problem.velocity(θ) on [t0, t1], saving at `ts` and at the end.

    Returns (times, states, F, |∇F|_G at them, statistics, result, carry); the last row is the
    final state (at t1, the event, or the last accepted step).
    """
    term = diffrax.ODETerm(on_clock(_velocity, options.clock))
    event = options.event
    if options.stop_below is not None:
        # F − level is checked after every accepted step (one forward pass); at a sign change the
        # crossing time is found by Newton's method on the step's dense output.
        event = diffrax.Event(_above_level, root_finder=optx.Newton(rtol=1e-10, atol=1e-10))
    saveat = diffrax.SaveAt(
        ts=ts, t1=True, solver_state=True, controller_state=True, made_jump=True
    )
    meter = diffrax.TqdmProgressMeter() if options.progress else diffrax.NoProgressMeter()

    def one(p0, c, stats=None, term=term, problem=problem):
        if stats is not None:  # this member's own data
            problem = problem.member(stats)
        y0, unravel, stop = p0, None, event
        if _flat_state(options.solver, p0):
            y0, unravel = ravel_pytree(p0)
            term = diffrax.ODETerm(_on_flat(term.vector_field, unravel))
            stop = None if event is None else _event_on_flat(event, unravel)
        sol = diffrax.diffeqsolve(
            term,
            options.solver,
            t0,
            t1,
            None if c is None else c.dt,
            y0,
            args=(problem, options.stop_below),
            saveat=saveat,
            stepsize_controller=options.controller,
            max_steps=options.max_steps,
            throw=False,
            progress_meter=meter,
            event=stop,
            solver_state=None if c is None else c.solver_state,
            controller_state=None if c is None else c.controller_state,
            made_jump=None if c is None else c.made_jump,
        )
        # Saves the solve did not reach hold inf; their metrics are discarded by the caller.
        joint = options.ensemble == "lockstep" and ensemble  # each saved state is a batch
        if joint:
            metrics = lambda ys: problem.over_members(lambda m, p: m.metrics(p), ys)  # noqa: E731
        else:
            metrics = problem.metrics
        ys = sol.ys if unravel is None else jax.vmap(unravel)(sol.ys)
        loss, gnorm = jax.vmap(metrics)(ys)
        new_carry = SolveCarry(
            sol.solver_state,
            sol.controller_state,
            sol.made_jump,
            proposed_step(sol.controller_state),
        )
        counted = (
            options.solver.evaluations(sol.solver_state)
            - (0 if c is None else options.solver.evaluations(c.solver_state))
            if isinstance(options.solver, AbstractCountingSolver)
            else jnp.zeros((), jnp.int64)
        )
        stats = (
            sol.stats["num_steps"],
            sol.stats["num_accepted_steps"],
            sol.stats["num_rejected_steps"],
            counted,
        )
        return sol.ts, ys, loss, gnorm, stats, sol.result, new_carry

    if not ensemble:
        return one(params, carry)
    if options.ensemble == "lockstep":
        times, ys, loss, gnorm, stats, result, new_carry = one(
            params, carry, term=diffrax.ODETerm(on_clock(_velocities, options.clock))
        )
        size = jax.tree_util.tree_leaves(params)[0].shape[0]
        spread = lambda a: jnp.broadcast_to(a, (size,) + jnp.shape(a))
        # (time, member, ...) → (member, time, ...), the layout of the other strategies
        ys = jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), ys)
        loss, gnorm = loss.T, gnorm.T
        times = spread(times)
        stats = jax.tree_util.tree_map(spread, stats)
        result = jax.tree_util.tree_map(spread, result)
        return times, ys, loss, gnorm, stats, result, new_carry
    # Each member: its parameters, its carried state and its own data's statistics (the last
    # two None where there are none; None is an empty pytree, mapped over as nothing).
    members = (params, carry, problem.member_statistics())
    if options.ensemble == "map":
        # batch_size=1 would vmap each member over a batch of one (a batched while loop: masked
        # updates on every step); one at a time is a plain scan of the single solve.
        batch = options.group if options.group > 1 else None
        return jax.lax.map(lambda m: one(*m), members, batch_size=batch)
    return jax.vmap(lambda m: one(*m))(members)


# Compiled per static options and shapes; with the compilation cache on, the traced program is also
# kept on disk (`_programs`), so another process skips tracing it.
_solve = stored_jit(solve_program)
# Per backend. On a CPU, XLA hands every matrix product to Eigen on its thread pool
# (`xla_cpu_multi_thread_eigen`); compiled single-threaded, it writes the products of small
# matrices into the program itself. For small models that is most of a step: the quick
# deep-linear flow (4x4 layers, 4x64 data; 93k Tsit5 steps) takes 1.31 s instead of 1.74 s.
# Measured for one product in a compiled loop (idle 2-core EPYC, float64, 2026-12-07, m x k x n,
# single-threaded / threaded time): 4x4x4 0.14; 4x64x4, 16^3, 32^3, 64^3 0.95-1.09; 128^3 0.83;
# 256^3 1.08; 4x65536x4 1.22 (the thread pool pays off for large products only). So a solve is
# compiled single-threaded when no array a step works on (`largest_step_array`: parameters, data,
# statistics; an ensemble's for the members stepped together) has more than `CPU_SMALL_ELEMENTS`
# elements: far below where threads pay, even on many cores. A vmapped group of small members is
# not small: its products are batched, and single-threaded they made 64 members of a width-16
# network 1.5x slower in vmapped groups of 6 and 1.3x slower in one vmap (benchmarks/ensemble.py).
# Single-threaded products round differently: the same flow's numbers differ at round-off level.
CPU_SMALL_ELEMENTS = 1024
SINGLE_THREADED = {"xla_cpu_multi_thread_eigen": False}
_solve_small = stored_jit(solve_program, SINGLE_THREADED)


def solve(problem: GradientFlowProblem, params, t0, t1, ts, options, carry, ensemble):
    """`solve_program`, compiled for this backend and the problem's size (see above): (its
    outputs, the XLA options beyond the defaults it was compiled with). Called inside another
    traced function it is part of that program, compiled with its options."""
    args = (problem, params, t0, t1, ts, options, carry, ensemble)
    extra = compiler_options(*args)
    return (_solve_small if extra else _solve)(*args), extra


def compiler_options(problem, params, t0, t1, ts, options, carry, ensemble) -> dict:
    """The XLA options `solve` compiles this solve with beyond the defaults (recorded in the
    trajectory's `info['compiler_options']`): `SINGLE_THREADED` for a small solve on a CPU, else
    none."""
    arrays = jax.tree_util.tree_leaves((problem, params, t0, t1, ts, carry))
    small = (
        jax.default_backend() == "cpu"
        and not any(isinstance(x, jax.core.Tracer) for x in arrays)
        and largest_step_array(problem, params, options, ensemble) <= CPU_SMALL_ELEMENTS
    )
    return dict(SINGLE_THREADED) if small else {}


def largest_step_array(problem: GradientFlowProblem, params, options, ensemble: bool) -> int:
    """The number of elements of the largest array one step of the compiled loop works on: the
    model's arrays (trainable and not), its data statistics, the problem's shared arrays. An
    ensemble's own arrays (its model's, and its statistics where each member has its own data)
    count for the members stepped together: one member at a time for `map` in groups of 1 (as
    its single solve), a group for `map`, all of them for `vmap` and `lockstep`."""
    members = jax.tree_util.tree_leaves(params)[0].shape[0] if ensemble else 1
    together = options.group if ensemble and options.ensemble == "map" else members
    own = [params, problem.static, problem.member_statistics() if ensemble else None]
    own_leaves = [x for x in jax.tree_util.tree_leaves(own) if eqx.is_array(x)]
    mine = {id(x) for x in own_leaves}
    sizes = [x.size // members * min(together, members) for x in own_leaves]
    sizes += [
        x.size for x in jax.tree_util.tree_leaves(problem) if eqx.is_array(x) and id(x) not in mine
    ]
    return max(sizes, default=0)


def result_names(result) -> np.ndarray:
    """The names (`RESULT_NAMES`) of a solve's diffrax result(s), as an array of strings."""
    names = np.full(np.shape(np.asarray(result == diffrax.RESULTS.successful)), "unknown", object)
    for name in RESULT_NAMES:
        names[np.asarray(result == getattr(diffrax.RESULTS, name))] = name
    return names
