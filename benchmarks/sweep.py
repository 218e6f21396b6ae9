"""Benchmark: `gradflow sweep` against the same runs one by one with `gradflow run`, and the
persistent compilation cache on a second `gradflow run`.

1. The sweep: deep-linear, preset quick, grid depth = 2, 3, 4 × init_scale = 0.05, 0.1, 0.2,
   --seeds 16 (144 runs), local engine (one worker per core), starting from an EMPTY compilation
   cache. Reported: wall time; start-up (wall time minus the busiest worker's time in cells:
   spawning the workers, importing, the table and report); compilation (the first run of each
   depth in each worker minus the median run of that depth: tracing and compiling); computation
   (the rest of the runs' time).
2. One by one: a subset of the 144 runs (--subset, spread over the grid), each as its own
   `python -m gradflow.cli run deep-linear --set preset=quick ...` process, with the cache the
   sweep has just filled (the most favourable case for one by one). The time of the 144 is
   EXTRAPOLATED from the subset's mean (said so in the output). Start-up is the process time
   minus the run's own time (summary wall_time_s), compile = that run time minus the time of the
   same run repeated in a warm process.
3. Warm cache: `gradflow run deep-linear --set preset=quick` twice into new folders with a new
   empty cache folder: second ÷ first (target ≤ 0.5), --pairs times (median reported);
   `--only-cache` runs only this part.

Run: `python benchmarks/sweep.py [--seeds 16] [--subset 9] [--preset quick|tiny] [--out FILE]`;
`--preset tiny` (dim 2, n 8: seconds per run) where quick runs take too long (a busy machine),
`--seeds 2 --subset 3` for a short development run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRESET = ["quick"]  # --preset
GRID = {"depth": [2, 3, 4], "init_scale": [0.05, 0.1, 0.2]}
# The console script, as a user runs it (its entry point sets what the compilation cache needs).
_SCRIPT = Path(sys.executable).with_name("gradflow")
CLI = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "gradflow_command"]


def _cli_run(out: Path, sets: dict, env: dict) -> tuple[float, dict]:
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    start = time.perf_counter()
    subprocess.run(
        [*CLI, "run", "deep-linear", *args, "--out", str(out)],
        env=env,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - start
    return wall, json.loads((out / "summary.json").read_text())


def sweep_part(seeds: int, work: Path, env: dict, log) -> dict:
    import pandas as pd

    import gradflow as gf

    os.environ.update(env)
    start = time.perf_counter()
    df = gf.sweep("deep-linear", GRID, seeds=seeds, out=work / "sweep", sets={"preset": PRESET[0]})
    wall = time.perf_counter() - start
    info = df.attrs["sweep"]
    assert (df["status"] == "ok").all(), df[df["status"] != "ok"][["folder", "error"]]
    per_worker: dict[int, float] = {}
    for cell in info["cells"]:
        per_worker[cell["pid"]] = per_worker.get(cell["pid"], 0.0) + cell["wall_s"]
    # A cell runs its seeds together (deep-linear's run_seeds hook: one ensemble flow, then each
    # seed's diagnostics), so the unit of time is the cell. The first cell of each depth in each
    # worker traces and compiles (or loads from the cache) that depth's programs: its excess over
    # the median cell of that depth is counted as compilation.
    cells = pd.DataFrame(info["cells"])
    cell_of_row = df["folder"].str.split("/").str[1].str[:3].astype(int)
    cells["depth"] = cells["index"].map(dict(zip(cell_of_row, df["depth"], strict=True)))
    compile_s = 0.0
    for (_, depth), part in cells.groupby(["pid", "depth"]):
        typical = statistics.median(cells.loc[cells["depth"] == depth, "wall_s"])
        compile_s += max(0.0, part["wall_s"].max() - typical)
    cells_s = float(cells["wall_s"].sum())
    busiest = max(per_worker.values())
    out = {
        "runs": len(df),
        "workers": len(per_worker),
        "wall_s": wall,
        "startup_s": wall - busiest,
        "compile_s_total": compile_s,
        "compute_s_total": cells_s - compile_s,
        "runs_by_action": info["runs"],
    }
    log(f"sweep: {len(df)} runs in {wall:.1f} s on {len(per_worker)} workers; {out}")
    return out


def one_by_one(seeds: int, subset: int, work: Path, env: dict, log) -> dict:
    from gradflow.runs import run_experiment

    cells = [(d, s) for d in GRID["depth"] for s in GRID["init_scale"]]
    picks = [cells[round(i * (len(cells) - 1) / max(1, subset - 1))] for i in range(subset)]
    rows = []
    for i, (depth, scale) in enumerate(picks):
        sets = {"preset": PRESET[0], "depth": depth, "init_scale": scale, "seed": i % seeds}
        wall, summary = _cli_run(work / f"single{i}", sets, env)
        # The same run in this (warm) process, twice: the second is the computation alone.
        run_experiment("deep-linear", sets, work / f"warm{i}a")
        _, warm = run_experiment("deep-linear", sets, work / f"warm{i}b")
        rows.append((wall, summary["wall_time_s"], warm.summary["wall_time_s"]))
        log(
            f"gradflow run {sets}: {wall:.1f} s (run {summary['wall_time_s']:.1f} s, warm "
            f"{warm.summary['wall_time_s']:.2f} s)"
        )
    n = len(GRID["depth"]) * len(GRID["init_scale"]) * seeds
    mean = lambda k: statistics.mean(r[k] for r in rows)  # noqa: E731
    return {
        "measured_runs": len(rows),
        "mean_wall_s": mean(0),
        "extrapolated_total_s": n * mean(0),
        "startup_s_per_run": mean(0) - mean(1),
        "compile_s_per_run": mean(1) - mean(2),
        "compute_s_per_run": mean(2),
    }


def warm_cache(work: Path, env: dict, log, pairs: int = 3) -> dict:
    """`pairs` times: the same `gradflow run` twice with a new empty cache folder; the median of
    the ratios (one pair varies by ~±5% on a 2-core machine)."""
    firsts, seconds = [], []
    for k in range(pairs):
        cache_env = {**env, "GRADFLOW_CACHE_DIR": str(work / f"fresh-cache-{k}")}
        first, _ = _cli_run(work / f"cache-{k}-1", {"preset": PRESET[0]}, cache_env)
        second, _ = _cli_run(work / f"cache-{k}-2", {"preset": PRESET[0]}, cache_env)
        firsts.append(first)
        seconds.append(second)
        log(
            f"gradflow run twice: first {first:.1f} s, second {second:.1f} s = {second / first:.2f}x"
        )
    ratios = [b / a for a, b in zip(firsts, seconds, strict=True)]
    log(f"second / first, median of {pairs}: {statistics.median(ratios):.2f}x")
    return {
        "first_s": firsts,
        "second_s": seconds,
        "ratios": ratios,
        "ratio": statistics.median(ratios),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--subset", type=int, default=9, help="runs measured one by one")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--preset", default="quick", choices=["quick", "tiny"])
    ap.add_argument("--pairs", type=int, default=3, help="first/second run pairs (warm cache)")
    ap.add_argument("--only-cache", action="store_true", help="only the warm-cache pairs (3.)")
    args = ap.parse_args(argv)
    PRESET[0] = args.preset
    log = lambda s: print(s, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="gf-sweep-bench-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "GRADFLOW_CACHE_DIR": str(work / "cache"), "MPLBACKEND": "Agg"}
        results = {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes"),
            "cores": len(os.sched_getaffinity(0)),
            "seeds": args.seeds,
            "preset": args.preset,
            "load_avg_start": os.getloadavg(),
        }
        if args.only_cache:
            results["cache"] = warm_cache(work, env, log, args.pairs)
            _finish(results, args.out, log)
            return
        results["sweep"] = sweep_part(args.seeds, work, env, log)
        results["one_by_one"] = one_by_one(args.seeds, args.subset, work, env, log)
        results["speedup"] = (
            results["one_by_one"]["extrapolated_total_s"] / results["sweep"]["wall_s"]
        )
        log(
            f"sweep {results['sweep']['wall_s']:.1f} s vs one by one (extrapolated from "
            f"{args.subset} runs) {results['one_by_one']['extrapolated_total_s']:.1f} s: "
            f"{results['speedup']:.1f}x faster"
        )
        results["cache"] = warm_cache(work, env, log, args.pairs)
    _finish(results, args.out, log)


def _finish(results: dict, out, log) -> None:
    if out:
        Path(out).write_text(json.dumps(results, indent=2) + "\n")
    log(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
