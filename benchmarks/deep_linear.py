"""Benchmark: the gradient flow of a deep linear network, gradflow against its peers.

One fixed problem (see PROBLEM below and benchmarks/README.md for why these numbers):
whitened linear teacher, d = 32, depth H = 4 (widths [32]*5), n = 512, five modes with singular
values s_j = 4·0.7^j, per-layer init scale ε = 0.1, horizon T = 150 (all five saddles visited,
loss from 16 down to ~1e-7).

Error of a trajectory: the largest, over the fixed save times S = {0, 2.5, 5, ..., 150}, relative
Frobenius error of the end-to-end matrix W = W_4 W_3 W_2 W_1 against the reference:

    err = max_{t ∈ S} |W(t) − W_ref(t)|_F / |W_ref(t)|_F.

The reference is gradflow (Dopri8, rtol 1e-12, atol 1e-14), cross-checked against scipy DOP853 at
the same tolerances. For each target error (1e-6 and 1e-3) each contender's tolerance (or, for
GD, step) is the loosest one on a fixed grid that reaches the target; then its wall time is
measured on the first call (compilation included) and on repeated calls (best of --repeat).

Contenders:
- gradflow `gf.flow` (Tsit5 and Dopri8; the better one is "gradflow"). DeepLinear's risk is
  computed from the moments Σ_xx, Σ_yx, tr Σ_yy, so the compiled solve never sees X or Y.
- gradflow `gf.descent` (GD): its error is first order, err ≈ C·η; C is measured, the largest
  step reaching the target is η = target/C (rounded down to divide the save interval); runs of more
  than --gd-max-steps steps (default 10⁷) are not run but extrapolated from the measured time per
  step, and the output says so.
- torchdiffeq `odeint(method="dopri5")`, float64, one thread, with the same moment trick and the
  hand-written gradient (10 small matmuls per evaluation). Also, at 1e-3 only, the plain full-data
  version (autograd of (1/2n)Σ|Wx_i − y_i|²), to show what the moment trick is worth.
- scipy `solve_ivp` (RK45 and DOP853), numpy vector field with the moment trick.
- ensemble: `gf.ensemble` of 64 seeds in one vmapped solve, against 64 single solves and one seed.

Run: `python benchmarks/deep_linear.py` (full), `--quick` for a short development run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys

import jax
import numpy as np
from _common import Timer, log, report  # the script's own folder, first on sys.path

import gradflow as gf

# --------------------------------------------------------------------------------------------
# the problem

D, H, N = 32, 4, 512
SINGULAR_VALUES = [4.0 * 0.7**j for j in range(5)]
INIT_SCALE = 0.1
T1 = 150.0
SAVE_DT = 2.5
SAVE_TS = np.arange(0.0, T1 + SAVE_DT / 2, SAVE_DT)
WIDTHS = [D] * (H + 1)
TARGETS = (1e-6, 1e-3)
RTOL_GRID = [10.0 ** (-k / 2) for k in range(6, 27)]  # 1e-3 ... 1e-13
ATOL_FACTOR = 1e-2  # atol = 1e-2 · rtol for every adaptive contender


def problem(seed: int = 0):
    data = gf.data.linear_teacher(jax.random.PRNGKey(1000), D, D, N, SINGULAR_VALUES)
    model = gf.models.DeepLinear(WIDTHS, jax.random.PRNGKey(seed), init_scale=INIT_SCALE)
    return model, data


def chain_np(stacked: np.ndarray) -> np.ndarray:
    """W(t) from layers stacked as (T, H, d, d): W_H ⋯ W_1 for every t."""
    out = stacked[:, 0]
    for k in range(1, stacked.shape[1]):
        out = stacked[:, k] @ out
    return out


def product_of(traj) -> np.ndarray:
    return chain_np(np.stack([np.asarray(w) for w in traj.params.weights], axis=1))


def rel_error(w: np.ndarray, w_ref: np.ndarray) -> float:
    num = np.linalg.norm((w - w_ref).reshape(len(w), -1), axis=1)
    den = np.linalg.norm(w_ref.reshape(len(w), -1), axis=1)
    return float(np.max(num / den))


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeat):
        t = Timer()
        out = fn()
        best = min(best, t())
    return best, out


# --------------------------------------------------------------------------------------------
# contenders: each is a function (tolerance) -> (W at SAVE_TS, info) and is timed around it


def gradflow_trajectory(model, data, rtol, solver):
    """gradflow's flow to T1, saved at SAVE_TS, at tolerance `rtol` (atol = ATOL_FACTOR·rtol)."""
    return gf.flow(
        model,
        data,
        T1,
        saveat=SAVE_TS,
        rtol=rtol,
        atol=ATOL_FACTOR * rtol,
        solver=solver,
        max_steps=10_000_000,
    )


def gradflow_flow(model, data, rtol, solver):
    traj = gradflow_trajectory(model, data, rtol, solver)
    return product_of(traj), traj.stats


def numpy_field(data):
    m = data.moments()
    sxx, syx = np.asarray(m.sxx), np.asarray(m.syx)

    def field(t, y):
        w = y.reshape(H, D, D)
        pre = [w[0]]
        for k in range(1, H):
            pre.append(w[k] @ pre[-1])
        suffix = syx - pre[-1] @ sxx  # −∂F/∂W = Σ_yx − W Σ_xx
        out = np.empty_like(w)
        for k in range(H - 1, -1, -1):
            out[k] = suffix @ pre[k - 1].T if k > 0 else suffix
            suffix = w[k].T @ suffix
        return out.reshape(-1)

    return field


def scipy_solve(model, data, rtol, method):
    from scipy.integrate import solve_ivp

    y0 = np.concatenate([np.asarray(w).reshape(-1) for w in model.weights])
    sol = solve_ivp(
        numpy_field(data),
        (0.0, T1),
        y0,
        method=method,
        t_eval=SAVE_TS,
        rtol=rtol,
        atol=ATOL_FACTOR * rtol,
    )
    assert sol.success, sol.message
    return chain_np(sol.y.T.reshape(len(SAVE_TS), H, D, D)), {"nfev": int(sol.nfev)}


def torch_setup():
    import torch

    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)  # 32×32 products: threads only add overhead (measured)
    return torch


def torch_field_moments(torch, data):
    m = data.moments()
    sxx = torch.tensor(np.asarray(m.sxx))
    syx = torch.tensor(np.asarray(m.syx))
    counter = [0]

    def field(t, y):
        counter[0] += 1
        w = y.view(H, D, D)
        pre = [w[0]]
        for k in range(1, H):
            pre.append(w[k] @ pre[-1])
        suffix = syx - pre[-1] @ sxx
        grads = [None] * H
        for k in range(H - 1, -1, -1):
            grads[k] = suffix @ pre[k - 1].T if k > 0 else suffix
            suffix = w[k].T @ suffix
        return torch.stack(grads).view(-1)

    return field, counter


def torch_field_full_data(torch, data):
    x = torch.tensor(np.asarray(data.x))
    y = torch.tensor(np.asarray(data.y))
    counter = [0]

    def field(t, state):
        counter[0] += 1
        with torch.enable_grad():
            s = state.detach().requires_grad_(True)
            w = s.view(H, D, D)
            prod = w[0]
            for k in range(1, H):
                prod = w[k] @ prod
            loss = 0.5 * ((x @ prod.T - y) ** 2).sum(dim=1).mean()
            (g,) = torch.autograd.grad(loss, s)
        return -g

    return field, counter


def torch_solve(torch, field, model, rtol):
    import torchdiffeq

    f, counter = field
    counter[0] = 0
    y0 = torch.tensor(np.concatenate([np.asarray(w).reshape(-1) for w in model.weights]))
    ts = torch.tensor(SAVE_TS)
    with torch.no_grad():
        ys = torchdiffeq.odeint(f, y0, ts, rtol=rtol, atol=ATOL_FACTOR * rtol, method="dopri5")
    return chain_np(ys.numpy().reshape(len(SAVE_TS), H, D, D)), {"nfev": counter[0]}


def gd_solve(model, data, steps_per_save):
    lr = SAVE_DT / steps_per_save
    steps = int(round(T1 / lr))
    traj = gf.descent(model, data, steps, lr, save_every=steps_per_save)
    assert np.allclose(np.asarray(traj.ts), SAVE_TS)
    return product_of(traj), {"steps": steps, "lr": lr}


# --------------------------------------------------------------------------------------------


def sweep(name, solve, w_ref, grid, log):
    """Errors along `grid` (loose → tight) until the smallest target is reached.

    Returns {target: (tol, err, info, seconds)} with, for each target, the loosest tolerance on
    the grid whose error reaches it (errors need not be monotone in the tolerance: the first hit
    counts)."""
    found = {}
    for tol in grid:
        t = Timer()
        w, info = solve(tol)
        elapsed = t()
        err = rel_error(w, w_ref)
        log(f"  {name:<20} tol={tol:8.1e}  err={err:9.2e}  {elapsed:6.2f} s  {info}")
        for target in TARGETS:
            if target not in found and err <= target:
                found[target] = (tol, err)
        if len(found) == len(TARGETS):
            return found
    raise RuntimeError(f"{name}: no tolerance on the grid reaches {min(TARGETS)}")


def first_call(contender: str, tol: float) -> float:
    """Wall time of the first call in a fresh process (imports and problem set-up excluded;
    for gradflow this is trace + compile + solve)."""
    import json
    import subprocess

    out = subprocess.run(
        [sys.executable, __file__, "--first-call", contender, repr(tol)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["seconds"]


def _first_call_child(contender: str, tol: float):
    import json

    model, data = problem()
    jax.block_until_ready(data.moments())
    if contender.startswith("gradflow"):
        solver = contender.split()[1]
        fn = lambda: gradflow_flow(model, data, tol, solver)
    elif contender.startswith("scipy"):
        fn = lambda: scipy_solve(model, data, tol, contender.split()[1])
    elif contender == "torchdiffeq dopri5":
        torch = torch_setup()
        field = torch_field_moments(torch, data)
        fn = lambda: torch_solve(torch, field, model, tol)
    else:
        raise ValueError(contender)
    t = Timer()
    fn()
    print(json.dumps({"seconds": t()}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short development run")
    ap.add_argument("--repeat", type=int, default=3, help="repeated-call timings: best of this")
    ap.add_argument("--seeds", type=int, default=64, help="ensemble size")
    ap.add_argument(
        "--gd-max-steps",
        type=float,
        default=1e7,
        help="GD runs longer than this are not run: their time is extrapolated",
    )
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--out", default=None, help="also write the markdown summary to this file")
    ap.add_argument("--first-call", nargs=2, metavar=("CONTENDER", "TOL"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.first_call:
        return _first_call_child(args.first_call[0], float(args.first_call[1]))
    if args.quick:
        args.repeat, args.seeds = 1, min(args.seeds, 8)
        args.gd_max_steps = min(args.gd_max_steps, 2e5)

    model, data = problem()
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    log(
        f"deep-linear benchmark  d={D} H={H} n={N} s={np.round(SINGULAR_VALUES, 4).tolist()} "
        f"eps={INIT_SCALE} T={T1}  saves={len(SAVE_TS)}"
    )
    load0 = os.getloadavg()
    log(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}, load average {load0}"
    )

    # ---- what the compiled solve sees: no array with n = 512 rows ----------------------------
    import gradflow._flow as flow_module

    seen = []
    original = flow_module.solve

    def spy(*a, **k):
        seen.extend(x.shape for x in jax.tree_util.tree_leaves((a, k)) if hasattr(x, "shape"))
        return original(*a, **k)

    flow_module.solve = spy
    t = Timer()
    # the reference is gradflow's own contender at rtol 1e-12 (atol 1e-14)
    traj_ref = gradflow_trajectory(model, data, 1e-12, "dopri8")
    ref_time = t()
    flow_module.solve = original
    largest = max(seen, key=lambda sh: int(np.prod(sh)))
    no_n = all(N not in sh for sh in seen)
    w_ref = product_of(traj_ref)
    loss = np.asarray(traj_ref.loss)
    sv = np.linalg.svd(w_ref, compute_uv=False)
    learned = [float(SAVE_TS[np.argmax(sv[:, j] > s / 2)]) for j, s in enumerate(SINGULAR_VALUES)]
    log(
        f"reference: gradflow dopri8 rtol 1e-12: {ref_time:.1f} s (first call), "
        f"{traj_ref.stats['num_steps']} steps; loss {loss[0]:.3g} -> {loss[-1]:.3g}; "
        f"modes learned (s_j/2 crossed) at t = {learned}"
    )
    log(f"compiled solve inputs: {len(seen)} arrays, largest {largest}; any with n={N}: {not no_n}")
    t = Timer()
    w_scipy, info = scipy_solve(model, data, 1e-12, "DOP853")
    ref_check = rel_error(w_scipy, w_ref)
    log(
        f"cross-check: scipy DOP853 rtol 1e-12: err vs reference {ref_check:.2e} "
        f"({t():.1f} s, {info['nfev']} evaluations)"
    )

    # n enters once: the solve's cost does not depend on n
    big = gf.data.linear_teacher(jax.random.PRNGKey(1000), D, D, 64 * N, SINGULAR_VALUES)
    gradflow_flow(model, big, 1e-6, "tsit5")
    t_small, _ = best_of(lambda: gradflow_flow(model, data, 1e-6, "tsit5"), 2)
    t_big, _ = best_of(lambda: gradflow_flow(model, big, 1e-6, "tsit5"), 2)
    log(f"n independence: tsit5 rtol 1e-6 with n={N}: {t_small:.3f} s, n={64 * N}: {t_big:.3f} s")

    rows = {}  # (contender, target) -> dict(setting, err, first, repeated, work)

    def record(name, solve, found, n_repeat, first_name=None):
        for target, (tol, err) in found.items():
            rep, (_, info) = best_of(lambda tol=tol: solve(tol), n_repeat)
            first = first_call(first_name or name, tol) if first_name != "" else rep
            if "function_evaluations" in info:
                evals = info["function_evaluations"]
                work = f"{info['num_steps']} steps, {evals} evals"
            else:
                evals = info["nfev"]
                work = f"{evals} evals"
            rows[(name, target)] = dict(
                setting=f"rtol {tol:.0e}",
                err=err,
                first=first,
                repeated=rep,
                work=f"{work}, {rep / evals * 1e6:.0f} µs/eval",
            )

    # ---- gradflow ----------------------------------------------------------------------------
    for solver in ("tsit5", "dopri8"):
        name = f"gradflow {solver}"
        solve = lambda r, s=solver: gradflow_flow(model, data, r, s)
        record(name, solve, sweep(name, solve, w_ref, RTOL_GRID, log), args.repeat)
    for target in TARGETS:
        best = min(
            ("gradflow tsit5", "gradflow dopri8"), key=lambda k: rows[(k, target)]["repeated"]
        )
        rows[("gradflow", target)] = dict(rows[(best, target)], best=best)

    # ---- scipy -------------------------------------------------------------------------------
    with np.errstate(all="ignore"):  # rejected trial steps of loose tolerances overflow
        for method in ("RK45", "DOP853"):
            name = f"scipy {method}"
            solve = lambda r, m=method: scipy_solve(model, data, r, m)
            record(name, solve, sweep(name, solve, w_ref, RTOL_GRID, log), args.repeat)

    # ---- torchdiffeq -------------------------------------------------------------------------
    if not args.no_torch:
        torch = torch_setup()
        import torchdiffeq

        log(
            f"torch {torch.__version__}, torchdiffeq {torchdiffeq.__version__}, "
            f"{torch.get_num_threads()} thread"
        )
        name = "torchdiffeq dopri5"
        field = torch_field_moments(torch, data)
        solve = lambda r: torch_solve(torch, field, model, r)
        found = sweep(name, solve, w_ref, RTOL_GRID, log)
        record(name, solve, found, min(args.repeat, 2))
        # the plain full-data field, at the tolerance found for 1e-3 (n = 512 rows per evaluation)
        full = torch_field_full_data(torch, data)
        solve_full = lambda r: torch_solve(torch, full, model, r)
        tol3 = found[1e-3][0]
        w_full, _ = solve_full(tol3)
        record(
            "torchdiffeq dopri5 (full data)",
            solve_full,
            {1e-3: (tol3, rel_error(w_full, w_ref))},
            1,
            first_name="",
        )

    # ---- GD ----------------------------------------------------------------------------------
    gd_points, per_step = [], None
    for k in (64, 128, 256, 512):
        w, info = gd_solve(model, data, k)
        rep, _ = best_of(lambda kk=k: gd_solve(model, data, kk), 1)
        err = rel_error(w, w_ref)
        gd_points.append((info["lr"], err))
        per_step = rep / info["steps"]
        log(
            f"  GD lr={info['lr']:.3e} steps={info['steps']:>8}  err={err:9.2e}  "
            f"{rep:6.2f} s ({per_step * 1e6:.1f} µs/step)"
        )
    lrs, errs = np.array(gd_points).T
    slope = np.polyfit(np.log(lrs), np.log(errs), 1)[0]
    c_gd = errs[-1] / lrs[-1]
    log(
        f"GD error ≈ C·η with C = {c_gd:.3g} (slope {slope:.3f} over "
        f"η ∈ [{lrs[-1]:.2e}, {lrs[0]:.2e}])"
    )
    gd_notes = []
    for target in TARGETS:
        k = int(np.ceil(SAVE_DT * c_gd / target * 1.02))  # steps per save interval, 2% margin
        lr = SAVE_DT / k
        steps = int(round(T1 / lr))
        if steps <= args.gd_max_steps:
            t = Timer()
            w, info = gd_solve(model, data, k)
            first = t()
            rep, _ = best_of(lambda kk=k: gd_solve(model, data, kk), 1)
            err = rel_error(w, w_ref)
            rows[("GD", target)] = dict(
                setting=f"η {lr:.2e}",
                err=err,
                first=first,
                repeated=rep,
                work=f"{steps} steps (run), {rep / steps * 1e6:.1f} µs/step",
            )
            log(f"  GD for {target:.0e}: η={lr:.3e}, {steps} steps, err={err:.2e}, {rep:.2f} s")
        else:
            est = steps * per_step
            note = (
                f"GD for {target:.0e} would need η = {lr:.2e}, {steps:.2e} steps "
                f"(> {args.gd_max_steps:.0e}): NOT RUN; its time is extrapolated "
                f"from {per_step * 1e6:.1f} µs/step = {est:.3g} s"
            )
            gd_notes.append(note)
            log("  " + note)
            rows[("GD", target)] = dict(
                setting=f"η {lr:.2e}",
                err=float("nan"),
                first=None,
                repeated=est,
                work=f"{steps:.2e} steps, EXTRAPOLATED (not run)",
            )

    # ---- ensemble ----------------------------------------------------------------------------
    tol_e = float(rows[("gradflow tsit5", 1e-3)]["setting"].split()[1])
    keys = jax.random.split(jax.random.PRNGKey(7), args.seeds)
    make = lambda k: gf.models.DeepLinear(WIDTHS, k, init_scale=INIT_SCALE)
    ens = gf.ensemble(make, keys)
    singles = [make(k) for k in keys]
    run_ens = lambda: gf.flow(ens, data, T1, saveat=SAVE_TS, rtol=tol_e, atol=ATOL_FACTOR * tol_e)
    t = Timer()
    run_ens()
    ens_first = t()
    ens_rep, tr = best_of(run_ens, min(args.repeat, 2))
    one_rep, (_, st1) = best_of(
        lambda: gradflow_flow(singles[0], data, tol_e, "tsit5"), args.repeat
    )
    singles_rep, outs = best_of(
        lambda: [gradflow_flow(m, data, tol_e, "tsit5") for m in singles], 1
    )
    ens_steps = np.asarray(tr.stats["num_steps"])
    single_steps = np.array([o[1]["num_steps"] for o in outs])
    log(f"ensemble: {ens_rep:.2f} s; singles {singles_rep:.2f} s; one {one_rep:.3f} s")
    load1 = os.getloadavg()

    # ---- summary -----------------------------------------------------------------------------
    def fmt(x):
        return "—" if x is None else (f"{x:.3g}" if x < 100 else f"{x:.0f}")

    out = [
        f"Run {started} on {os.cpu_count()} CPUs (load average {load0[0]:.1f} at start, "
        f"{load1[0]:.1f} at end; the machine was shared with other jobs), jax {jax.__version__}"
        + ("" if args.no_torch else f", torch {torch.__version__} (1 thread)")
        + ".",
        "",
        f"Problem: d={D}, depth {H}, n={N}, s={[round(x, 4) for x in SINGULAR_VALUES]}, "
        f"ε={INIT_SCALE}, T={T1}: loss {loss[0]:.3g} → {loss[-1]:.2g}, modes learned at "
        f"t ≈ {learned}. Error = max over the {len(SAVE_TS)} save times of "
        f"|W − W_ref|_F / |W_ref|_F; atol = {ATOL_FACTOR}·rtol for every adaptive solver.",
        f"Reference: gradflow dopri8 rtol 1e-12 ({traj_ref.stats['num_steps']} steps); scipy "
        f"DOP853 at rtol 1e-12 agrees with it to {ref_check:.1e}.",
        f"Structure: the compiled solve's inputs are the moments (largest array {largest}; "
        f"none has n={N} rows: {no_n}); the same solve with n={64 * N}: {t_big:.3f} s vs "
        f"{t_small:.3f} s.",
        f"GD: error ≈ C·η, C = {c_gd:.3g} (measured log-log slope {slope:.2f}); "
        f"{per_step * 1e6:.1f} µs per step.",
        "",
    ]
    for target in TARGETS:
        g = rows[("gradflow", target)]
        out += [
            f"**Target error {target:.0e}** — gradflow = {g['best']} "
            f"({fmt(g['repeated'])} s repeated):",
            "",
            "| contender | setting | error | first call (s) | repeated (s) | "
            "repeated ÷ gradflow | work |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name in (
            "gradflow tsit5",
            "gradflow dopri8",
            "GD",
            "torchdiffeq dopri5",
            "torchdiffeq dopri5 (full data)",
            "scipy RK45",
            "scipy DOP853",
        ):
            r = rows.get((name, target))
            if r is None:
                continue
            err = "—" if not np.isfinite(r["err"]) else f"{r['err']:.1e}"
            out.append(
                f"| {name} | {r['setting']} | {err} | {fmt(r['first'])} | "
                f"{fmt(r['repeated'])} | {r['repeated'] / g['repeated']:.1f} | {r['work']} |"
            )
        out.append("")
    out += [f"- {note}" for note in gd_notes]
    out += [
        "- first call: a fresh process, imports and data excluded; for gradflow it includes "
        "tracing and XLA compilation, for GD the compilation of that step count; later calls "
        "with new data, a new initial model, new tolerances or horizon reuse the compiled solve.",
        f"- Ensemble of {args.seeds} seeds (tsit5, rtol {tol_e:.0e}, one vmapped solve): "
        f"{ens_rep:.2f} s repeated ({ens_first:.1f} s first call); {args.seeds} single solves "
        f"one after another: {singles_rep:.2f} s; one seed: {one_rep:.3f} s. "
        f"Ensemble ÷ one seed = {ens_rep / one_rep:.1f}× (target ≤ 8×); ensemble ÷ "
        f"{args.seeds} singles = {ens_rep / singles_rep:.2f}. Steps: ensemble loop "
        f"{int(ens_steps.max())} (members {int(ens_steps.min())}–{int(ens_steps.max())}), "
        f"single seeds {int(single_steps.min())}–{int(single_steps.max())}.",
    ]
    return report(out, args.out)


if __name__ == "__main__":
    sys.exit(main())
