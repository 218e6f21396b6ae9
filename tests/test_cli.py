"""The `gradflow` command end to end: `list`, `run`, `report`, invalid input (exit 2, one line
naming the field and what is accepted) and failed runs (exit 1, partial results kept).

Most tests drive `gradflow.cli.app` in process with typer's `CliRunner` (JAX's compilation cache
is then shared between the runs of this module); two go through a real subprocess of the installed
entry point, to check the exit code and stderr exactly as a shell sees them. The run tests are slow
(one quick deep-linear run, ~25 s, made once per session even across xdist workers; a diverging
one and a subprocess run stopped early, ~10 s each)."""

import dataclasses
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import pandas as pd
import pytest
from cli_helpers import exited, invoke

import gradflow as gf
from gradflow.experiments import REGISTRY
from gradflow.experiments.deep_linear import DeepLinearConfig

PNGS = {"loss", "modes", "conservation", "hessians"}  # deep-linear's plots


def error_line(stderr: str) -> str:
    """The one `error:` line of stderr; it must be the last line written."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert lines[-1] == errors[0], stderr
    return errors[0]


def gradflow_command() -> list[str]:
    """The installed `gradflow` entry point next to this interpreter (else `python -m`)."""
    script = Path(sys.executable).with_name("gradflow")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "gradflow_command"]


def run_subprocess(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*gradflow_command(), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


# ---------------------------------------------------------------------------------------------
# gradflow list


def test_list_names_every_experiment():
    result = invoke("list")
    exited(result, 0)
    first_words = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    # One row per experiment (descriptions may wrap onto continuation lines, which start blank).
    assert sorted(w for w in first_words if w in REGISTRY) == sorted(REGISTRY)
    assert len(REGISTRY) >= 9 and "deep-linear" in REGISTRY


# ---------------------------------------------------------------------------------------------
# invalid input: exit 2, one line naming the field and the accepted values, nothing written

DEEP_LINEAR_KEYS = sorted(f.name for f in dataclasses.fields(DeepLinearConfig))

INVALID = {
    "unknown experiment": (
        ["run", "no-such-experiment"],
        ["experiment", "'no-such-experiment'", *sorted(REGISTRY)],
    ),
    "unknown key": (
        ["run", "deep-linear", "--set", "wdith=3"],
        ["--set", "'wdith'", *DEEP_LINEAR_KEYS],
    ),
    "depth 0": (["run", "deep-linear", "--set", "depth=0"], ["depth=0", "an integer ≥ 2"]),
    "dim 0": (["run", "deep-linear", "--set", "dim=0"], ["dim=0", "a positive integer"]),
    "seed beyond 64 bits": (
        ["run", "deep-linear", "--set", f"seed={2**64}"],
        [f"seed={2**64}", "between 0 and 9223372036854775807"],
    ),
    "dim too large": (["run", "deep-linear", "--set", "dim=50000"], ["dim=50000"]),
    "n beyond memory": (
        ["run", "deep-linear", "--set", "n=1000000000"],
        ["n=1000000000", "estimated memory", "fits in this machine's"],
    ),
    "depth under quick": (  # u0 = ε^H underflowed and the error named an internal 'u0'
        ["run", "deep-linear", "--set", "quick=true", "--set", "depth=100000"],
        ["depth=100000"],
    ),
    "lojasiewicz solver": (  # checked only after ~5 s of work before
        ["run", "lojasiewicz", "--set", "solver=rk4"],
        ["solver='rk4'", "'tsit5'"],
    ),
    "lojasiewicz controller": (
        ["run", "lojasiewicz", "--set", "controller=fast"],
        ["controller='fast'", "'integral'", "'pid'"],
    ),
    "unknown preset": (
        ["run", "deep-linear", "--set", "preset=huge"],
        ["preset='huge'", "'full'", "'quick'", "'tiny'"],
    ),
    "depth 1": (["run", "deep-linear", "--set", "depth=1"], ["depth=1", "≥ 2"]),
    "depth not an integer": (
        ["run", "deep-linear", "--set", "depth=abc"],
        ["depth='abc'", "an integer"],
    ),
    "unknown solver": (
        ["run", "deep-linear", "--set", "solver=rk4"],
        ["solver='rk4'", "'auto'", "'tsit5'", "'dopri5'", "'dopri8'", "'kvaerno5'"],
    ),
    "more singular values than dim": (
        ["run", "deep-linear", "--set", "dim=2", "--set", "singular_values=3,2,1"],
        ["singular_values=[3.0, 2.0, 1.0]", "dim = 2"],
    ),
    "negative step": (
        ["run", "deep-linear", "--set", "gd_lr=-1"],
        ["gd_lr=-1.0", "a positive number or none"],
    ),
    "--set without =": (["run", "deep-linear", "--set", "depth"], ["--set='depth'", "key=value"]),
    "quick resnet-pl piece": (  # valid in full (64 saves), not in quick (16 saves)
        ["run", "resnet-pl", "--set", "quick=true", "--set", "piece=32"],
        ["piece=32", "a divisor of saves = 16"],
    ),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_run_exits_2_with_one_line(case, tmp_path):
    args, fragments = INVALID[case]
    out = tmp_path / "run"
    result = invoke(*args, "--out", out)
    exited(result, 2)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: invalid ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert not out.exists()  # invalid input fails before anything is written


def test_report_on_a_folder_without_config_exits_2(tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    result = invoke("report", tmp_path)
    exited(result, 2)
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: invalid DIR=")
    assert str(tmp_path) in line and "config.json" in line
    assert not (tmp_path / "report.html").exists()


def test_subprocess_invalid_input_exits_2_with_one_line(tmp_path):
    proc = run_subprocess("run", "deep-linear", "--set", "dim=0", "--out", "x", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == ["error: invalid dim=0: accepted a positive integer"]
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------
# gradflow run / gradflow report


@pytest.fixture(scope="module")
def quick_run(once_per_session):
    def make(folder):
        result = invoke("run", "deep-linear", "--set", "quick=true", "--out", folder)
        return vars(result)

    # A long folder name: the printed report path must not be wrapped at 80 columns.
    folder, result = once_per_session("test_cli-deep-linear-quick-run-" + "x" * 60, make)
    return folder, SimpleNamespace(**result)


@pytest.mark.slow
def test_run_exits_0_and_prints_the_report_path(quick_run):
    folder, result = quick_run
    exited(result, 0)
    lines = result.stdout.splitlines()
    assert f"run folder: {folder}" in lines
    assert f"report: {(folder / 'report.html').resolve()}" in lines
    assert "error" not in result.stderr


@pytest.mark.slow
def test_run_writes_the_run_folder(quick_run):
    folder, _ = quick_run
    for name in ("config.json", "summary.json", "metrics.parquet", "trajectory.nc"):
        assert (folder / name).is_file(), name
    record = json.loads((folder / "config.json").read_text())
    assert record["experiment"] == "deep-linear" and record["preset"] == "quick"
    assert record["set_by_user"] == []
    config = record["config"]  # the configuration that ran: quick's dim 4, not the default 8
    assert config["seed"] == 0 and config["depth"] == 3 and config["dim"] == 4
    assert config["singular_values"] == [3.0, 1.8, 1.0, 0.6] and config["n"] == 64
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["experiment"] == "deep-linear" and summary["status"] == "ok"
    assert summary["wall_time_s"] > 0

    # metrics.parquet holds the main trajectory's series, exactly
    traj = gf.Trajectory.load(folder / "trajectory.nc")
    metrics = pd.read_parquet(folder / "metrics.parquet")
    assert {"t", "loss", "grad_norm"} <= set(metrics.columns)
    np.testing.assert_array_equal(metrics.t, np.asarray(traj.ts))
    np.testing.assert_array_equal(metrics.loss, np.asarray(traj.loss))
    assert summary["final_loss"] == float(traj.loss[-1])

    # one caption per plot, and the report embeds every plot
    pngs = {p.stem for p in folder.glob("*.png")}
    assert pngs == PNGS
    captions = json.loads((folder / "captions.json").read_text())
    assert set(captions["captions"]) == pngs
    assert all(len(c) > 20 for c in captions["captions"].values())
    report = (folder / "report.html").read_text()
    assert report.count("data:image/png;base64,") == len(pngs)
    assert "gradflow run: deep-linear" in report


@pytest.mark.slow
def test_report_rebuilds_the_same_report(quick_run, tmp_path):
    folder, _ = quick_run
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    original = (copy / "report.html").read_text()
    (copy / "report.html").unlink()
    result = invoke("report", copy)
    exited(result, 0)
    assert result.stdout.splitlines() == [f"report: {(copy / 'report.html').resolve()}"]
    # built from the folder's files only: the same report as the run wrote
    assert (copy / "report.html").read_text() == original


@pytest.mark.slow
def test_diverging_run_exits_1_and_keeps_the_last_finite_state(quick_run, tmp_path):
    # Gradient descent with step 1 on a depth-3 network whose top mode s = 3 gives Hessian
    # eigenvalues up to ~H s^(2-2/H) ≈ 13 > 2/η once that mode is learned (t ≈ 520): it diverges
    # there. The flow (the same quick run as `quick_run`) succeeds first; what the run folder
    # keeps is the GD trajectory up to its last finite save.
    out = tmp_path / "diverged"
    result = invoke("run", "deep-linear", "--set", "quick=true", "--set", "gd_lr=1", "--out", out)
    exited(result, 1)
    line = error_line(result.stderr)
    assert line.startswith("error: DivergenceError: gradient descent diverged: the iterates became")
    assert f"(partial results kept in {out})" in line
    assert "report:" not in result.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["experiment"] == "deep-linear" and summary["status"] == "failed"
    assert summary["error"].startswith("DivergenceError: ")
    assert json.loads((out / "config.json").read_text())["config"]["gd_lr"] == 1.0

    traj = gf.Trajectory.load(out / "trajectory.nc")
    assert traj.info["kind"] == "descent" and traj.info["lr"] == 1.0
    assert len(traj) >= 2
    assert np.all(np.isfinite(np.asarray(traj.loss)))
    assert np.all(np.isfinite(np.asarray(traj.grad_norm)))
    for leaf in jax.tree_util.tree_leaves(traj.params):
        assert np.all(np.isfinite(np.asarray(leaf)))
    t_last = float(traj.ts[-1])
    assert f"(t = {t_last:g})" in line  # the saved state is the last finite one reported
    assert 0 < t_last < traj.info["t1"]  # stopped before the horizon
    # it diverged while the first mode was being learned, not on the first plateau
    quick_summary = json.loads((quick_run[0] / "summary.json").read_text())
    assert 0.5 * quick_summary["learn_times_measured"][0] < t_last
    assert t_last < quick_summary["learn_times_measured"][1]

    metrics = pd.read_parquet(out / "metrics.parquet")
    np.testing.assert_array_equal(metrics.loss, np.asarray(traj.loss))
    report = (out / "report.html").read_text()
    assert "class='failed'" in report and "DivergenceError" in report
    assert not list(out.glob("*.png")) and not (out / "captions.json").exists()


@pytest.mark.slow
def test_subprocess_stopped_run_exits_1_with_one_error_line(tmp_path):
    # max_steps=50: the flow stops early with SolverError (exit 1) after ~50 steps.
    proc = run_subprocess(
        "run",
        "deep-linear",
        "--set",
        "quick=true",
        "--set",
        "max_steps=50",
        "--out",
        "stopped",
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout == ""
    # stderr may hold progress log lines before it; the error is one line, the last
    line = error_line(proc.stderr)
    match = re.fullmatch(
        r"error: SolverError: max_steps=50 reached at t=(\S+) before t1=\S+; .*"
        r" \(partial results kept in stopped\)",
        line,
    )
    assert match, line

    out = tmp_path / "stopped"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"].startswith("SolverError: ")
    traj = gf.Trajectory.load(out / "trajectory.nc")
    assert traj.info["kind"] == "flow"
    assert np.all(np.isfinite(np.asarray(traj.loss)))
    assert math.isclose(float(traj.ts[-1]), float(match.group(1)), rel_tol=1e-5)
    assert (out / "report.html").is_file() and (out / "metrics.parquet").is_file()
