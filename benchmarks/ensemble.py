"""Benchmark: an ensemble of E seeds in one `gf.flow` call against E single solves, on the CPU,
for each `ensemble=` strategy of `gf.flow`.

The problem is benchmarks/deep_linear.py's (whitened linear teacher d = 32, depth 4, n = 512,
five modes, init scale 0.1, horizon T = 150, all five saddles visited), with seeds drawn from
PRNGKey(7); rtol = 1e-6, atol = 1e-8, Tsit5. Strategies (see `ENSEMBLE_STRATEGIES` in
src/gradflow/_flow.py):

- 'map' (per-member stepping): the members one after another inside one compiled program, each
  with its own step-size controller;
- 'auto': on a CPU, 'map' over vmapped groups of members fitting in 48 KB of parameters;
- 'vmap': one batched loop, each member its own step size, the loop running until the slowest
  member is done (finished members masked, not skipped);
- 'lockstep': one ODE system, one controller (the RMS error over all members): every member
  takes the steps of the hardest one.

For each: the first call (compilation included), a repeated call (best of --repeat), the steps
taken (for lockstep: the shared steps), and the largest relative difference of the members'
final loss from their single solves (per-member stepping: ~1e-12; lockstep: within the flow's
tolerance). Singles: E separate `gf.flow` calls of one compiled solve (repeated call timed).

Run: `python benchmarks/ensemble.py [--seeds 64] [--repeat 1] [--dim 32]`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

import gradflow as gf

sys.path.insert(0, str(Path(__file__).parent))
import deep_linear as dl  # noqa: E402  (the problem)

RTOL, ATOL = 1e-6, 1e-8
STRATEGIES = ("auto", "map", "vmap", "lockstep")


def timed(fn, repeat: int):
    start = time.perf_counter()
    out = fn()
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return first, best, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--dim", type=int, default=dl.D)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    d = args.dim
    widths = [d] * (dl.H + 1)
    data = gf.data.linear_teacher(jax.random.PRNGKey(1000), d, d, dl.N, dl.SINGULAR_VALUES)
    keys = jax.random.split(jax.random.PRNGKey(7), args.seeds)
    make = lambda k: gf.models.DeepLinear(widths, k, init_scale=dl.INIT_SCALE)  # noqa: E731
    singles = [make(k) for k in keys]
    members = gf.Ensemble.stack(singles)
    flow = lambda m, **kw: gf.flow(m, data, dl.T1, saveat=dl.SAVE_TS, rtol=RTOL, atol=ATOL, **kw)  # noqa: E731

    rows = {}
    first, rep, trajs = timed(lambda: [flow(m) for m in singles], args.repeat)
    final = np.array([float(t.loss[-1]) for t in trajs])
    steps = [int(t.stats["num_steps"]) for t in trajs]
    rows["singles"] = {"first_s": first, "repeat_s": rep, "steps": f"{min(steps)}-{max(steps)}"}
    print(f"{args.seeds} singles: first {first:.2f} s, repeated {rep:.2f} s", flush=True)
    for strategy in STRATEGIES:
        first, rep, traj = timed(lambda s=strategy: flow(members, ensemble=s), args.repeat)
        loss = np.asarray(traj.loss)[:, -1]
        diff = float(np.max(np.abs(loss - final) / np.abs(final)))
        n = np.asarray(traj.stats["num_steps"]).ravel()
        rows[strategy] = {
            "first_s": first,
            "repeat_s": rep,
            "vs_singles": rep / rows["singles"]["repeat_s"],
            "steps": f"{n.min()}-{n.max()}",
            "max_rel_diff_final_loss": diff,
            "info": traj.info.get("ensemble"),
        }
        print(f"ensemble={strategy}: {rows[strategy]}", flush=True)
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes"),
        "cores": len(os.sched_getaffinity(0)),
        "load_avg": os.getloadavg(),
        "seeds": args.seeds,
        "dim": d,
        "rows": rows,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
