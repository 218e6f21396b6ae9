"""Benchmark: the `resnet-long` problem (Marion et al. 2024, Fig. 2) trained to risk 1e-7 by
gradflow's error-controlled flow and by plain full-batch gradient descent in PyTorch at the
paper's step.

The problem (the defaults of `gradflow.experiments.resnet_long.LongConfig`, built exactly as
`run_long` builds it): x_i, y_i ~ N(0, I_16), n = 50 (`gf.data.gaussian`, key split from
PRNGKey(0)); `ResNet(16, 16, 64, 64, 16)`, i.e. d = q = d' = 16, width m = 64, depth L = 64,
h_{k+1} = h_k + 1/(L√m) V_{k+1} σ(W_{k+1} h_k/√q), σ the exact (erf) GELU, A = [I; 0] and
B = [0, I] fixed, tied init (V_k = 0, W_k = W ~ N(0, 1)). Trained until the paper's risk
ℓ = (1/n) Σ|f(x_i) − y_i|² falls below 1e-7.

Time correspondence (the experiment's UNITS). gradflow's risk is F = ℓ/2 and the residual weights
have mass 1/L, so `geometry="conditional_wasserstein"` integrates

    Z_k' = −L ∂F/∂Z_k = −(L/2) ∂ℓ/∂Z_k        (gradflow time t),

the paper's flow Z_k' = −L ∂ℓ/∂Z_k at half speed (t = 2τ). The paper's GD on ℓ with step lr
(plain Euclidean, lr = 5L·1e-3 = 0.32 for L = 64, the official script's `SGD(lr=N * 0.005)`),

    Z_k ← Z_k − lr ∂ℓ/∂Z_k = Z_k − (2 lr/L) · L ∂F/∂Z_k,

is the explicit Euler scheme of that same flow with step Δt = 2·lr/L = 0.01: GD step N is the
flow at time t = 2·N·lr/L = N/100 (up to the O(Δt) error of Euler). The script checks this:
PyTorch GD and `gf.descent(model, data, k, 2·lr/L, geometry="conditional_wasserstein")` agree to
rounding after a few hundred steps, and the trained weights of the full GD run are compared with
the flow at t = N_GD/100.

Step count. The paper reports ~80,000 steps (risk ~1e-7–1e-8) for this setting, but its official
script (`infinite_training_time.py`) trains h ← h + V_k σ(W_kᵀh)/L, without the 1/√m and 1/√q
of the paper's formula (which `gf.models.ResNet` implements, MODELS.md §2), on the mean over the
n·d entries: with that scaling GD at lr = 0.32 reaches a per-entry loss of 8e-8 after 75,000
steps (checked on these data). The normalised model trains ~10× more slowly: the flow reaches
ℓ < 1e-7 at t ≈ 7,914, i.e. ≈ 791,000 GD steps (at 80,000 steps, t = 800, ℓ ≈ 0.2). So the
default run of PyTorch GD takes hours.

Why a stabilised solver: the exponential tail is stiff. Near the minimum the largest eigenvalue
of the flow's Jacobian, L·∇²F, is ≈ 7.9, while ℓ decays at a rate ≈ 1.5e-3. An explicit
fifth-order method (Tsit5) is held at its stability limit, step ≈ 0.4 (40 GD steps for 6
gradient evaluations, whatever the tolerance): it needs 129k evaluations to ℓ < 1e-7 (measured:
21,498 steps, 925 s on this machine under a load of ~2), only ~6× fewer than GD at the paper's
step. The Jacobian of a gradient flow has a real spectrum, so a Runge–Kutta–Chebyshev method
(`solver="rkc"`, second order, s stages stable on [−0.65 s², 0]) takes steps set by accuracy
alone, at a cost of s ≈ √(1.54 hρ) evaluations each: ~11.5k evaluations in all.

Contenders:
- gradflow: `gf.flow_in_pieces` exactly as `gradflow run resnet-long` runs it (its `flow_to_level` on the
  experiment's save grid: 160 log-spaced saves in pieces of 16, `stop_below` = the target so
  the solve ends where ℓ crosses it; conditional Wasserstein; the experiment's solver 'rkc',
  rtol = 1e-6, atol = 1e-10; `--solver tsit5` for the fifth-order explicit baseline). Timed on
  the first call (fresh process: tracing and XLA compilation included) and on repeated calls
  (best of --repeat).
- PyTorch GD: float64, the network written plainly (stacked V, W unbound into layers, one Python
  loop over the 64 layers, fused addmm for the residual update, autograd for the gradient,
  in-place updates under no_grad), torch.set_num_threads = the faster of 1 and all cores
  (measured on a short run), ℓ checked every --check-every steps (the loss of every step is kept
  in a tensor and inspected in blocks, so the first step below the target is exact; at most
  check_every − 1 steps more are run). No compilation, so the first call is the run itself
  (`torch.compile` of loss + gradient: ~50 s to compile and ~15% faster steps; not used). Also a
  float32 row: its time per step measured on a short run × the float64 step count
  (EXTRAPOLATED).

Agreement: GD's weights after its N steps against the flow's at t = N·Δt (from the flow's last
save before it, a short solve at rtol 1e-8): relative distances of the weights, of V, of
W − W(0), of the predictions, and both risks.

`--quick`: the PyTorch run is cut at --quick-steps steps and its time extrapolated to the step
count N = t_hit/Δt predicted from the flow (EXTRAPOLATED, and said so everywhere); the default
runs the whole thing. `--target` changes the risk to reach (for development: --target 10 runs
everything for real in ~2 minutes).

Run: `.venv/bin/python benchmarks/resnet.py [--quick] [--repeat N] [--target R] [--out FILE]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys

import jax
import numpy as np
from _common import Timer, log, report  # the script's own folder, first on sys.path

import gradflow as gf
from gradflow.experiments import RunContext
from gradflow.experiments.resnet_common import GEOMETRY, flow_to_level
from gradflow.experiments.resnet_long import LongConfig, long_problem
from gradflow.models import ResNet

CONFIG = LongConfig()
TARGET = CONFIG.target_risk  # on ℓ = 2F
LR = CONFIG.paper_lr  # = 5L·1e-3 for L = 64
DT = 2 * LR / CONFIG.depth  # gradflow time per GD step (0.01)
T_MAX = CONFIG.t_max  # give up beyond this flow time


def problem():
    """(model, data) exactly as `run_long` builds them with the default LongConfig."""
    return long_problem(CONFIG)


def risk_of(model, data) -> float:
    return float(np.mean(np.sum((np.asarray(model(data.x)) - np.asarray(data.y)) ** 2, axis=1)))


# --------------------------------------------------------------------------------------------
# gradflow


def gradflow_solve(model, data, target, solver, rtol, atol, controller):
    """The flow until ℓ < target, as the experiment runs it (`flow_to_level` on its save grid)."""
    config = dataclasses.replace(CONFIG, target_risk=target, solver=solver, rtol=rtol, atol=atol)
    traj = flow_to_level(
        model, data, config, RunContext(), "flow", controller=controller, max_steps=1_000_000
    )
    risk = 2 * np.asarray(traj.loss)
    info = {
        "reached": traj.info["stopped_at"] is not None,
        "t_hit": traj.info["stopped_at"],
        "t_end": float(traj.ts[-1]),
        "risk_end": float(risk[-1]),
        "steps": int(np.sum(traj.stats["num_steps"])),
        "rejected": int(np.sum(traj.stats["num_rejected_steps"])),
        "evals": int(np.sum(traj.stats["function_evaluations"])),
        "evals_exact": bool(traj.stats["function_evaluations_exact"]),
        "pieces": int(traj.info["pieces"]),
    }
    return traj, info


def flow_state_at(traj, data, t, rtol, atol):
    """The flow's model at time t: from the last save ≤ t, a short solve to t (t within the
    saved range)."""
    ts = np.asarray(traj.ts)
    i = int(np.searchsorted(ts, t, side="right")) - 1
    if np.isclose(ts[i], t, rtol=0, atol=1e-9):
        return traj.at(i)
    piece = gf.flow(
        traj.at(i),
        data,
        float(t),
        t0=float(ts[i]),
        saveat=[float(t)],
        geometry=GEOMETRY,
        rtol=rtol,
        atol=atol,
        max_steps=1_000_000,
    )
    return piece.final


def first_call_gradflow(*spec) -> dict:
    """Wall time of the first call in a fresh process (imports and problem set-up excluded)."""
    out = subprocess.run(
        [sys.executable, __file__, "--first-call", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _first_call_child(spec: str):
    model, data = problem()
    jax.block_until_ready((model, data))
    t = Timer()
    _, info = gradflow_solve(model, data, *json.loads(spec))
    info["seconds"] = t()
    print(json.dumps(info))


# --------------------------------------------------------------------------------------------
# PyTorch


class TorchGD:
    """Full-batch GD on ℓ in plain PyTorch, from gradflow's initial weights (as float arrays)."""

    def __init__(self, torch, model, data, dtype):
        self.torch = torch
        a, b = model.embedding_matrices()
        as_t = lambda arr: torch.tensor(np.asarray(arr), dtype=dtype)
        self.x, self.y, self.a, self.b = as_t(data.x), as_t(data.y), as_t(a), as_t(b)
        self.v0, self.w0 = as_t(model.V), as_t(model.W)
        depth, dim, width = model.V.shape
        self.scale_v = 1.0 / (depth * np.sqrt(width))  # 1/(L√m)
        self.scale_w = 1.0 / np.sqrt(dim)  # 1/√q
        self.reset()

    def reset(self):
        self.V = self.v0.clone().requires_grad_(True)
        self.W = self.w0.clone().requires_grad_(True)

    def loss(self):
        torch = self.torch
        gelu = torch.nn.functional.gelu  # exact (erf) GELU, as gradflow's
        # (L, q, m) and (L, m, q) stacks, pre-scaled and pre-transposed once per step
        w_t = (self.W * self.scale_w).transpose(1, 2)  # W_kᵀ/√q
        v_t = (self.V * self.scale_v).transpose(1, 2)  # V_kᵀ/(L√m)
        h = self.x @ self.a.T
        for wk, vk in zip(w_t.unbind(0), v_t.unbind(0), strict=True):
            h = torch.addmm(h, gelu(h @ wk), vk)  # h + σ(h W_kᵀ/√q) V_kᵀ/(L√m)
        return ((h @ self.b.T - self.y) ** 2).sum(dim=1).mean()  # ℓ = (1/n) Σ|f − y|²

    def run(self, max_steps: int, check_every: int, lr: float = LR, target: float = TARGET):
        """GD until ℓ(θ_N) < target (N returned) or max_steps steps. Losses are kept on the
        device and inspected every `check_every` steps (and at the end)."""
        torch = self.torch
        losses = torch.empty(check_every, dtype=self.V.dtype)
        done = 0
        while done < max_steps:
            block = min(check_every, max_steps - done)
            for i in range(block):
                loss = self.loss()
                g_v, g_w = torch.autograd.grad(loss, (self.V, self.W))
                with torch.no_grad():
                    losses[i] = loss
                    self.V.sub_(g_v, alpha=lr)
                    self.W.sub_(g_w, alpha=lr)
            below = torch.nonzero(losses[:block] < target)
            if below.numel():
                # ℓ(θ_N) < target at N = done + j; the rest of the block was also run (at most
                # check_every − 1 extra steps, reported as `done`)
                first = done + int(below[0, 0])
                return first, done + block, float(losses[int(below[0, 0])])
            done += block
        with torch.no_grad():
            final = float(self.loss())
        return None, done, final

    def weights(self):
        return self.V.detach().double().numpy(), self.W.detach().double().numpy()


def torch_setup(threads: int):
    import torch

    torch.set_num_threads(threads)
    return torch


def torch_time_per_step(torch, model, data, dtype, steps: int = 100, budget: float = 3.0):
    """Seconds per GD step: `steps` steps, or fewer if they take more than `budget` seconds
    (a thread count that is much slower is not worth timing precisely)."""
    gd = TorchGD(torch, model, data, dtype)
    gd.run(5, 5, target=0.0)  # warm-up
    done, t = 0, Timer()
    while done < steps and (done == 0 or t() < budget):
        gd.run(10, 10, target=0.0)
        done += 10
    return t() / done


# --------------------------------------------------------------------------------------------


def rel(a, b) -> float:
    return float(np.linalg.norm(np.ravel(a) - np.ravel(b)) / np.linalg.norm(np.ravel(b)))


def weights_distance(va, wa, vb, wb) -> float:
    """|(V, W)_a − (V, W)_b| / |(V, W)_b| (Frobenius over all layers); W is dominated by its
    tied initial value, so the distance of the trained change ΔW is also reported."""
    return rel(
        np.concatenate([np.ravel(va), np.ravel(wa)]), np.concatenate([np.ravel(vb), np.ravel(wb)])
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="development run: PyTorch GD cut at --quick-steps and EXTRAPOLATED",
    )
    ap.add_argument("--quick-steps", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=2, help="gradflow repeated calls: best of N")
    ap.add_argument(
        "--target",
        type=float,
        default=TARGET,
        help=f"risk ℓ to reach (default {TARGET:g}, the experiment's)",
    )
    ap.add_argument("--solver", default=CONFIG.solver, help="gradflow's solver (the experiment's)")
    ap.add_argument("--rtol", type=float, default=CONFIG.rtol)
    ap.add_argument("--atol", type=float, default=CONFIG.atol)
    ap.add_argument("--controller", default="integral", choices=("pid", "integral"))
    ap.add_argument("--check-every", type=int, default=100, help="PyTorch: check ℓ every k steps")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="PyTorch threads (default: the faster of 1 and all cores, measured)",
    )
    ap.add_argument("--out", default=None, help="also write the markdown summary to this file")
    ap.add_argument("--first-call", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.first_call:
        return _first_call_child(args.first_call)
    if args.quick:
        args.repeat = 1
    target = args.target

    cores = len(os.sched_getaffinity(0))
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    load0 = os.getloadavg()
    model, data = problem()
    c = CONFIG
    log(
        f"resnet-long benchmark: n={c.n} d=q={c.dim} m={c.width} L={c.depth} {c.init_scheme} init, "
        f"{c.activation}; target ℓ < {target:g}; GD lr={LR} (Δt = 2·lr/L = {DT:g} per step)"
    )
    log(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {cores} cores, "
        f"{platform.processor() or platform.machine()}, load average {load0}"
    )
    risk0 = risk_of(model, data)

    # ---- PyTorch set-up and the exactness check: torch GD = gradflow's Euler iteration -----
    torch = torch_setup(1)
    timings = {}
    for threads in sorted({1, cores}) if args.threads is None else [args.threads]:
        torch.set_num_threads(threads)
        timings[threads] = torch_time_per_step(torch, model, data, torch.float64)
        log(f"PyTorch float64, {threads} thread(s): {timings[threads] * 1e3:.2f} ms/step")
    threads = min(timings, key=timings.get)
    torch.set_num_threads(threads)
    per_step_32 = torch_time_per_step(torch, model, data, torch.float32)
    log(
        f"PyTorch {torch.__version__}: using {threads} thread(s); float32 "
        f"{per_step_32 * 1e3:.2f} ms/step"
    )

    k_check = 300
    gd = TorchGD(torch, model, data, torch.float64)
    gd.run(k_check, k_check, target=0.0)
    v_t, w_t = gd.weights()
    ref = gf.descent(model, data, k_check, DT, geometry=GEOMETRY, save_every=k_check).final
    exact = weights_distance(v_t, w_t, np.asarray(ref.V), np.asarray(ref.W))
    log(
        f"check: PyTorch GD (lr {LR} on ℓ) vs gf.descent (Δt {DT:g} on F, conditional "
        f"Wasserstein), {k_check} steps: relative weight difference {exact:.1e}"
    )

    # ---- gradflow -----------------------------------------------------------------------------
    spec = (target, args.solver, args.rtol, args.atol, args.controller)
    first = first_call_gradflow(*spec)
    log(f"gradflow first call (fresh process, compilation included): {first['seconds']:.1f} s")
    rep, traj, info = np.inf, None, None
    for _ in range(args.repeat):
        traj = info = None  # free the previous trajectory first
        t = Timer()
        traj, info = gradflow_solve(model, data, *spec)
        rep = min(rep, t())
    if not info["reached"]:
        raise RuntimeError(f"gradflow did not reach ℓ < {target} by t = {T_MAX}")
    log(f"gradflow repeated (best of {args.repeat}): {rep:.1f} s; {info}")
    t_hit = info["t_hit"]
    n_pred = int(np.ceil(t_hit / DT))
    log(
        f"flow reaches ℓ = {target:g} at t = {t_hit:.2f} (root-found on the dense output), i.e. "
        f"GD step {n_pred} by the correspondence t = 2·N·lr/L"
    )

    # ---- PyTorch GD -----------------------------------------------------------------------------
    gd = TorchGD(torch, model, data, torch.float64)
    if args.quick:
        t = Timer()
        _, done, _ = gd.run(args.quick_steps, args.check_every, target=0.0)
        seconds_run = t()
        n_gd, gd_seconds = n_pred, seconds_run / done * n_pred
        extrapolated = True
        log(
            f"PyTorch GD (QUICK): {done} steps in {seconds_run:.1f} s "
            f"({seconds_run / done * 1e3:.2f} ms/step); EXTRAPOLATED to {n_pred} steps: "
            f"{gd_seconds:.0f} s"
        )
    else:
        max_steps = int(round(info["t_end"] / DT)) * 2  # twice the flow's: GD tracks the flow
        t = Timer()
        n_gd, done, risk_run = gd.run(max_steps, args.check_every, target=target)
        gd_seconds = t()
        extrapolated = False
        if n_gd is None:
            raise RuntimeError(
                f"PyTorch GD did not reach ℓ < {target} in {max_steps} steps "
                f"(ℓ = {risk_run:.3g}); the flow reached it at step {n_pred}"
            )
        log(
            f"PyTorch GD: ℓ < {target:g} at step {n_gd} (ℓ = {risk_run:.3g}); ran {done} steps "
            f"(checked every {args.check_every}) in {gd_seconds:.1f} s "
            f"({gd_seconds / done * 1e3:.2f} ms/step)"
        )
    v_gd, w_gd = gd.weights()
    del gd

    # ---- agreement: GD's iterate after `done` steps vs the flow at t = done·Δt --------------
    t_cmp = done * DT
    flow_cmp = flow_state_at(traj, data, t_cmp, args.rtol * 1e-2, args.atol * 1e-2)
    model_gd = ResNet.from_weights(v_gd, w_gd)
    v_f, w_f = np.asarray(flow_cmp.V), np.asarray(flow_cmp.W)
    w0 = np.asarray(model.W)
    agree = {
        "weights": weights_distance(v_gd, w_gd, v_f, w_f),
        "V": rel(v_gd, v_f),
        "dW": rel(w_gd - w0, w_f - w0),
        "pred": rel(np.asarray(model_gd(data.x)), np.asarray(flow_cmp(data.x))),
        "risk_gd": risk_of(model_gd, data),
        "risk_flow": risk_of(flow_cmp, data),
    }
    log(
        f"agreement at step {done} / t = {t_cmp:g}: |Δ(V,W)|/|(V,W)| = {agree['weights']:.2e}, "
        f"|ΔV|/|V| = {agree['V']:.2e}, |Δ(W − W0)|/|W − W0| = {agree['dW']:.2e}, "
        f"predictions {agree['pred']:.2e}; ℓ_GD = {agree['risk_gd']:.3e}, "
        f"ℓ_flow = {agree['risk_flow']:.3e}"
    )
    load1 = os.getloadavg()

    # ---- summary ------------------------------------------------------------------------------
    ratio_rep = gd_seconds / rep
    ratio_first = gd_seconds / first["seconds"]
    n32 = n_gd * per_step_32
    x = " (EXTRAPOLATED)" if extrapolated else ""
    s = "s" if threads > 1 else ""
    gd_work = (
        f"{n_gd} steps{x}"
        + ("" if extrapolated else f" (ran {done})")
        + f", {gd_seconds / n_gd * 1e3:.2f} ms/step"
    )
    if extrapolated:
        reached = (
            f"PyTorch GD was run for {done} steps only; its time is EXTRAPOLATED to the "
            f"{n_gd} steps predicted by the flow."
        )
    else:
        reached = (
            f"PyTorch GD reached it at step {n_gd} (flow time {n_gd * DT:.2f}; "
            f"{n_gd - n_pred:+d} steps from the flow's prediction)."
        )
    out = [
        f"Run {started} on {cores} cores (load average {load0[0]:.1f} at start, {load1[0]:.1f} "
        f"at end), jax {jax.__version__}, torch {torch.__version__} ({threads} thread{s}, the "
        f"faster of {', '.join(f'{k}: {v * 1e3:.1f}' for k, v in timings.items())} ms/step)"
        + (". **QUICK run: the PyTorch GD time is EXTRAPOLATED**" if extrapolated else "")
        + ".",
        "",
        f"Problem: `resnet-long` defaults (n = {c.n}, d = q = {c.dim}, m = {c.width}, "
        f"L = {c.depth}, {c.init_scheme} init, exact GELU, seed {c.seed}); ℓ from {risk0:.3g} to "
        f"< {target:g}. GD: lr = {LR} on ℓ = Euler step Δt = 2·lr/L = {DT:g} of gradflow's "
        f"conditional-Wasserstein flow of F = ℓ/2, so GD step N ↔ flow time t = N·{DT:g} "
        f"(checked: PyTorch GD and `gf.descent` agree to {exact:.0e} after {k_check} steps).",
        f"The flow reaches ℓ < {target:g} at t = {t_hit:.2f}, i.e. GD step {n_pred}. {reached}",
        "",
        "| contender | setting | work | first call (s) | repeated (s) | PyTorch GD ÷ this |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| gradflow `gf.flow` | {args.solver}, {args.controller} controller, rtol "
        f"{args.rtol:g}, atol {args.atol:g}, stops at ℓ = target | {info['steps']} steps "
        f"({info['rejected']} rejected), {info['evals']}"
        f"{'' if info['evals_exact'] else ' (rejected steps estimated)'} evals to "
        f"t = {info['t_end']:.6g}, "
        f"{rep / info['evals'] * 1e3:.2f} ms/eval | {first['seconds']:.1f} | {rep:.1f} | "
        f"**{ratio_rep:.1f}×**{x} (first call: {ratio_first:.1f}×) |",
        f"| PyTorch GD, float64 | lr {LR}, {threads} thread{s}, ℓ checked every "
        f"{args.check_every} steps | {gd_work} | {gd_seconds:.0f}{x} | = first call "
        f"(nothing compiled) | 1 |",
        f"| PyTorch GD, float32 | lr {LR}, {threads} thread{s} | {n_gd} steps × "
        f"{per_step_32 * 1e3:.2f} ms/step (EXTRAPOLATED) | {n32:.0f} (EXTRAPOLATED) | — | "
        f"{gd_seconds / n32:.2f} |",
        "",
        f"Ratio PyTorch GD ÷ gradflow: **{ratio_rep:.1f}×** on repeated calls, {ratio_first:.1f}× "
        f"on the first call (target ≥ 20×){x}. Work: {n_gd} gradients for GD against "
        f"{info['evals']} for gradflow ({n_gd / info['evals']:.1f}× fewer); time per gradient: "
        f"PyTorch {gd_seconds / n_gd * 1e3:.2f} ms, gradflow {rep / info['evals'] * 1e3:.2f} ms "
        f"(solver overhead included).",
        f"Agreement of the two trained models: GD after {done} steps against the flow at "
        f"t = {t_cmp:g}: relative distance of the weights (V, W) {agree['weights']:.1e}, of V "
        f"{agree['V']:.1e}, of the trained change W − W(0) {agree['dW']:.1e}, of the "
        f"predictions f(x_i) {agree['pred']:.1e}; ℓ_GD = {agree['risk_gd']:.2e}, "
        f"ℓ_flow = {agree['risk_flow']:.2e}.",
    ]
    return report(out, args.out)


if __name__ == "__main__":
    sys.exit(main())
