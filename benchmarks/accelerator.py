"""gradflow on whatever backend is present (CPU, GPU), against PyTorch on the same device and
against a roofline floor. Issue 11's benchmark.

Measured in one run, printed as ratios, with the device's name:

1. **Ceilings**: the copy bandwidth (a jitted x ↦ x + 1 on a large float64 array: 2 × its bytes
   moved) and the float64 matmul throughput (a square jitted matmul).
2. **Mean-field gradient** (`MeanFieldResNet`, q = 16, L = 10, n = 256, tanh, float64,
   F = (1/2n) Σ|f − y|²) for L·M = 10⁴ … 10⁷: gradflow's gradient (`GradientFlowProblem`,
   jitted) against PyTorch eager (the same model written plainly: a loop over layers, autograd)
   and PyTorch compiled (`torch.compile` of the loss, backward through AOTAutograd), and against
   the floor max(bytes ÷ bandwidth, flops ÷ matmul rate), where bytes = the parameters read once
   and the gradient written once (2 × 8 × L·M·(2q + 1): the activations could in principle stay
   on chip) and flops = 12·n·q·L·M (two matmuls forward, four backward).
3. **Ensembles**: the deep-linear benchmark problem (d = 32, depth 4, T = 150; see
   benchmarks/deep_linear.py) flowed for E seeds in one solve (`ensemble="auto"`), E = 1 … 4096,
   against one seed.
4. **resnet-long to risk 1e-2** (n = 50, q = 16, m = 64, L = 64, tied init, GELU, the paper's
   flow; `solver="rkc"`): gradflow's flow against PyTorch GD on the same device at the paper's
   step (lr = 0.32 on ℓ = 2F, the residual weights' GD equals the flow at t = 2·N·lr/L). PyTorch's
   time is measured over `--torch-steps` steps and EXTRAPOLATED to the step count the flow
   predicts (`gf.analytic.resnet_gd_steps`); the script says so.

Usage: python benchmarks/accelerator.py [--quick] [--out FILE.json] [--no-torch]
`--quick` is a reduced CPU form (small sizes; tested in tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

# PyTorch shares the device: JAX must not take 75% of its memory up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import gradflow as gf  # noqa: E402

N, Q, L, D_IN, D_OUT = 256, 16, 10, 4, 2


def best_time(fn, repeat: int) -> float:
    fn()  # warm-up: compilation
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def ceilings(quick: bool, repeat: int) -> dict:
    size = 2**23 if quick else 2**27  # 64 MB or 1 GB of float64
    x = jnp.ones(size)
    add = jax.jit(lambda a: a + 1.0)
    t = best_time(lambda: add(x).block_until_ready(), repeat)
    n = 1024 if quick else 8192
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n))
    mm = jax.jit(jnp.matmul)
    t_mm = best_time(lambda: mm(a, a).block_until_ready(), repeat)
    return {"copy_bytes_per_s": 2 * 8 * size / t, "matmul_flops_per_s": 2.0 * n**3 / t_mm}


# ---------------------------------------------------------------------------------------------
# mean-field gradient


@eqx.filter_jit
def _value_and_grad(problem, params):
    return problem.value_and_grad(params)


def _torch_device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def torch_mean_field(model, data, compiled: bool):
    import torch

    device = _torch_device()
    as_t = lambda a, grad=False: torch.tensor(
        np.asarray(a), dtype=torch.float64, device=device, requires_grad=grad
    )
    u, w, b = as_t(model.u, True), as_t(model.w, True), as_t(model.b, True)
    x, y = as_t(data.x), as_t(data.y)
    layers, m = u.shape[0], u.shape[1]

    def loss_fn(u, w, b):
        h = torch.nn.functional.pad(x, (0, Q - x.shape[1]))
        for k in range(layers):
            h = h + torch.tanh(h @ w[k].T + b[k]) @ u[k] / (layers * m)
        return 0.5 * ((h[:, Q - y.shape[1] :] - y) ** 2).sum(dim=1).mean()

    loss = torch.compile(loss_fn) if compiled else loss_fn

    def step():
        for p in (u, w, b):
            p.grad = None
        value = loss(u, w, b)
        value.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return value

    return step


def mean_field(sizes, floor_rates, repeat, torch_modes, compiled_sizes) -> list[dict]:
    data = gf.data.gaussian(jax.random.PRNGKey(0), N, D_IN, D_OUT)
    rows = []
    for total in sizes:
        m = total // L
        model = gf.models.MeanFieldResNet(D_IN, Q, L, m, D_OUT, key=jax.random.PRNGKey(1))
        problem, params = gf.GradientFlowProblem.from_model(model, data)
        grad = lambda problem=problem, params=params: jax.block_until_ready(
            _value_and_grad(problem, params)
        )
        t = best_time(grad, repeat)
        flops = 12.0 * N * Q * L * m
        moved = 2 * 8.0 * L * m * (2 * Q + 1)
        floor = max(
            moved / floor_rates["copy_bytes_per_s"], flops / floor_rates["matmul_flops_per_s"]
        )
        row = {"particles": L * m, "gradflow_s": t, "floor_s": floor, "of_floor": floor / t}
        for mode in torch_modes:
            if mode == "compiled" and total not in compiled_sizes:
                continue  # compilation per size is slow: the sizes the targets name
            try:
                row[f"torch_{mode}_s"] = best_time(
                    torch_mean_field(model, data, mode == "compiled"), repeat
                )
            except Exception as err:  # e.g. no C compiler for torch.compile on this machine
                row[f"torch_{mode}_error"] = f"{type(err).__name__}: {str(err).splitlines()[0]}"
        rows.append(row)
        ratios = ", ".join(
            f"{k[6:-2]} {row[k] / t:.2f}x"
            for k in row
            if k.startswith("torch_") and k.endswith("_s")
        )
        print(
            f"mean-field L·M={L * m:>9,}: gradflow {1e3 * t:9.2f} ms ({100 * floor / t:.0f}% of "
            f"floor {1e3 * floor:.2f} ms)"
            + (f"; PyTorch time ÷ gradflow time: {ratios}" if ratios else ""),
            flush=True,
        )
    return rows


# ---------------------------------------------------------------------------------------------
# ensembles


def ensembles(counts, quick: bool, repeat: int) -> list[dict]:
    d, depth, t1 = (4, 2, 20.0) if quick else (32, 4, 150.0)
    s = [4.0 * 0.7**j for j in range(5 if not quick else 3)]
    data = gf.data.linear_teacher(jax.random.PRNGKey(0), d, d, 16 * d, s)
    make = lambda k: gf.models.DeepLinear([d] * (depth + 1), k, 0.1)
    ts = np.linspace(0.0, t1, 61)
    rows, one = [], None
    for e in counts:
        members = gf.ensemble(make, jax.random.split(jax.random.PRNGKey(1), e))
        run = lambda members=members: jax.block_until_ready(
            gf.flow(members, data, t1, saveat=ts, rtol=1e-8, atol=1e-10).loss
        )
        t = best_time(run, 1 if e > 64 else repeat)
        one = t if one is None else one
        rows.append({"seeds": e, "time_s": t, "ratio_to_one_seed": t / one})
        print(f"ensemble of {e:>5} seeds: {t:8.3f} s = {t / one:6.2f}x one seed", flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# resnet-long to risk 1e-2


def resnet_long(quick: bool, torch_steps: int, with_torch: bool) -> dict:
    n, m, depth, target, lr = (6, 8, 4, 0.3, 0.32) if quick else (50, 64, 64, 1e-2, 0.32)
    key_data, key_model = jax.random.split(jax.random.PRNGKey(0))
    data = gf.data.gaussian(key_data, n, Q, Q)
    model = gf.models.ResNet(Q, Q, m, depth, Q, key=key_model, init="tied")
    ts = np.concatenate([[0.0], np.geomspace(1.0, 2e4, 64)])
    kw = dict(geometry="conditional_wasserstein", solver="rkc", rtol=1e-6, atol=1e-10)
    run = lambda: gf.flow(model, data, ts[-1], saveat=ts, stop_below=target / 2, **kw)
    run()  # compilation
    start = time.perf_counter()
    traj = run()
    t_flow = time.perf_counter() - start
    t_hit = traj.info["stopped_at"]
    evaluations = int(np.sum(traj.stats["function_evaluations"]))
    steps = float(gf.analytic.resnet_gd_steps(t_hit, lr, depth)) if t_hit else float("nan")
    row = {
        "target_risk": target,
        "flow_s": t_flow,
        "flow_time": t_hit,
        "gradient_evaluations": evaluations,
        "ms_per_gradient": 1e3 * t_flow / evaluations,
        "gd_steps_predicted": steps,
    }
    print(
        f"resnet-long to ℓ < {target:g}: gradflow rkc {t_flow:.2f} s, {evaluations} gradients "
        f"({row['ms_per_gradient']:.2f} ms each); the paper's GD needs {steps:,.0f} steps",
        flush=True,
    )
    if with_torch:
        per_step = torch_gd_step_time(model, data, lr, torch_steps)
        row.update(
            torch_ms_per_step=1e3 * per_step,
            torch_s_extrapolated=per_step * steps,
            speedup_extrapolated=per_step * steps / t_flow,
        )
        print(
            f"  PyTorch GD {1e3 * per_step:.2f} ms/step (measured over {torch_steps} steps) × "
            f"{steps:,.0f} steps = {per_step * steps:.1f} s EXTRAPOLATED: gradflow "
            f"{row['speedup_extrapolated']:.1f}x faster",
            flush=True,
        )
    return row


def torch_gd_step_time(model, data, lr: float, steps: int) -> float:
    """Full-batch GD on ℓ = (1/n)Σ|f − y|² (the paper's) for the ResNet, in plain PyTorch."""
    import torch

    device = _torch_device()
    as_t = lambda a, grad=False: torch.tensor(
        np.asarray(a), dtype=torch.float64, device=device, requires_grad=grad
    )
    V, W = as_t(model.V, True), as_t(model.W, True)
    x, y = as_t(data.x), as_t(data.y)
    depth, q, m = V.shape

    def step():
        h = x
        for k in range(depth):
            h = h + (torch.nn.functional.gelu(h @ W[k].T / q**0.5) @ V[k].T) / (depth * m**0.5)
        loss = ((h - y) ** 2).sum(dim=1).mean()
        gv, gw = torch.autograd.grad(loss, (V, W))
        with torch.no_grad():
            V.sub_(lr * gv)
            W.sub_(lr * gw)

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


# ---------------------------------------------------------------------------------------------
# scale: a whole mean-field flow with many particles


def _peak_memory() -> tuple[str, float]:
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return "device peak", stats["peak_bytes_in_use"] / 1e9
    import resource

    return "process peak RSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def scale_flow(total: int, t1: float) -> dict:
    """A mean-field flow with `total` particles (q = 16, L = 10, n = 256) to t1: wall time and
    peak memory (the model, the solver's stages and the saved states all on the device)."""
    data = gf.data.gaussian(jax.random.PRNGKey(0), N, D_IN, D_OUT)
    model = gf.models.MeanFieldResNet(D_IN, Q, L, total // L, D_OUT, key=jax.random.PRNGKey(2))
    start = time.perf_counter()
    traj = gf.flow(
        model,
        data,
        t1,
        geometry="conditional_wasserstein",
        saveat=[0.0, t1],
        rtol=1e-6,
        atol=1e-9,
    )
    jax.block_until_ready(traj.loss)
    wall = time.perf_counter() - start
    where, peak = _peak_memory()
    row = {
        "particles": total,
        "t1": t1,
        "wall_s": wall,
        "steps": int(np.sum(traj.stats["num_steps"])),
        "loss": [float(traj.loss[0]), float(traj.loss[-1])],
        "peak_memory_gb": peak,
        "peak_memory_kind": where,
    }
    print(
        f"flow of {total:,} particles to t = {t1:g}: {wall:.1f} s (compilation included), "
        f"{row['steps']} steps, F {row['loss'][0]:.4g} -> {row['loss'][1]:.4g}, {where} "
        f"{peak:.2f} GB",
        flush=True,
    )
    return row


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="reduced sizes (CPU check)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--torch-steps", type=int, default=300)
    ap.add_argument("--out", default=None, help="write the numbers as JSON (after each section)")
    ap.add_argument(
        "--scale",
        type=float,
        default=0,
        metavar="PARTICLES",
        help="also flow a mean-field model with this many particles to t = --scale-t1",
    )
    ap.add_argument("--scale-t1", type=float, default=1.0)
    ap.add_argument("--skip", nargs="*", default=[], choices=["mean_field", "ensembles", "resnet"])
    args = ap.parse_args(argv)
    have_torch = False
    if not args.no_torch:
        try:
            import torch

            torch.set_num_threads(len(os.sched_getaffinity(0)))
            have_torch = True
        except ImportError:
            print("PyTorch not installed: gradflow only (make bench installs it)")
    device = jax.devices()[0]
    print(
        f"backend {jax.default_backend()}, device {getattr(device, 'device_kind', device)}, "
        f"jax {jax.__version__}, {platform.machine()}, {os.cpu_count()} CPUs"
        + (f", torch {torch.__version__}" if have_torch else ""),
        flush=True,
    )
    out = {"device": str(getattr(device, "device_kind", device)), "backend": jax.default_backend()}
    out["ceilings"] = ceilings(args.quick, args.repeat)
    print(
        f"ceilings: copy {out['ceilings']['copy_bytes_per_s'] / 1e9:.1f} GB/s, float64 matmul "
        f"{out['ceilings']['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s",
        flush=True,
    )

    def save():
        if args.out:  # after each section: a run stopped at a time limit keeps what it measured
            with open(args.out, "w") as fh:
                json.dump(out, fh, indent=1)

    save()
    if args.scale:
        out["scale"] = scale_flow(int(args.scale), args.scale_t1)
        save()
    modes = [] if not have_torch else (["eager"] if args.no_compile else ["eager", "compiled"])
    sizes = [10**3] if args.quick else [10**4, 10**5, 10**6, 10**7]
    if "mean_field" not in args.skip:
        compiled = {10**3} if args.quick else {10**5, 10**6}
        out["mean_field"] = mean_field(sizes, out["ceilings"], args.repeat, modes, compiled)
        save()
    counts = [1, 2] if args.quick else [1, 64, 256, 1024, 4096]
    if "ensembles" not in args.skip:
        out["ensembles"] = ensembles(counts, args.quick, args.repeat)
        save()
    if "resnet" not in args.skip:
        out["resnet_long"] = resnet_long(args.quick, args.torch_steps, have_torch)
        save()
    return out


if __name__ == "__main__":
    main()
