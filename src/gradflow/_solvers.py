"""Solvers and step-size controllers for `gf.flow`: names, objects, and the automatic choice.

Strings are shortcuts for diffrax objects; any `diffrax.AbstractSolver` and any
`diffrax.AbstractStepSizeController` can be passed instead. The controller is wrapped in
`RecordNextStep`, which keeps the step it proposes next, so that a flow continued from a saved
state (`flow_in_pieces`, a resumed run) takes exactly the step it would have taken.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optimistix as optx

from ._errors import ConfigError
from ._validation import check_choice


class AbstractCountingSolver(diffrax.AbstractAdaptiveSolver):
    """A solver that counts its own vector-field evaluations in its state (e.g. because its
    number of stages varies from step to step)."""

    @abc.abstractmethod
    def evaluations(self, solver_state) -> jax.Array:
        """Evaluations made by the accepted steps since `init` (the count in `solver_state`)."""


def _kvaerno5():
    # A full Newton iteration: diffrax's default chord iteration (Jacobian frozen over a step)
    # fails to converge where a gradient flow escapes a saddle, and the step size then collapses
    # (tens of thousands of rejected steps on a depth-4 linear network from ε = 1e-4).
    return diffrax.Kvaerno5(root_finder=diffrax.with_stepsize_controller_tols(optx.Newton)())


def _rkc():
    from ._chebyshev import RungeKuttaChebyshev

    return RungeKuttaChebyshev()


SOLVERS: dict[str, Callable[[], diffrax.AbstractSolver]] = {
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
    "kvaerno5": _kvaerno5,
    "rkc": _rkc,
}

CONTROLLERS = ("integral", "pid")


def as_solver(solver) -> tuple[str, diffrax.AbstractSolver]:
    """(name, solver object) from a name of `SOLVERS` or a diffrax solver."""
    if isinstance(solver, str):
        check_choice("solver", solver, SOLVERS)
        return solver, SOLVERS[solver]()
    if isinstance(solver, diffrax.AbstractSolver):
        return type(solver).__name__.lower(), solver
    raise ConfigError("solver", solver, "one of " + ", ".join(map(repr, SOLVERS)))


def as_controller(
    controller, rtol, atol, t_span, dtype: str = "float64"
) -> tuple[str, diffrax.AbstractStepSizeController]:
    """(name, controller) from 'integral' (the I-controller), 'pid' (pcoeff = icoeff = 0.3,
    smoother steps on stiff problems) or a diffrax controller (whose own tolerances are used),
    wrapped in `RecordNextStep`.

    The solve fails (`dt_min_reached`) when a rejected step shrinks below 1e-13 of the time
    span: a step size collapsing that far means the trial steps produce non-finite values or the
    problem is far too stiff for the solver, and failing at once is better than burning the whole
    step budget on rejected steps.
    """
    if isinstance(controller, diffrax.AbstractStepSizeController):
        return type(controller).__name__, RecordNextStep(controller, jnp.asarray(1e-13 * t_span))
    check_choice("controller", controller, CONTROLLERS)
    pcoeff, icoeff = (0.0, 1.0) if controller == "integral" else (0.3, 0.3)
    # Arrays, not Python floats: new tolerances then reuse the compiled solve.
    f64 = lambda v: jnp.asarray(v, dtype=dtype)
    pid = diffrax.PIDController(rtol=f64(rtol), atol=f64(atol), pcoeff=pcoeff, icoeff=icoeff)
    return controller, RecordNextStep(pid, f64(1e-13 * t_span))


class RecordNextStep(diffrax.AbstractAdaptiveStepSizeController):
    """Wraps a step-size controller and records, in its state, the step it proposes next.

    diffrax clips the last step of a solve to t1 and does not return the controller's proposal;
    continuing a flow from its final state with that proposal (instead of a fresh initial-step
    selection) makes a flow solved in pieces take the steps of a single solve, except where a
    piece boundary clips one.
    """

    inner: diffrax.AbstractStepSizeController
    dtmin: jax.Array | float = 0.0

    @property
    def rtol(self):
        return self.inner.rtol

    @property
    def atol(self):
        return self.inner.atol

    @property
    def norm(self):
        return self.inner.norm

    def wrap(self, direction):
        return RecordNextStep(self.inner.wrap(direction), self.dtmin)

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        tnext, state = self.inner.init(terms, t0, t1, y0, dt0, args, func, error_order)
        # diffrax's initial-step heuristic takes a trial Euler step; on a very steep start it
        # overflows and proposes NaN, after which every step is rejected (NaN never shrinks).
        # Start from a millionth of the interval instead: the controller adapts it in a few steps.
        valid = jnp.isfinite(tnext - t0) & (tnext > t0)
        tnext = jnp.where(valid, tnext, t0 + 1e-6 * (t1 - t0))
        return tnext, (state, jnp.asarray(tnext - t0))

    def adapt_step_size(self, t0, t1, y0, y1_candidate, args, y_error, error_order, state):
        inner_state, _ = state
        keep, next_t0, next_t1, made_jump, inner_state, result = self.inner.adapt_step_size(
            t0, t1, y0, y1_candidate, args, y_error, error_order, inner_state
        )
        # A trial step that overflowed has an infinite error estimate, which optimistix's RMS
        # norm turns into NaN (it rescales by the largest entry): the step size would then be NaN
        # for ever after and no step accepted. Reject such a step and shrink it fivefold (the
        # controller's own minimal factor).
        overflow = ~jnp.all(
            jnp.stack([jnp.all(jnp.isfinite(e)) for e in jtu.tree_leaves(y_error)])
        ) | ~jnp.isfinite(next_t1 - next_t0)
        keep = keep & ~overflow
        next_t0 = jnp.where(overflow, t0, next_t0)
        next_t1 = jnp.where(overflow, t0 + 0.2 * (t1 - t0), next_t1)
        inner_state = jtu.tree_map(
            lambda new, old: jnp.where(overflow, old, new), inner_state, state[0]
        )
        # (Not diffrax's own `dtmin`: adding it to the PID controller changes how XLA fuses the
        # step-size arithmetic, and with it the last bits of every solve.)
        collapsed = ~keep & (next_t1 - next_t0 < self.dtmin)
        result = diffrax.RESULTS.where(collapsed, diffrax.RESULTS.dt_min_reached, result)
        return keep, next_t0, next_t1, made_jump, (inner_state, next_t1 - next_t0), result


def proposed_step(controller_state) -> jax.Array:
    """The next step a `RecordNextStep` controller state proposes."""
    return controller_state[1]


# ---------------------------------------------------------------------------------------------
# evaluations


def evaluations(solver, num_steps, num_rejected, counted) -> tuple[np.ndarray, bool]:
    """Vector-field evaluations of a solve, and whether the count is exact.

    Runge–Kutta: each attempted step (accepted or rejected) costs `stages − fsal` new evaluations,
    plus one at t0 and two for the initial step-size selection. For implicit solvers this counts
    each stage once: diffrax does not expose the Newton iterations, so it is a lower bound.
    A counting solver (RKC) reports its accepted steps' evaluations exactly (`counted`, with the
    2 of the initial step size); a rejected step's stage number is lost with the step (diffrax
    restores the solver state), so those are estimated at the accepted mean.
    """
    num_steps = np.asarray(num_steps)
    if isinstance(solver, AbstractCountingSolver):
        counted, rejected = np.asarray(counted), np.asarray(num_rejected)
        accepted = np.maximum(num_steps - rejected, 1)
        estimate = counted + np.rint(rejected * counted / accepted).astype(counted.dtype)
        return estimate, bool(np.all(rejected == 0))
    tableau = getattr(solver, "tableau", None)
    if tableau is None:  # a user's diffrax solver that is not a Runge–Kutta method
        return np.full_like(num_steps, -1), False
    return num_steps * (tableau.num_stages - int(tableau.fsal)) + 3, not tableau.implicit


# ---------------------------------------------------------------------------------------------
# stiffness and the automatic choice


@eqx.filter_jit
def largest_curvature(problem, params, iterations: int = 30) -> jax.Array:
    """ρ ≈ the spectral radius of the flow's Jacobian −G⁻¹∇²F at `params` (power iteration on
    Jacobian-vector products of the vector field, from a fixed pseudo-random start)."""
    leaves, treedef = jtu.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(0), max(len(leaves), 1))
    v = jtu.tree_unflatten(
        treedef,
        [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=False)],
    )

    def norm(tree):
        return jnp.sqrt(sum(jnp.sum(x**2) for x in jtu.tree_leaves(tree)))

    def body(_, carry):
        v, _ = carry
        v = jtu.tree_map(lambda x: x / jnp.maximum(norm(v), 1e-300), v)
        _, jv = jax.jvp(problem.velocity, (params,), (v,))
        return jv, norm(jv)

    _, rho = jax.lax.fori_loop(0, iterations, body, (v, jnp.zeros((), leaves[0].dtype)))
    return rho


# Tsit5's stability interval on the negative real axis is about [−3.5, 0].
EXPLICIT_STABILITY = 3.5


@dataclasses.dataclass(frozen=True)
class SolverChoice:
    """The automatic choice: `name` and `solver` (a diffrax object), with its reason."""

    name: str
    solver: diffrax.AbstractSolver
    curvature: float
    explicit_steps: float
    reason: str


def choose_solver(
    curvature: float,
    horizon: float,
    parameters: int,
    *,
    budget: float = 3e6,
    dense_limit: int = 2000,
) -> SolverChoice:
    """Choose a solver for a flow whose Jacobian has spectral radius about `curvature` over a
    time `horizon`, with `parameters` unknowns.

    An explicit fifth-order method (Tsit5) needs at least ρT/3.5 steps however smooth the
    solution: it is the choice while that number stays under `budget`. Beyond it, a small problem
    (≤ `dense_limit` parameters) uses the implicit Kvaerno5 with a dense Newton iteration, and a
    larger one the stabilised explicit RKC (steps set by accuracy; cost per step ~√(hρ)).
    """
    explicit_steps = float(curvature) * float(horizon) / EXPLICIT_STABILITY
    if explicit_steps < budget:
        name, reason = "tsit5", f"~{explicit_steps:.3g} stability-limited steps < {budget:.3g}"
    elif parameters <= dense_limit:
        name = "kvaerno5"
        reason = f"~{explicit_steps:.3g} explicit steps; {parameters} parameters: dense implicit"
    else:
        name = "rkc"
        reason = f"~{explicit_steps:.3g} explicit steps; {parameters} parameters: stabilised"
    return SolverChoice(name, SOLVERS[name](), float(curvature), explicit_steps, reason)
