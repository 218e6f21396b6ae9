"""`deep-linear`'s run: the flow in pieces, gradient descent, the diagnostics, the summary."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

import gradflow as gf
from gradflow.experiments import Result, register

from . import escapes
from .config import DeepLinearConfig, init_scale, teacher_singular_values
from .figures import FigureInputs, captions, make_figures

if TYPE_CHECKING:
    from gradflow.runs import RunContext

# An automatic horizon is extended this many times at most, by this factor each time.
_EXTENSIONS, _EXTENSION_FACTOR = 4, 4.0


@dataclasses.dataclass(frozen=True)
class Flow:
    """The main flow: its trajectory, saddle timeline, horizon and solvers used."""

    traj: gf.Trajectory
    timeline: object
    t1: float
    solver: str
    explicit_steps: float


def _segment(c, start, data, ts, solver, name, context):
    """`gf.flow_in_pieces` on the save grid `ts`, checkpointed in the run folder as `name`."""
    intervals = ts.size - 1
    piece = -(-intervals // c.pieces)  # ⌈intervals / pieces⌉ save intervals per piece
    with context.task(f"flow to t = {ts[-1]:.3g}", total=-(-intervals // piece)) as advance:
        shown = [0]

        def progress(done, _total):
            advance(done - shown[0])
            shown[0] = done

        return gf.flow_in_pieces(
            start,
            data,
            ts,
            piece=piece,
            checkpoint=context.checkpoint(name),
            progress=progress,
            solver=solver,
            rtol=c.rtol,
            atol=c.atol,
            max_steps=c.max_steps,
            loss=c.loss,
        )


def horizon(c: DeepLinearConfig, s, eps: float) -> float:
    """The first horizon: `t1`, or 3× the weakest mode's balanced learning time from u0 ~ ε^H
    (plus 10 time units of that mode)."""
    t_weakest = float(gf.analytic.learning_time(s[-1], eps**c.depth, c.depth, 0.5))
    return c.t1 if c.t1 is not None else 3.0 * t_weakest + 10.0 / s[-1]


def first_saves(c: DeepLinearConfig, t1: float) -> np.ndarray:
    """The first segment's save grid: t = 0, then log-spaced from t1·1e-5 to t1."""
    return np.concatenate([[0.0], np.geomspace(t1 * 1e-5, t1, c.saves - 1)])


def flow(
    c: DeepLinearConfig, model, data, s, eps: float, context, first=None, checkpoints="flow"
) -> Flow:
    """The flow from `model` on log-spaced saves to the horizon.

    Horizon: 3× the weakest mode's balanced learning time from u0 ~ ε^H. The effective initial
    strength of weak modes is smaller than that (their components along the hidden directions of
    modes learned earlier decay), so an automatic horizon is extended (×4, at most 4 times) until
    every mode is learned. Each extension continues the flow from where the previous segment
    stopped (never re-integrates), with log-spaced saves, checkpointed as `<checkpoints>-<k>`.
    `first`: the first segment, already solved (by `run_seeds`, for an ensemble of seeds).
    """
    t1 = horizon(c, s, eps)
    extensions = 0 if c.t1 is not None else _EXTENSIONS
    segments: list[gf.Trajectory] = []
    names: list[str] = []
    for attempt in range(extensions + 1):
        name, solver, explicit_steps = escapes.choose_solver(c, s, t1)
        names.append(name)
        if not segments:
            start, ts = model, first_saves(c, t1)
        else:
            start, t0 = segments[-1].final, float(segments[-1].ts[-1])
            ts = np.geomspace(t0, t1, c.saves // 8 + 1)  # its first save repeats t0: dropped
        try:
            if first is not None and not segments:
                segments.append(first)
            else:
                context.log(f"flow on [{ts[0]:.3g}, {t1:.3g}] with {name}")
                segments.append(
                    _segment(c, start, data, ts, solver, f"{checkpoints}-{attempt}", context)
                )
        except (gf.DivergenceError, gf.SolverError) as err:
            # Keep everything computed so far: the runner saves err.trajectory.
            if segments and err.trajectory is not None:
                err.trajectory = gf.Trajectory.concatenate([*segments, err.trajectory])
            raise
        traj = gf.Trajectory.concatenate(segments)
        timeline = gf.diagnostics.saddle_timeline(traj, data)
        if len(timeline.order) == s.size or attempt == extensions:
            break
        t1 *= _EXTENSION_FACTOR
    return Flow(traj, timeline, t1, "+".join(dict.fromkeys(names)), explicit_steps)


def descent(c: DeepLinearConfig, model, data, t1: float, context):
    """Plain gradient descent from the same init over the same horizon (iterate k ≈ θ(kη)), run
    before the diagnostics so that a diverging step fails fast. None without `gd_lr`."""
    if c.gd_lr is None:
        return None
    steps = int(np.ceil(t1 / c.gd_lr))
    if steps > 50 * c.max_steps:
        raise gf.ConfigError(
            "gd_lr", c.gd_lr, f"a step giving at most {50 * c.max_steps} steps over t1 = {t1:.3g}"
        )
    with context.task(f"gradient descent ({steps} steps)", total=1) as advance:
        gd = gf.descent(model, data, steps, c.gd_lr, save_every=max(1, steps // 2000), loss=c.loss)
        advance()
    return gd


def saddles(timeline, spectra, atlas) -> list[dict]:
    """One record per saddle visited: on the trajectory (closest approach) and at the atlas."""
    out = []
    for i, (modes, point) in enumerate(zip(timeline.visited_modes, atlas, strict=True)):
        eig = spectra[i]
        scale = float(np.nanmax(np.abs(eig), initial=0.0))
        out.append(
            {
                "modes_learned": [int(j) for j in modes],
                "critical_value": float(timeline.critical_values[i]),
                "plateau_loss": float(timeline.plateau_losses[i]),
                "plateau_time": float(timeline.plateau_times[i]),
                "lambda_min_on_trajectory": float(eig[0]),
                "lambda_max_on_trajectory": float(eig[-1]),
                "n_negative_on_trajectory": int(np.sum(eig < -1e-8 * scale)),
                "atlas_kind": point.kind,
                "atlas_lambda_min": point.lambda_min,
                "atlas_unstable_dim": point.unstable_dim,
                "atlas_centre_dim": point.centre_dim,
            }
        )
    return out


def summary(c, f: Flow, s, eps, pred, drift, visited, global_value, data) -> dict:
    """The run's headline numbers (keys as before the library-first redesign)."""
    traj, timeline, h = f.traj, f.timeline, c.depth
    stats = traj.stats
    order = [int(j) for j in timeline.order]
    rel_dev = pred.relative_deviations
    # The scaling law alone: the balanced learning time from the nominal u_0 = ε^H.
    nominal = np.asarray(gf.analytic.learning_time(s, eps**h, h, 0.5), dtype=float)
    plateau_dev = np.asarray(timeline.plateau_deviation)
    final_loss = float(traj.loss[-1])
    return {
        "loss": c.loss,
        "depth": h,
        "dim": c.dim,
        "n": int(data.x.shape[0]),
        "data": "file" if c.data is not None else "whitened teacher",
        "init": "file" if c.init is not None else "random",
        "singular_values": s.tolist(),
        "init_scale": eps,
        "t1": f.t1,
        "t1_automatic": c.t1 is None,
        "solver": f.solver,
        "rtol": c.rtol,
        "atol": c.atol,
        "estimated_explicit_steps": f.explicit_steps,
        "solver_steps": stats["num_steps"],
        "solver_rejected_steps": stats["num_rejected_steps"],
        "function_evaluations": stats["function_evaluations"],
        "function_evaluations_exact": stats["function_evaluations_exact"],
        "modes_learned": len(order),
        "learn_order": order,
        "learned_in_decreasing_order_of_s": order == sorted(order),
        "learn_times_measured": pred.measured.tolist(),
        "learn_times_predicted": pred.predicted.tolist(),
        "learn_time_prediction_method": pred.method,
        "learn_time_relative_deviations": rel_dev.tolist(),
        "learn_time_max_relative_deviation": float(np.nanmax(rel_dev)) if order else None,
        "learn_times_nominal": nominal.tolist(),
        "learn_time_nominal_ratios": (pred.measured / nominal).tolist(),
        "critical_values_visited": np.asarray(timeline.critical_values).tolist(),
        "plateau_losses": np.asarray(timeline.plateau_losses).tolist(),
        "plateau_loss_deviations": plateau_dev.tolist(),
        "plateau_loss_max_abs_deviation": float(np.nanmax(np.abs(plateau_dev))),
        "saddle_kinds_visited": [sd["atlas_kind"] for sd in visited],
        "saddle_lambda_min_visited": [sd["atlas_lambda_min"] for sd in visited],
        "saddles_visited": visited,
        "global_min_value": global_value,
        "final_loss": final_loss,
        "final_gap_to_global_min": final_loss - global_value,
        "final_grad_norm": float(traj.grad_norm[-1]),
        "conservation_drift_abs": drift.max_abs,
        "conservation_drift_relative": drift.relative,
        "conservation_drift_per_layer": drift.per_layer,
        "certified": bool(drift.relative <= 100 * c.rtol),
        "loss_normalisation": "F = (1/2n) sum_i |W x_i - y_i|^2",
    }


def gd_summary(c, gd, data, measured) -> dict:
    """Gradient descent's learning times against the flow's."""
    if gd is None:
        return {}
    gd_times = np.asarray(gf.diagnostics.saddle_timeline(gd, data).learn_times)
    return {
        "gd_lr": c.gd_lr,
        "gd_steps": int(gd.info["steps"]),
        "gd_final_loss": float(gd.loss[-1]),
        "gd_learn_times": gd_times.tolist(),
        "gd_learn_time_relative_differences": ((gd_times - measured) / measured).tolist(),
    }


def _start(c: DeepLinearConfig):
    """(data, initial model, the teacher's singular values s, the init scale ε) of a seed."""
    data, model = c.dataset(), c.initial_model()
    if c.data is None:
        s = np.sort(np.asarray(c.singular_values, dtype=float))[::-1]
    else:
        s = teacher_singular_values(data)
    return data, model, s, init_scale(model, c)


def run_seeds(configs: list[DeepLinearConfig], context: RunContext) -> Iterator[Result]:
    """The seeds of one configuration with their first flow segment solved as one ensemble.

    Each seed draws its own data and init, so the members flow on their own data
    (`gf.flow_in_pieces` on an `Ensemble` with a list of datasets), each with its own step sizes
    (ensemble='auto': on a CPU, small vmapped groups mapped over); a member's trajectory is the
    one its own run computes, to round-off. The rest (horizon extensions, gradient descent,
    diagnostics, escapes) runs seed by seed. Refused (the seeds then run one by one) where the
    seeds' first segments differ in horizon or solver. A generator: the ensemble flow runs at the
    first result asked for, each seed's diagnostics and figures at its own.
    """
    c = configs[0]
    starts = [_start(ci) for ci in configs]
    horizons = [horizon(ci, s, eps) for ci, (_, _, s, eps) in zip(configs, starts, strict=True)]
    choices = [
        escapes.choose_solver(ci, start[2], t1)
        for ci, start, t1 in zip(configs, starts, horizons, strict=True)
    ]
    if len({(t1, choice[0]) for t1, choice in zip(horizons, choices, strict=True)}) != 1:
        raise gf.ConfigError("seeds", [ci.seed for ci in configs], "seeds with one first horizon")
    t1, (name, solver, _) = horizons[0], choices[0]
    context.log(f"flow on [0, {t1:.3g}] with {name}, {len(configs)} seeds as one ensemble")
    members = gf.Ensemble.stack([model for _, model, _, _ in starts])
    datasets = [data for data, _, _, _ in starts]
    first = _segment(c, members, datasets, first_saves(c, t1), solver, "flow-0", context)
    # One seed at a time from here (a generator): the sweep writes each seed's folder, and
    # closes its figures, before the next seed's are made.
    for e, (ci, (data, model, s, eps)) in enumerate(zip(configs, starts, strict=True)):
        f = flow(ci, model, data, s, eps, context, first.member(e), f"seed{ci.seed}-flow")
        yield finish(ci, data, model, s, eps, f, context)


@register(
    "deep-linear",
    "saddle-to-saddle gradient flow of a deep linear network: learning times, plateaus at the "
    "critical values, Hessians at the saddles, conservation laws",
    DeepLinearConfig,
    run_seeds=run_seeds,
)
def run(config: DeepLinearConfig, context: RunContext) -> Result:
    data, model, s, eps = _start(config)
    f = flow(config, model, data, s, eps, context)
    return finish(config, data, model, s, eps, f, context)


def finish(c: DeepLinearConfig, data, model, s, eps: float, f: Flow, context) -> Result:
    """Everything after the main flow `f`: gradient descent, the diagnostics, the escapes, the
    summary and the figures."""
    gd = descent(c, model, data, f.t1, context)

    with context.task("diagnostics", total=2) as advance:
        drift = gf.diagnostics.conservation_drift(f.traj)
        advance()
        # Hessians at the trajectory's plateau points and at the atlas points they represent.
        # (No index: the plateau's window held no save, e.g. a large init already past it.)
        spectra = [
            gf.diagnostics.hessian_spectrum(f.traj.at(int(i)), data, loss=c.loss)
            if i is not None
            else np.full(1, np.nan)
            for i in f.timeline.plateau_indices
        ]
        atlas = gf.diagnostics.critical_points(
            data, c.widths(), subsets=f.timeline.visited_modes, loss=c.loss
        )
        advance()

    with context.task("escapes (dense re-solves)", total=1) as advance:
        zooms = escapes.zoom(f.traj, data, f.timeline, c, s)
        advance()

    pred = escapes.predict(model, data, f.traj, f.timeline, zooms, s, c.depth)
    global_value = gf.analytic.critical_value(data, tuple(range(min(c.dim, s.size))))
    visited = saddles(f.timeline, spectra, atlas)
    result = summary(c, f, s, eps, pred, drift, visited, global_value, data)
    result.update(gd_summary(c, gd, data, pred.measured))

    metrics = f.traj.metrics_frame()
    for j in range(s.size):
        metrics[f"mode_strength_{j}"] = f.timeline.mode_strengths[:, j]
    for k in range(drift.series.shape[-1]):
        metrics[f"conservation_drift_C{k + 1}"] = drift.series[:, k]

    inputs = FigureInputs(
        traj=f.traj,
        timeline=f.timeline,
        s=s,
        predictions=pred,
        drift=drift,
        spectra=spectra,
        saddles=visited,
        atlas=atlas,
        global_value=global_value,
        depth=c.depth,
        rtol=c.rtol,
        zooms=zooms,
        gd=gd,
    )
    notes = (
        f"Depth {c.depth}, width {c.dim}, teacher singular values "
        f"{', '.join(f'{x:g}' for x in s)}, per-layer init scale {eps:g}, integrated with "
        f"{f.solver} to t = {f.t1:.4g} (rtol {c.rtol:g}). The network learns the modes one at a "
        "time in decreasing order of s_j, resting on a plateau at each critical value in between "
        "(saddle-to-saddle dynamics). For H ≥ 3 the origin is a non-strict saddle (zero Hessian) "
        "and the saddles that have learned the top modes are non-strict too: the escape is "
        "polynomial, not exponential."
    )
    return Result(
        summary=result,
        metrics=metrics,
        trajectory=f.traj,
        figures=make_figures(inputs),
        captions=captions(pred.method),
        notes=notes,
    )
