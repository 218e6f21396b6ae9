"""Fault injection for run folders: kill `gradflow run NAME --set preset=tiny --out DIR` at a
random time and check that the folder can be trusted.

Each trial starts the run as a subprocess, sends SIGKILL, SIGTERM or SIGINT (or SIGTERM twice:
`--double`) after a random delay, then checks the folder:

- complete with `status: ok`, and the same summary numbers as an uninterrupted run; or
- marked `interrupted` or `running` (or never started: no config.json yet), and
  `gradflow run --resume --out DIR` (a fresh run when it never started) completes it to the same
  numbers as an uninterrupted run of the same configuration.

Numbers are compared exactly; the runner's wall times and resume count are ignored. A handled
signal must end the process with 130 (SIGINT) or 143 (SIGTERM) and one `error:` line, never a
traceback. Prints the count of trials per outcome; exits 1 if any trial failed.

    python scripts/fault_injection.py --trials 24                  # every experiment in turn
    python scripts/fault_injection.py --trials 3 --experiments resnet-relu --seed 1
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

IGNORED = ("resumed",)  # and every key ending in wall_time_s
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}
HANDLED_EXIT = {"SIGTERM": 143, "SIGINT": 130}


def gradflow_command() -> list[str]:
    """The `gradflow` entry point next to this interpreter (else `python -m gradflow.cli`)."""
    script = Path(sys.executable).with_name("gradflow")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "gradflow_command"]


def numbers(folder: Path) -> dict:
    """summary.json without the runner's wall times and resume count."""
    summary = json.loads((folder / "summary.json").read_text())
    return {k: v for k, v in summary.items() if k not in IGNORED and not k.endswith("wall_time_s")}


def status(folder: Path) -> str:
    """The folder's status: 'absent' (no config.json: the run never started), the status in
    summary.json, 'running' without one, 'damaged' if it cannot be read."""
    if not (folder / "config.json").is_file():
        return "absent"
    try:
        return json.loads((folder / "summary.json").read_text()).get("status", "damaged")
    except FileNotFoundError:
        return "running"
    except (OSError, ValueError):
        return "damaged"


def run(args: list, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*gradflow_command(), *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


@dataclass
class Reference:
    """An uninterrupted run: its numbers and how long the whole command took."""

    numbers: dict
    seconds: float


def reference(name: str, workdir: Path) -> Reference:
    folder = workdir / f"reference-{name}"
    start = time.perf_counter()
    proc = run(["run", name, "--set", "preset=tiny", "--out", folder])
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or status(folder) != "ok":
        raise RuntimeError(f"the uninterrupted tiny run of {name} failed: {proc.stderr[-2000:]}")
    return Reference(numbers(folder), seconds)


@dataclass
class Trial:
    experiment: str
    signal: str
    delay: float
    outcome: str
    ok: bool
    detail: str = ""


def _stderr_problem(stderr: str, expect_line: bool) -> str:
    if "Traceback" in stderr:
        return "a traceback on stderr: " + " | ".join(stderr.splitlines()[-6:])
    lines = [line for line in stderr.splitlines() if line.strip()]
    if expect_line and not (lines and lines[-1].startswith("error: ")):
        return "no one-line error as the last line of stderr"
    return ""


def trial(
    name: str, sig: str, delay: float, workdir: Path, ref: Reference, during: bool = False
) -> Trial:
    """One trial: start the run, signal it after `delay` s (twice for 'SIGTERMx2'), check.
    With `during`, the delay counts from the moment the run folder's config.json appears."""
    folder = workdir / f"trial-{name}-{sig}-{delay:.2f}-{random.getrandbits(32):08x}"
    proc = subprocess.Popen(
        [*gradflow_command(), "run", name, "--set", "preset=tiny", "--out", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if during:
        deadline = time.perf_counter() + 120
        while not (folder / "config.json").exists() and proc.poll() is None:
            if time.perf_counter() > deadline:
                break
            time.sleep(0.02)
    time.sleep(delay)
    signalled = proc.poll() is None
    sent_at = time.perf_counter()
    if signalled:
        if sig == "SIGTERMx2":
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
        else:
            proc.send_signal(SIGNALS[sig])
    try:
        _, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        return Trial(name, sig, delay, "hung after the signal", False)
    waited = time.perf_counter() - sent_at
    found = status(folder)

    def done(outcome: str, problem: str = "") -> Trial:
        return Trial(name, sig, delay, outcome, not problem, problem)

    if not signalled:
        if proc.returncode != 0 or found != "ok":
            return done("finished before the signal", f"exit {proc.returncode}, status {found}")
        same = numbers(folder) == ref.numbers
        return done("finished before the signal", "" if same else "numbers differ")

    started = found != "absent"
    if sig in HANDLED_EXIT and started:  # handlers installed once the folder exists
        if proc.returncode not in (HANDLED_EXIT[sig], 0):
            return done(f"{found} after {sig}", f"exit {proc.returncode}: {stderr[-500:]}")
        problem = _stderr_problem(stderr, expect_line=proc.returncode != 0)
        if problem:
            return done(f"{found} after {sig}", problem)
    if sig == "SIGTERMx2" and started:
        if proc.returncode != 143 or waited > 5.0:
            return done("SIGTERM twice", f"exit {proc.returncode} after {waited:.1f} s")
    if found == "ok":
        same = numbers(folder) == ref.numbers
        return done("complete despite the signal", "" if same else "numbers differ")
    if found == "absent":  # killed before config.json: a fresh run must be accepted there
        again = run(["run", name, "--set", "preset=tiny", "--out", folder])
        outcome = "never started; run again"
    elif found in ("interrupted", "running"):
        again = run(["run", "--resume", "--out", folder])
        outcome = f"{found}; resumed"
    else:
        return done(f"status {found}", "the folder is neither complete nor resumable")
    if again.returncode != 0 or status(folder) != "ok":
        return done(outcome, f"exit {again.returncode}: {again.stderr[-500:]}")
    if numbers(folder) != ref.numbers:
        return done(outcome, "numbers differ from the uninterrupted run")
    return done(outcome)


def inject(
    experiments: list[str],
    trials: int,
    seed: int,
    workdir: Path,
    double: bool = False,
    log=print,
    during: bool = False,
) -> list[Trial]:
    """Run `trials` trials cycling over `experiments`; returns them. With `during`, every signal
    is sent while the run is working (a random time after its folder appears)."""
    rng = random.Random(seed)
    refs: dict[str, Reference] = {}
    results = []
    for i in range(trials):
        name = experiments[i % len(experiments)]
        if name not in refs:
            refs[name] = reference(name, workdir)
            log(f"reference {name}: {refs[name].seconds:.1f} s")
        kinds = ["SIGKILL", "SIGTERM", "SIGINT"] + (["SIGTERMx2"] if double else [])
        sig = kinds[i % len(kinds)] if trials >= len(kinds) else rng.choice(kinds)
        # the command's start-up (imports, validation) takes ~2 s of the reference's time
        delay = (
            rng.uniform(0.0, 0.6 * refs[name].seconds - 1.0)
            if during
            else (rng.uniform(0.3, refs[name].seconds))
        )
        result = trial(name, sig, max(delay, 0.0), workdir, refs[name], during)
        log(
            f"{i + 1:3d} {name:18s} {sig:9s} at {delay:5.2f} s: {result.outcome}"
            + ("" if result.ok else f"  FAILED: {result.detail}")
        )
        results.append(result)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--experiments", default="", help="comma-separated (default: all)")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--double", action="store_true", help="also SIGTERM twice")
    parser.add_argument(
        "--during", action="store_true", help="signal only while the run works (not at start-up)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run folders")
    args = parser.parse_args(argv)
    if args.experiments:
        experiments = args.experiments.split(",")
    else:
        from gradflow.experiments import REGISTRY

        experiments = sorted(REGISTRY)
    workdir = Path(tempfile.mkdtemp(prefix="gradflow-faults-"))
    print(f"seed {args.seed}, {args.trials} trials, folders in {workdir}")
    try:
        results = inject(
            experiments, args.trials, args.seed, workdir, args.double, during=args.during
        )
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    counts = collections.Counter(
        (r.outcome if r.ok else f"FAILED {r.outcome}: {r.detail}") for r in results
    )
    print("\noutcome counts:")
    for outcome, n in sorted(counts.items()):
        print(f"  {n:3d}  {outcome}")
    failed = sum(not r.ok for r in results)
    print(f"{len(results) - failed}/{len(results)} trials passed")
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())
