"""Compare experiment summaries with those recorded before the library-first redesign.

    .venv/bin/python scripts/compare_baseline.py [NAME ...] [--runs DIR] [--rtol 1e-8] [--atol 1e-12]
        [--default] [--no-run] [-v]

Runs each named experiment (default: all) with `--set quick=true` (and, with `--default`, the
default `deep-linear`) into DIR (default `runs/baseline-compare`), then compares every number of
its summary.json with `tests/data/baseline_d1673ff/summaries/NAME.json`, key path by key path,
relative to the larger magnitude (differences below --atol, round-off zeros, count as equal). Timings and solver statistics (steps, evaluations) are not
compared; keys renamed by the redesign are mapped (`KEY_MAP`). Prints one line per experiment:
numbers compared, the largest relative difference and where, keys only in one of the two.
Exit status 1 if any difference exceeds --rtol.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

BASELINE = Path(__file__).resolve().parents[1] / "tests" / "data" / "baseline_d1673ff" / "summaries"

# Numbers that are not results: timings and solver work (which a new solver state or a different
# order of pieces changes without changing the flow).
IGNORED = (
    "wall_time",
    "wall_time_s",
    "wall_s",
    "flow_wall_time_s",
    "solver_steps",
    "steps",
    "num_steps",
    "solver_rejected_steps",
    "function_evaluations",
    "function_evaluations_exact",
    "status",
)

# old key path -> new key path, for keys the redesign renamed (filled in as they change).
KEY_MAP: dict[str, dict[str, str]] = {}


def flatten(value, prefix=""):
    """{dotted.key.path: leaf} of a JSON value (list items indexed)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}{i}."))
        return out
    return {prefix[:-1]: value}


def ignored(path: str) -> bool:
    return any(part in IGNORED or part.endswith("_wall_time_s") for part in path.split("."))


def compare(old: dict, new: dict, mapping: dict[str, str]):
    old_flat = {mapping.get(k, k): v for k, v in flatten(old).items() if not ignored(k)}
    new_flat = {k: v for k, v in flatten(new).items() if not ignored(k)}
    worst, where, compared, differ, big = 0.0, None, 0, [], []
    for key in sorted(set(old_flat) & set(new_flat)):
        a, b = old_flat[key], new_flat[key]
        if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or a is None:
            if a != b:
                differ.append(key)
            continue
        if isinstance(a, int | float) and isinstance(b, int | float):
            compared += 1
            if math.isnan(a) and math.isnan(b):
                continue
            scale = max(abs(a), abs(b))
            # Below the absolute floor two numbers are round-off zeros (a loss of 1e-15 against
            # 3e-15): their relative difference says nothing about the computation.
            rel = abs(a - b) / scale if scale > 0 and abs(a - b) > ATOL[0] else 0.0
            if not math.isfinite(rel):
                rel = math.inf if a != b else 0.0
            if rel > worst:
                worst, where = rel, key
            if rel > RTOL[0]:
                big.append((rel, key, a, b))
        elif a != b:
            differ.append(key)
    only_old = sorted(set(old_flat) - set(new_flat))
    only_new = sorted(set(new_flat) - set(old_flat))
    if VERBOSE[0]:
        for rel, key, a, b in sorted(big, reverse=True)[:12]:
            print(f"    {rel:.2e}  {key}: {a!r} -> {b!r}")
    return compared, worst, where, differ, only_old, only_new


RTOL, ATOL, VERBOSE = [1e-8], [1e-12], [False]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--runs", default="runs/baseline-compare")
    parser.add_argument("--rtol", type=float, default=1e-8)
    parser.add_argument(
        "--atol", type=float, default=1e-12, help="differences below this are round-off zeros"
    )
    parser.add_argument("--default", action="store_true", help="also the default deep-linear")
    parser.add_argument("--no-run", action="store_true", help="compare existing run folders")
    parser.add_argument("-v", "--verbose", action="store_true", help="list the largest differences")
    args = parser.parse_args(argv)
    RTOL[0], ATOL[0], VERBOSE[0] = args.rtol, args.atol, args.verbose
    from gradflow.experiments import REGISTRY, run_experiment

    names = args.names or sorted(REGISTRY)
    runs = [(n, {"quick": "true"}, n) for n in names]
    if args.default:
        runs.append(("deep-linear", {}, "deep-linear-default"))
    status = 0
    for name, overrides, stem in runs:
        folder = Path(args.runs) / stem
        if not (BASELINE / f"{stem}.json").is_file():
            print(
                f"{stem:22s} new     (no baseline: the experiment came after {BASELINE.parent.name})"
            )
            continue
        if not args.no_run:
            kwargs = (
                {"overwrite": True} if "overwrite" in run_experiment.__code__.co_varnames else {}
            )
            run_experiment(name, overrides, out=folder, **kwargs)
        new = json.loads((folder / "summary.json").read_text())
        old = json.loads((BASELINE / f"{stem}.json").read_text())
        compared, worst, where, differ, only_old, only_new = compare(
            old, new, KEY_MAP.get(stem, {})
        )
        flag = "ok" if worst <= args.rtol and not differ else "DIFFERS"
        if flag != "ok":
            status = 1
        print(
            f"{stem:22s} {flag:7s} {compared:5d} numbers, max rel diff {worst:.2e}"
            + (f" at {where}" if where else "")
            + (f"; changed non-numbers: {differ[:6]}" if differ else "")
            + (
                f"; only before: {only_old[:6]}{'…' if len(only_old) > 6 else ''}"
                if only_old
                else ""
            )
            + (f"; only now: {only_new[:6]}{'…' if len(only_new) > 6 else ''}" if only_new else ""),
            flush=True,
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
