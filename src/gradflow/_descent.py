"""`gf.descent`: discrete steps θ_{k+1} = θ_k − η · optimiser(G⁻¹∇F(θ_k)), the baseline for
`gf.flow`: with plain gradient descent the k-th iterate approximates the flow at t = kη to first
order in η. Any optax `GradientTransformation` can be the optimiser.

The whole run is one compiled loop. A step too large for the curvature makes the iterates blow
up; the loop keeps the last iterate at which F and |∇F| were finite and stops there, and `descent`
raises `DivergenceError` carrying the trajectory up to that iterate.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optax

from ._ensemble import Ensemble
from ._errors import ConfigError, DivergenceError
from ._problem import GradientFlowProblem
from ._trajectory import Trajectory
from ._validation import check_choice, integer, positive

OPTIMIZERS: dict[str, Callable[[float], optax.GradientTransformation]] = {
    "gd": lambda lr: optax.sgd(lr),
    "momentum": lambda lr: optax.sgd(lr, momentum=0.9),
    "nesterov": lambda lr: optax.sgd(lr, momentum=0.9, nesterov=True),
    "adam": lambda lr: optax.adam(lr),
}


@eqx.filter_jit
def _descent_run(
    problem, params, lr, optimizer, n_chunks, save_every, remainder, progress, ensemble
):
    # A named optimiser is built here, inside the compiled function, with lr = 1 and its updates
    # scaled by lr: a new lr then does not recompile (a fresh optax object would).
    scale_by_lr = isinstance(optimizer, str)
    opt = OPTIMIZERS[optimizer](1.0) if scale_by_lr else optimizer

    def step(problem, carry):
        p, state, good, good_k, k, _ = carry
        value, g = problem.value_and_grad(p)
        # Finite F and a finite gradient norm in the metric (the norm can overflow while every
        # entry of ∇F is finite, and the kept iterate's recorded |∇F| must be finite too).
        ok = jnp.isfinite(value) & jnp.isfinite(problem.geometry.dual_norm(g, problem.masses))
        good = jtu.tree_map(lambda a, b: jnp.where(ok, a, b), p, good)
        good_k = jnp.where(ok, k, good_k)
        # The geometry's (negative) velocity is the preconditioned gradient: −v = G⁻¹∇F.
        direction = jtu.tree_map(jnp.negative, problem.geometry.velocity(g, problem.masses))
        updates, state = opt.update(direction, state, p)
        if scale_by_lr:
            updates = jtu.tree_map(lambda u: lr * u, updates)
        return optax.apply_updates(p, updates), state, good, good_k, k + 1, ~ok

    def steps(problem, carry, count):
        # A while loop, not a fixed one: once an iterate is non-finite the rest are skipped.
        def cond(c):
            return (c[0] < count) & ~c[1][5]

        def body(c):
            return c[0] + 1, step(problem, c[1])

        return jax.lax.while_loop(cond, body, (0, carry))[1]

    def run_one(problem, p0):
        def chunk(carry, i):
            carry = steps(problem, carry, save_every)
            if progress:
                jax.debug.callback(_descent_progress, i + 1, n_chunks)
            return carry, carry[0]

        k0 = jnp.zeros((), jnp.int64)
        carry0 = (p0, opt.init(p0), p0, k0, k0, jnp.zeros((), bool))
        carry, saved = jax.lax.scan(chunk, carry0, jnp.arange(n_chunks))
        ys = jtu.tree_map(lambda a, b: jnp.concatenate([a[None], b]), p0, saved)
        if remainder:
            carry = steps(problem, carry, remainder)
            ys = jtu.tree_map(lambda a, b: jnp.concatenate([a, b[None]]), ys, carry[0])
        loss, gnorm = jax.vmap(problem.metrics)(ys)
        good_loss, good_gnorm = problem.metrics(carry[2])
        return ys, loss, gnorm, carry[2], carry[3], good_loss, good_gnorm

    if ensemble:
        return problem.over_members(run_one, params)
    return run_one(problem, params)


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
    data,
    steps: int,
    lr: float,
    *,
    optimizer="gd",
    geometry="euclidean",
    loss="half_mse",
    l2: float = 0.0,
    save_every: int | None = None,
    progress: bool = False,
    dtype: str | None = None,
) -> Trajectory:
    """Discrete descent θ_{k+1} = θ_k − η · optimiser(G⁻¹∇F(θ_k)), the baseline for `flow`.

    With `optimizer='gd'` this is gradient descent in the chosen geometry, whose iterate k
    approximates the flow at time t = kη with an error O(η); the trajectory's times are t = kη.

    **Arguments:**

    - `model`, `data`, `geometry`, `loss`, `l2`, `dtype`: as for `flow`.
    - `steps`: number of steps (≥ 1). `lr`: the step η (> 0).
    - `optimizer`: 'gd' (default), 'momentum', 'nesterov', 'adam', or any
      `optax.GradientTransformation` (then `lr` only sets the reported times t = kη).
    - `save_every`: save every this many steps (default: steps // 200, at least 1); the final
      step is always saved.
    - `progress`: show a progress bar.

    **Raises:** `ConfigError` for invalid input (a non-finite initial F included);
    `DivergenceError` if the iterates become non-finite (too large a step): it carries the
    trajectory up to the last iterate at which F and ∇F were finite, at its true time.
    """
    steps = integer("steps", steps, minimum=1)
    lr = positive("lr", lr)
    if isinstance(optimizer, str):
        check_choice("optimizer", optimizer, OPTIMIZERS)
        name, opt = optimizer, optimizer
    elif isinstance(optimizer, optax.GradientTransformation):
        name, opt = "custom", optimizer
    else:
        raise ConfigError(
            "optimizer",
            optimizer,
            "one of " + ", ".join(map(repr, OPTIMIZERS)) + " or an optax GradientTransformation",
        )
    save_every = max(1, steps // 200) if save_every is None else save_every
    save_every = min(integer("save_every", save_every, minimum=1), steps)
    n_chunks, remainder = divmod(steps, save_every)
    ensemble = isinstance(model, Ensemble)
    problem, params = GradientFlowProblem.from_model(
        model, data, geometry=geometry, loss=loss, l2=l2, dtype=dtype
    )
    problem.check_finite_start(params, ensemble)
    ys, loss_v, gnorm, good, good_k, good_loss, good_gnorm = _descent_run(
        problem,
        params,
        jnp.asarray(lr, problem.dtype),
        opt,
        n_chunks,
        save_every,
        remainder,
        bool(progress),
        ensemble,
    )
    step_idx = np.concatenate([np.arange(n_chunks + 1) * save_every, [steps] if remainder else []])
    info = {
        "kind": "descent",
        "optimizer": name,
        **problem.describe(),
        "lr": float(lr),
        "steps": int(steps),
        "save_every": int(save_every),
        "t1": float(steps * lr),
        "result": "successful",
    }
    stats = {"num_steps": int(steps), "function_evaluations": int(steps)}
    traj = Trajectory(
        jnp.asarray(step_idx * lr),
        ys,
        problem.static,
        loss_v,
        gnorm,
        problem.metric_masses,
        stats,
        info,
    )
    loss_np = np.atleast_2d(np.asarray(loss_v))
    if np.all(np.isfinite(loss_np)) and np.all(np.isfinite(np.asarray(gnorm))):
        return traj
    # Diverged: keep the saves before the last finite iterate, then that iterate.
    last = np.atleast_1d(np.asarray(good_k))
    keep = int(np.sum(step_idx < last.min()))
    partial = traj.truncate(keep)
    if not ensemble:
        tail = Trajectory(
            jnp.asarray([float(last[0]) * lr]),
            jtu.tree_map(lambda a: a[None], good),
            problem.static,
            jnp.asarray(good_loss)[None],
            jnp.asarray(good_gnorm)[None],
            problem.metric_masses,
            stats,
            {**info, "result": "diverged"},
        )
        partial = Trajectory.concatenate([partial, tail]) if keep else tail
    raise DivergenceError(
        f"gradient descent diverged: the iterates became non-finite after step {int(last.min())}"
        f" (t = {float(last.min()) * lr:g}) with lr={lr:g}; the last finite iterate is kept. "
        "Use a smaller lr (GD on F is stable only for lr < 2/(largest Hessian eigenvalue))",
        partial,
    )
