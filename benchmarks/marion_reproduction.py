"""Reproduce the official Fig. 2 script of Marion, Wu, Sander & Biau (ICLR 2024) with gradflow.

The script is `infinite_training_time.py` of the authors' code (MIT licence; a copy is kept at
`shared/reference/marion-official/`). It draws, after `set_all_seeds(0)`, in this order and in
float32: `W_to_repeat = torch.randn(d, M)`, an unused `B = torch.eye(d) + 0.4 * torch.randn(d, d)`,
`X = torch.randn(n, d)`, `Y = torch.randn(n, d)` (d = 16, M = 64, n = 50), and trains the depth
N = 64 ResNet x ← x + GELU(x W_k) V_k / N (V_k = 0, W_k = W_to_repeat at the start, no embedding)
on `((net(X) - Y)**2).mean()` with `torch.optim.SGD(lr=N * 0.005)`, i.e. lr = 0.32.

This script

1. exports those numbers with the script's own seed and draw order (`official_numbers`) and casts
   them to float64 — the same numbers, run in float64 on both sides;
2. runs the official loop in PyTorch float64 (`official_loop`, its code kept line for line);
3. runs `gf.descent(model, data, steps, lr=0.32, loss="mse", geometry="euclidean")` on
   `gf.models.ResNet.from_weights(V, W, layout="official")` (no 1/√m, 1/√q; exact GELU; A = B = I
   fixed), and checks the weights after 1,000 steps and the first step with loss < 1e-3;
4. predicts that step from the flow: `gf.flow(..., geometry="conditional_wasserstein",
   loss="mse", stop_below=1e-3)` reaches the level at flow time t*, and the SGD step
   lr = N·η on every layer is the Euler step η of that flow, so t* is
   `gf.analytic.resnet_gd_steps(t*, lr, N, loss_ratio=1)` = t*·N/lr steps (loss_ratio = 1: the
   descent and the flow use the same loss, PyTorch's `MSELoss`);
5. times both to loss < 1e-3 and < 1e-7, one thread each.

Usage: python benchmarks/marion_reproduction.py [--quick] [--out FILE.json]
(`--quick`: depth 8, lr 0.04, ~100 steps, no timings, for the test; the numbers of the full run are in
benchmarks/results.md.)
"""

from __future__ import annotations

import os

# One thread for XLA, before jax is imported (the comparison is one core each).
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

import gradflow as gf  # noqa: E402

jax.config.update("jax_enable_x64", True)
print = functools.partial(print, flush=True)  # progress of a long run, as it goes

LR_PER_LAYER = 0.005  # the script's lr = N * 0.005
CHECK_STEPS = 1000  # weights compared after this many steps


def official_numbers(seed: int = 0, M: int = 64, d: int = 16, n: int = 50) -> dict:
    """The script's W_to_repeat (d, M), X (n, d), Y (n, d), drawn exactly as it draws them
    (float32), returned as float64 numpy arrays."""
    import torch

    np.random.seed(seed)  # the script's set_all_seeds(seed)
    random.seed(seed)
    torch.manual_seed(seed)
    W_to_repeat = torch.randn(d, M)
    _unused_B = torch.eye(d, d) + 0.4 * torch.randn(d, d)  # drawn by the script: keeps the stream
    X = torch.randn(n, d)
    Y = torch.randn(n, d)
    return {k: v.numpy().astype(np.float64) for k, v in dict(W=W_to_repeat, X=X, Y=Y).items()}


def official_loop(
    numbers: dict, N: int, steps: int, targets=(), snapshot: int | None = None, lr=None
):
    """The script's training loop in float64 (its ResNet, loss and SGD, line for line).

    Returns (losses before each step, {target: first step index k with loss(θ_k) < target},
    (V, W) after `snapshot` steps, wall seconds to reach each target)."""
    import torch
    import torch.nn as nn

    class ResNet(nn.Module):
        def __init__(self, V, W, d, N):
            super().__init__()
            self.V, self.W, self.d, self.N = V, W, d, N
            self.sigma = torch.nn.GELU()

        def forward(self, x):
            for W_i, V_i in zip(self.W, self.V, strict=True):
                x = x + self.sigma(x.mm(W_i)).mm(V_i) / self.N
            return x

    def loss(pred, Y):
        return ((pred - Y) ** 2).mean()

    X = torch.tensor(numbers["X"], dtype=torch.float64)
    Y = torch.tensor(numbers["Y"], dtype=torch.float64)
    W0 = torch.tensor(numbers["W"], dtype=torch.float64)
    M, d = W0.shape[1], W0.shape[0]
    V = nn.Parameter(torch.zeros(N, M, d, dtype=torch.float64))
    W = nn.Parameter(W0.repeat(N, 1, 1))
    net = ResNet(V, W, d, N)
    optimizer = torch.optim.SGD(net.parameters(), lr=N * LR_PER_LAYER if lr is None else lr)
    losses, first, wall, snap = [], {}, {}, None
    start = time.perf_counter()
    for k in range(steps + 1):
        if k == snapshot:
            snap = (V.detach().numpy().copy(), W.detach().numpy().copy())
        optimizer.zero_grad()
        output = loss(net(X), Y)  # the loss of θ_k
        value = output.item()
        losses.append(value)
        for target in targets:
            if target not in first and value < target:
                first[target], wall[target] = k, time.perf_counter() - start
        if k == steps or (targets and len(first) == len(targets)):
            break
        output.backward()
        optimizer.step()
    return np.array(losses), first, snap, wall


def gradflow_problem(numbers: dict, N: int):
    """The script's initial network and data as gradflow objects (official layout: V (N, M, d)
    zeros, W (N, d, M) = W_to_repeat repeated; `normalise=False` is the layout's default)."""
    W0 = numbers["W"]
    V = np.zeros((N, W0.shape[1], W0.shape[0]))
    W = np.broadcast_to(W0, (N, *W0.shape))
    model = gf.models.ResNet.from_weights(V, W, layout="official", activation="gelu")
    return model, gf.Dataset(numbers["X"], numbers["Y"])


def gradflow_descent_to(model, data, lr, targets, chunk=1000, fine=20, limit=200_000):
    """gf.descent run once through every target, in compiled chunks of `chunk` steps saving every
    `fine` steps; the window of `fine` steps where the loss crosses a target is re-stepped with a
    save per step to find the first k with loss(θ_k) < target.

    Returns ({target: k}, {target: wall seconds from the start to the end of the chunk where the
    loss first fell below it, compilation excluded (a warm-up chunk runs first)},
    {target: steps done by then})."""
    gf.descent(model, data, chunk, lr, loss="mse", save_every=fine)  # compile
    gf.descent(model, data, fine, lr, loss="mse", save_every=1)  # compile
    first, wall, done_at = {}, {}, {}
    done, current, spent = 0, model, 0.0
    while done < limit and len(first) < len(targets):
        start = time.perf_counter()
        traj = gf.descent(current, data, chunk, lr, loss="mse", save_every=fine)
        jax.block_until_ready(traj.loss)
        spent += time.perf_counter() - start
        loss = np.asarray(traj.loss)
        for t in targets:
            if t in first or not np.any(loss < t):
                continue
            i = int(np.argmax(loss < t))  # save i (step done + i·fine) is the first below
            window = gf.descent(traj.at(i - 1), data, fine, lr, loss="mse", save_every=1)
            j = int(np.argmax(np.asarray(window.loss) < t))
            first[t], wall[t], done_at[t] = done + (i - 1) * fine + j, spent, done + chunk
        current, done = traj.final, done + chunk
    return first, wall, done_at


def cw_flow(model, data, level: float):
    """The conditional-Wasserstein flow of MSELoss from `model`, stopped where it reaches
    `level` (one compiled solve for every level: the level is an array). Solver 'rkc': the
    stabilised explicit method for the stiff tail of such flows (benchmarks/resnet.py: ~10×
    fewer gradients than Tsit5 on the same kind of network)."""
    return gf.flow(
        model,
        data,
        1e7,
        geometry="conditional_wasserstein",
        loss="mse",
        stop_below=level,
        solver="rkc",
    )


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        jax.block_until_ready(jax.tree.leaves(out.loss))
        best = min(best, time.perf_counter() - start)
    return best, out


def reproduce_full(N: int, lr: float, check_steps: int, targets, max_steps: int) -> dict:
    """Steps 1-5 of the module docstring at the script's size: the flow first (it predicts how
    many steps each target needs), then the official loop and gf.descent to the targets."""
    import torch

    numbers = official_numbers()
    out = {"depth": N, "lr": lr, "check_steps": check_steps, "targets": list(targets)}
    print(f"Marion et al. Fig. 2 script: N = {N}, lr = {lr:g}, float64 on the script's numbers")
    _, _, (V_off, W_off), _ = official_loop(numbers, N, check_steps, snapshot=check_steps, lr=lr)
    model, data = gradflow_problem(numbers, N)
    traj = gf.descent(model, data, check_steps, lr, loss="mse", save_every=check_steps)
    V_gf, W_gf = traj.final.stacked_weights(layout="official")
    rel = max(
        float(np.linalg.norm(np.asarray(V_gf) - V_off) / np.linalg.norm(V_off)),
        float(np.linalg.norm(np.asarray(W_gf) - W_off) / np.linalg.norm(W_off)),
    )
    out["weights_relative_difference"] = rel
    print(f"  weights after {check_steps} steps: max relative difference {rel:.2e}")

    flow = {}
    for t in targets:  # the first call compiles; the others reuse the solve (the level is data)
        wall, ftraj = timed(lambda t=t: cw_flow(model, data, t))
        t_star = ftraj.info["stopped_at"]
        flow[t] = {
            "t_star": t_star,
            "steps_predicted": gf.analytic.resnet_gd_steps(t_star, lr, N, loss_ratio=1.0),
            "flow_steps": int(np.asarray(ftraj.stats["num_steps"])),
            "first_call_s": wall,
        }
        print(
            f"  flow to {t:g}: t* = {t_star:.6g}, {flow[t]['flow_steps']} solver steps, "
            f"{wall:.1f} s -> {flow[t]['steps_predicted']:.1f} GD steps predicted"
        )
    flow[targets[0]]["compiled_s"], _ = timed(lambda: cw_flow(model, data, targets[0]))
    for t in targets[1:]:
        flow[t]["compiled_s"] = flow[t]["first_call_s"]

    limit = min(max_steps, int(1.02 * max(f["steps_predicted"] for f in flow.values())) + 10)
    losses, first, _, torch_wall = official_loop(numbers, N, limit, targets=targets, lr=lr)
    per_step = torch_wall_per_step = None
    print(f"  official loop ({len(losses) - 1} steps): first below {first}, wall {torch_wall}")
    first_gf, gf_wall, gf_done = gradflow_descent_to(model, data, lr, targets, limit=limit)
    print(f"  gf.descent: first below {first_gf}, wall {gf_wall} (to the chunk ends {gf_done})")
    out.update(first_step_official=first, first_step_gradflow=first_gf, flow=flow)
    out["wall_s"] = {}
    for t in targets:
        off = first.get(t)
        pred = flow[t]["steps_predicted"]
        flow[t]["relative_difference"] = None if off is None else (pred - off) / off
        if off is None:  # beyond the step cap: PyTorch's time extrapolated from its step rate
            per_step = torch_wall[max(torch_wall)] / first[max(first)] if first else None
            torch_wall_per_step = per_step
        row = {
            "steps": off if off is not None else pred,
            "torch_s": torch_wall.get(t),
            "torch_s_extrapolated": None
            if off is not None or per_step is None
            else per_step * pred,
            "gradflow_descent_s": gf_wall.get(t),
            "gradflow_descent_steps_timed": gf_done.get(t),
            "gradflow_flow_s": flow[t]["compiled_s"],
        }
        out["wall_s"][str(t)] = row
        print(
            f"  loss < {t:g}: first step official {off}, gf.descent {first_gf.get(t)}, flow "
            f"{pred:.1f} ({'n/a' if off is None else f'{(pred - off) / off:+.3%}'}); wall "
            f"(one thread): PyTorch {row['torch_s'] or row['torch_s_extrapolated']} s"
            f"{' (extrapolated)' if off is None else ''}, gf.descent {row['gradflow_descent_s']}"
            f" s, gf.flow {row['gradflow_flow_s']:.2f} s"
        )
    out["torch_s_per_step"] = torch_wall_per_step
    out["versions"] = {"torch": torch.__version__, "jax": jax.__version__}
    return out


def reproduce_quick(N: int, lr: float, check_steps: int, target: float, steps: int) -> dict:
    """The reduced form the test runs (no timings, few compilations): one gf.descent saving every
    step, and the flow's crossing interpolated between 401 saves on [0, 2] (`gf.fits.crossing_time`)
    instead of located by `stop_below`."""
    numbers = official_numbers()
    out = {"depth": N, "lr": lr, "check_steps": check_steps, "targets": [target]}
    print(f"Marion et al. Fig. 2 script: N = {N}, lr = {lr:g}, float64 on the script's numbers")
    _, _, (V_off, W_off), _ = official_loop(numbers, N, check_steps, snapshot=check_steps, lr=lr)
    model, data = gradflow_problem(numbers, N)
    dense = gf.descent(model, data, steps, lr, loss="mse", geometry="euclidean", save_every=1)
    V_gf, W_gf = dense.at(check_steps).stacked_weights(layout="official")
    rel = max(
        float(np.linalg.norm(np.asarray(V_gf) - V_off) / np.linalg.norm(V_off)),
        float(np.linalg.norm(np.asarray(W_gf) - W_off) / np.linalg.norm(W_off)),
    )
    out["weights_relative_difference"] = rel
    print(f"  weights after {check_steps} steps: max relative difference {rel:.2e}")
    _, first, _, _ = official_loop(numbers, N, steps, targets=(target,), lr=lr)
    below = np.asarray(dense.loss) < target
    ours = int(np.argmax(below)) if below.any() else None
    out["first_step_official"] = {str(target): first.get(target)}
    out["first_step_gradflow"] = {str(target): ours}
    print(f"  first step with loss < {target:g}: official {first.get(target)}, gf.descent {ours}")
    ftraj = gf.flow(
        model,
        data,
        2.0,
        geometry="conditional_wasserstein",
        loss="mse",
        saveat=np.linspace(0.0, 2.0, 401),
        rtol=1e-10,
        atol=1e-12,
    )
    t_star = gf.fits.crossing_time(
        ftraj.ts, ftraj.loss, target, direction="down", interpolation="log"
    )
    predicted = gf.analytic.resnet_gd_steps(t_star, lr, N, loss_ratio=1.0)
    off = first.get(target)
    err = None if off is None else (predicted - off) / off
    out["flow"] = {
        str(target): {"t_star": t_star, "steps_predicted": predicted, "relative_difference": err}
    }
    print(
        f"  flow: loss {target:g} at t* = {t_star:.6g} -> {predicted:.1f} steps predicted "
        f"(official {off}; relative difference {'n/a' if err is None else f'{err:+.2%}'})"
    )
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="depth 8, ~100 steps, no timings (for the test)"
    )
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    ap.add_argument(
        "--max-steps", type=int, default=25_000, help="cap on the official loop's steps"
    )
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    if args.quick:  # the script's lr per layer at depth 8; loss 1 is reached near step 80
        out = reproduce_quick(8, 8 * LR_PER_LAYER, 50, 1.0, 120)
    else:
        out = reproduce_full(64, 64 * LR_PER_LAYER, CHECK_STEPS, (1e-3, 1e-7), args.max_steps)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
