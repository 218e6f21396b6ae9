"""Gradient evaluations per second of the mean-field ResNet objective, against the FLOP floor
and a plain PyTorch implementation of the same gradient.

The problem: `MeanFieldResNet` with state dimension q = 16, L = 10 layers, M particles per layer
(L·M from 10² to 10⁵), tanh neurons with bias, n = 256 samples, float64,
F = (1/2n) Σ|f(x_i) − y_i|².
One gradient evaluation is the forward pass (two matmuls of n×q×M per layer) and the backward
pass (four): about 12·n·q·L·M flops. The floor is a dense float64 matmul with the same flop count
(square, N = (flops/2)^{1/3}) timed on the same machine; "fraction of floor" = matmul time /
gradient time. PyTorch: the same model written plainly (a Python loop over layers, autograd),
float64, with as many threads as JAX uses.

Usage: .venv/bin/python benchmarks/mean_field.py [--quick] [--repeat N] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import gradflow as gf

N, Q, L = 256, 16, 10


def best_time(fn, repeat: int) -> float:
    fn()  # warm-up / compile
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


@eqx.filter_jit
def _value_and_grad(problem, params):
    return problem.value_and_grad(params)


def jax_gradient(model, data):
    problem, params = gf.GradientFlowProblem.from_model(model, data)
    return lambda: jax.block_until_ready(_value_and_grad(problem, params))


def torch_gradient(model, data):
    import torch

    u = torch.tensor(np.asarray(model.u), dtype=torch.float64, requires_grad=True)
    w = torch.tensor(np.asarray(model.w), dtype=torch.float64, requires_grad=True)
    b = torch.tensor(np.asarray(model.b), dtype=torch.float64, requires_grad=True)
    x = torch.tensor(np.asarray(data.x), dtype=torch.float64)
    y = torch.tensor(np.asarray(data.y), dtype=torch.float64)
    layers, m = u.shape[0], u.shape[1]

    def step():
        for p in (u, w, b):
            p.grad = None
        h = torch.nn.functional.pad(x, (0, Q - x.shape[1]))
        for k in range(layers):
            h = h + torch.tanh(h @ w[k].T + b[k]) @ u[k] / (layers * m)
        loss = 0.5 * ((h[:, Q - y.shape[1] :] - y) ** 2).sum(dim=1).mean()
        loss.backward()
        return loss

    return step


def matmul_floor(flops: float, repeat: int) -> tuple[float, int]:
    size = max(8, int(round((flops / 2) ** (1 / 3))))
    a = jax.random.normal(jax.random.PRNGKey(0), (size, size))
    b = jax.random.normal(jax.random.PRNGKey(1), (size, size))
    mm = jax.jit(jnp.matmul)
    t = best_time(lambda: jax.block_until_ready(mm(a, b)), repeat)
    return t * flops / (2.0 * size**3), size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    sizes = [10, 100, 1000] if args.quick else [10, 100, 1000, 10000]
    threads = len(os.sched_getaffinity(0))
    try:
        import torch

        torch.set_num_threads(threads)
        have_torch = not args.no_torch
    except ImportError:
        have_torch = False
    data = gf.data.tanh_teacher(jax.random.PRNGKey(0), N, 4, 2)
    rows = []
    for m in sizes:
        model = gf.models.MeanFieldResNet(4, Q, L, m, 2, key=jax.random.PRNGKey(1))
        flops = 12.0 * N * Q * L * m
        t_jax = best_time(jax_gradient(model, data), args.repeat)
        t_floor, size = matmul_floor(flops, args.repeat)
        t_torch = (
            best_time(torch_gradient(model, data), args.repeat) if have_torch else float("nan")
        )
        row = {
            "particles": L * m,
            "flops": flops,
            "jax_s": t_jax,
            "jax_evals_per_s": 1 / t_jax,
            "floor_s": t_floor,
            "floor_matmul_n": size,
            "fraction_of_floor": t_floor / t_jax,
            "gflops": flops / t_jax / 1e9,
            "torch_s": t_torch,
            "speedup_vs_torch": t_torch / t_jax,
        }
        rows.append(row)
        print(
            f"L·M={L * m:>7}  gradflow {1 / t_jax:10.1f} grad/s ({row['gflops']:.2f} GFLOP/s, "
            f"{100 * row['fraction_of_floor']:.0f}% of the matmul floor)  "
            f"torch {1 / t_torch:10.1f} grad/s  speed-up {row['speedup_vs_torch']:.2f}x",
            flush=True,
        )
    lines = [
        "| L·M | flops / grad | gradflow grad/s | GFLOP/s | matmul floor (s) | % of floor "
        "| PyTorch grad/s | gradflow / PyTorch |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['particles']:,} | {r['flops']:.2e} | {r['jax_evals_per_s']:.1f} | "
            f"{r['gflops']:.2f} | {r['floor_s']:.2e} | {100 * r['fraction_of_floor']:.0f}% | "
            f"{1 / r['torch_s']:.1f} | {r['speedup_vs_torch']:.2f}x |"
        )
    table = "\n".join(lines)
    header = (
        f"machine: {platform.processor() or platform.machine()}, {threads} cores visible, "
        f"jax {jax.__version__}" + (f", torch {torch.__version__}" if have_torch else "")
    )
    print(header)
    print(table)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(header + "\n\n" + table + "\n")


if __name__ == "__main__":
    main()
