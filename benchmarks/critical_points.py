"""Benchmark: time to a polished critical point (`gf.critical_point`) against a flow run until
|∇F| reaches the same level (issue 12; MLPGradientFlow.jl's claim: polishing wins by orders of
magnitude).

Protocol, per problem: flow from the init to a rough end (the first of 300 log-spaced saves where
|∇F| ≤ 1e-3 of its start; the ResNet: where the risk reaches 1e-4), what a run stopped at a
threshold leaves. From that end,

- polish: `gf.critical_point(end, data, gtol=level)` with level = 1e-10 × |∇F| at the flow's
  start (and once more to roundoff, default gtol, to report the floor);
- flow: `gf.flow` from the same end (rtol 1e-12, atol 1e-15, tsit5) with log-spaced saves up to
  `horizon`; the first save with |∇F| ≤ level gives the time T_level, and a second flow to T_level
  (saves [0, T_level]) is timed.

Times are repeated calls (compiled: the first call of each is reported separately); the ratio is
flow ÷ polish. Problems: 'mean-field' (tanh mean-field ResNet, L = 2, M = 2, l2 = 5e-2,
conditional Wasserstein: an isolated regularised minimum, like the `lojasiewicz` experiment) and
'resnet' (ResNet d = q = d' = 2, m = 4, L = 2, GELU, n = 3 Gaussian points, stopped at risk 1e-4:
a zero-risk manifold); 'deep-linear' (depth 3, widths 4, whitened teacher s = 2, 1, 0.1, 0.02,
init scale 0.5: the global minimum, a rescaling orbit, with a condition number ~ (2/0.02)^{4/3}
in the flow's linearisation, so the flow's exponential tail is slow); 'deep-linear-ill' (depth 3,
widths 3, s = 2, 1, 1e-3: the balanced global minimum moved by 1e-3 at random, so the flow's
tail decays at the rate ≈ H s_3^{4/3} ≈ 3e-4 while its fastest rate is ≈ 7.6: a stiff tail,
where polishing should win).

    PYTHONPATH=src .venv/bin/python benchmarks/critical_points.py [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

import gradflow as gf


def _timed(fn, repeat=2):
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, first, best


def _problems():
    key = jax.random.PRNGKey
    mf_data = gf.data.teacher(key(0), 2, 1, 6, kind="two_layer")
    mf = gf.models.MeanFieldResNet(2, 4, 2, 2, 1, key=key(1), activation="tanh")
    mf_kw = dict(geometry="conditional_wasserstein", l2=5e-2)
    rn_data = gf.data.gaussian(key(0), 3, 2, 2)
    rn = gf.models.ResNet(2, 2, 4, 2, 2, key=key(1))
    ill_data = gf.data.linear_teacher(key(4), 3, 3, 12, [2.0, 1.0, 1e-3])
    (ill,) = gf.diagnostics.critical_points(ill_data, [3, 3, 3, 3], subsets=[(0, 1, 2)])
    flat, unravel = jax.flatten_util.ravel_pytree(ill.model)
    noise = jax.random.normal(key(5), flat.shape)
    ill = unravel(flat + 1e-3 * noise / jnp.linalg.norm(noise))
    dl_data = gf.data.linear_teacher(key(2), 4, 4, 16, [2.0, 1.0, 0.1, 0.02])
    dl = gf.models.DeepLinear([4, 4, 4, 4], key=key(3), init_scale=0.5)
    return {
        "deep-linear-ill": (ill, ill_data, {}, None, 2e5),
        "deep-linear": (dl, dl_data, {}, dict(t1=1e4), 1e6),
        "mean-field": (mf, mf_data, mf_kw, dict(t1=1e3), 1e5),
        "resnet": (rn, rn_data, {}, dict(t1=1e5, stop_below=1e-4), 1e6),
    }


def run_problem(name, model, data, kw, rough, horizon):
    flow_kw = dict(rtol=1e-9, atol=1e-12, **kw)
    if rough is None:  # the model is the rough end itself
        start = gf.flow(model, data, 1.0, saveat=[0.0, 1.0], **flow_kw)
        end = model
    elif "stop_below" in rough:
        start = gf.flow(
            model,
            data,
            rough["t1"],
            saveat=[0.0, rough["t1"]],
            stop_below=rough["stop_below"],
            **flow_kw,
        )
        end = start.final
    else:  # the first save where |∇F| ≤ 1e-3 of its start
        saves = np.concatenate([[0.0], np.geomspace(1e-2, rough["t1"], 300)])
        start = gf.flow(model, data, rough["t1"], saveat=saves, **flow_kw)
        i = int(np.nonzero(np.asarray(start.grad_norm) <= 1e-3 * float(start.grad_norm[0]))[0][0])
        end = start.at(i)
    g_start = float(start.grad_norm[0])
    level = 1e-10 * g_start
    res, p_first, p_rep = _timed(lambda: gf.critical_point(end, data, gtol=level, **kw))
    floor = gf.critical_point(end, data, **kw)
    ts = np.concatenate([[0.0], np.geomspace(1e-2, horizon, 400)])
    tight = dict(rtol=1e-12, atol=1e-15, max_steps=5_000_000, **kw)
    scan = gf.flow(end, data, horizon, saveat=ts, throw=False, **tight)
    gn = np.asarray(scan.grad_norm)
    hit = np.nonzero(gn <= level)[0]
    row = dict(
        problem=name,
        parameters=model.parameter_count(),
        grad_start=g_start,
        grad_end_of_rough_flow=float(gn[0]),
        level=level,
        polish_iterations=res.iterations,
        polish_grad=res.grad_norm,
        polish_first_s=p_first,
        polish_s=p_rep,
        solve_s=res.solve_seconds,
        polish_floor=floor.grad_norm,
        kind=res.kind,
        flow_floor=float(gn.min()),
    )
    if hit.size:
        t_level = float(ts[hit[0]])
        traj, f_first, f_rep = _timed(
            lambda: gf.flow(end, data, t_level, saveat=[0.0, t_level], **tight)
        )
        row.update(
            flow_time=t_level,
            flow_steps=int(np.asarray(traj.stats["num_steps"])),
            flow_grad=float(traj.grad_norm[-1]),
            flow_first_s=f_first,
            flow_s=f_rep,
            ratio=f_rep / p_rep,
        )
    else:
        _, f_first, f_rep = _timed(
            lambda: gf.flow(end, data, horizon, saveat=[0.0, horizon], **tight), 1
        )
        row.update(
            flow_time=None, flow_steps=None, flow_first_s=f_first, flow_s=f_rep, ratio=f_rep / p_rep
        )
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="markdown file for the table")
    args = parser.parse_args(argv)
    rows = [run_problem(name, *spec) for name, spec in _problems().items()]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} CPUs (load average {load:.1f}), jax {jax.__version__}.",
        "",
        "| problem | P | level (1e-10·|∇F_0|) | polish: iterations, |∇F|, s (first) [LM solve alone] | polish floor | "
        "flow: t, steps, s (first) | flow floor | flow ÷ polish |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        flow = (
            f"t = {r['flow_time']:.4g}, {r['flow_steps']} steps, {r['flow_s']:.3g} s ({r['flow_first_s']:.3g})"
            if r["flow_time"] is not None
            else f"not reached by the horizon: {r['flow_s']:.3g} s ({r['flow_first_s']:.3g}) spent"
        )
        lines.append(
            f"| {r['problem']} | {r['parameters']} | {r['level']:.2e} | {r['polish_iterations']}, "
            f"{r['polish_grad']:.1e}, {r['polish_s']:.3g} s ({r['polish_first_s']:.3g}) [{r['solve_s']:.3g} s] | "
            f"{r['polish_floor']:.1e} | {flow} | {r['flow_floor']:.1e} | "
            f"{'≥ ' if r['flow_time'] is None else ''}{r['ratio']:.3g} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")
    return rows


if __name__ == "__main__":
    main()
