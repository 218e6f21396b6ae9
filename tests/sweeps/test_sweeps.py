"""`gf.sweep` / `gradflow sweep` on a toy experiment (`sweep_toy`, a 2-mode deep linear flow
whose seeds run as one per-member-stepped ensemble): local pool and Ray give the same table, each
row equal to a single run of its cell and seed; a sweep killed mid-way (SIGKILL) and rerun gives
the same table without touching completed cells; a failing cell is recorded; another grid into
the same folder is refused."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import exited, invoke, one_error_line

import gradflow as gf
from gradflow.runs import RunFolderError, run_experiment
from gradflow.sweeps import flatten

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import sweep_toy  # noqa: E402  (registers the toy experiment)

TOY = sweep_toy.NAME
GRID = {"init_scale": [0.3, 0.5], "signal": [1.0, 1.5]}
SEEDS = 3
# Bookkeeping that differs between two runs of the same numbers.
VOLATILE = ["wall_time_s", "resumed"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Workers (spawned, Ray, a CLI subprocess) import the toy from here and share one
    compilation cache for the module."""
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "GRADFLOW_CACHE_DIR")}
    paths = [str(HERE), str(Path(gf.__file__).parents[1]), saved["PYTHONPATH"] or ""]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    os.environ["GRADFLOW_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax-cache"))
    yield dict(os.environ)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def local(env, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "local"
    df = gf.sweep(TOY, GRID, seeds=SEEDS, out=out, imports=["sweep_toy"], workers=2)
    return out, df


def _numbers(df):
    return df.drop(columns=VOLATILE)


def test_local_and_ray_tables_agree_and_equal_single_runs(local, tmp_path):
    import ray

    out, df = local
    assert len(df) == 4 * SEEDS and (df["status"] == "ok").all()
    assert df.attrs["sweep"]["runs"] == {"ensemble": 12}  # the seeds of a cell solved together
    assert sorted(df["seed"].unique()) == [0, 1, 2]
    pd.testing.assert_frame_equal(df, pd.read_parquet(out / "results.parquet"))
    assert "against init_scale" in (out / "report.html").read_text()

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = gf.sweep(
            TOY, GRID, seeds=SEEDS, out=tmp_path / "ray", engine="ray", imports=["sweep_toy"]
        )
    finally:
        ray.shutdown()
    pd.testing.assert_frame_equal(_numbers(df), _numbers(on_ray), check_exact=True)

    # Each row against a run of its own (what `gradflow run` does), per-member stepping: 1e-12.
    numeric = [c for c in df.columns if "." in c or c in ("t1", "depth_times_scale")]
    for i, row in df.iterrows():
        values = {"init_scale": row.init_scale, "signal": row.signal, "seed": row.seed}
        _, single = run_experiment(TOY, values, tmp_path / f"single{i}")
        flat = flatten(single.summary)
        got = np.array([row[c] for c in numeric], dtype=float)
        want = np.array([flat[c] for c in numeric], dtype=float)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
        assert row.learned == flat["learned"]


def _digest(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): (
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _status(folder: Path):
    try:
        return gf.runs.RunFolder(folder).state()["status"]
    except (TypeError, OSError):
        return None


def test_killed_sweep_rerun_equals_uninterrupted(local, env, tmp_path):
    _, uninterrupted = local
    uninterrupted = uninterrupted[uninterrupted["signal"] == 1.0].reset_index(drop=True)
    uninterrupted = uninterrupted[uninterrupted["seed"] < 2].reset_index(drop=True)
    out, cells = tmp_path / "killed", tmp_path / "killed" / "cells"
    # One worker, each run sleeping 0.4 s in its folder (ensemble=false: seeds run one by one),
    # so that the driver can be killed while a run of the second cell is in progress.
    cmd = [sys.executable, "-m", "gradflow_command", "sweep", TOY, "--grid", "init_scale=0.3,0.5"]
    cmd += ["--seeds", "2", "--set", "signal=1.0", "--set", "sleep=0.4", "--set", "ensemble=false"]
    cmd += ["--import", "sweep_toy", "--workers", "1", "--out", str(out)]
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = second = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and driver.poll() is None:
        folders = sorted(cells.glob("*")) if cells.is_dir() else []
        if len(folders) == 2:
            first, second = folders
            done = all(_status(first / f"seed-{s}") == "ok" for s in range(2))
            if done and _status(second / "seed-0") == "running":
                os.kill(driver.pid, signal.SIGKILL)
                break
        time.sleep(0.02)
    assert driver.wait(30) == -signal.SIGKILL, driver.stderr.read()
    before = _digest(first)
    time.sleep(0.5)  # the worker dies with the driver (PR_SET_PDEATHSIG)
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 cells run, 1 complete already" in rerun.stdout, rerun.stdout
    assert _digest(first) == before  # the completed cell was not recomputed nor rewritten
    table = pd.read_parquet(out / "results.parquet")
    assert list(table["resumed"]) == [0, 0, 1, 0]  # the run killed mid-way was resumed
    # The same numbers as the uninterrupted sweep (there: one ensemble per cell; per-member
    # stepping: each member equals its own run to 1e-12).
    keys = ["init_scale", "seed", "status"]
    pd.testing.assert_frame_equal(table[keys], uninterrupted[keys])
    numeric = [c for c in table.columns if "." in c]
    np.testing.assert_allclose(table[numeric], uninterrupted[numeric], rtol=1e-12, atol=1e-15)


def test_failing_cell_recorded_and_other_grid_refused(env, tmp_path):
    out = tmp_path / "failing"
    # depth 2 raises DivergenceError: recorded, and the depth-1 cell still runs. (In this
    # process, workers=0, without the compilation cache: it would stay on for the whole session.)
    kw = dict(seeds=2, out=out, sets={"fail_depth": 2}, workers=0, cache="off")
    df = gf.sweep(TOY, {"depth": [2, 1]}, **kw)
    assert list(df["status"]) == ["failed", "failed", "ok", "ok"]
    assert df["error"][0] == "DivergenceError: depth 2 fails on purpose"
    assert df["error"][2] is None and df["loss.final"][2] < 1e-3
    assert np.isnan(df["loss.final"][0])
    assert "depth 2 fails on purpose" in (out / "report.html").read_text()
    # Rerun: complete cells (failed ones included) are skipped, nothing handed to a worker.
    again = gf.sweep(TOY, {"depth": [2, 1]}, **kw)
    assert again.attrs["sweep"]["cells_skipped"] == 2 and again.attrs["sweep"]["runs"] == {}
    with pytest.raises(RunFolderError, match=r"holds another sweep \(grid"):
        gf.sweep(TOY, {"depth": [1, 3]}, **kw)
    result = invoke("sweep", TOY, "--grid", "depth=1,3", "--seeds", "2", "--out", out)
    exited(result, 2)
    assert "holds another sweep" in one_error_line(result.stderr)
    assert sorted(p.name for p in (out / "cells").iterdir()) == ["000_depth=2", "001_depth=1"]


def test_flatten_names_every_number_by_its_key_path():
    summary = {"status": "ok", "a": {"b": {"c": 1.5}, "d": [1, {"e": "nan"}]}, "s": "x", "f": True}
    flat = flatten(summary)
    assert list(flat) == ["a.b.c", "a.d.0", "a.d.1.e", "f"]
    assert flat["a.b.c"] == 1.5 and flat["a.d.0"] == 1 and flat["f"] is True
    assert np.isnan(flat["a.d.1.e"])


def test_a_hook_that_fails_midway_leaves_the_rest_to_single_runs():
    # The seeds the hook gave are used as they came; where it raised, the rest run on their own.
    from gradflow.sweeps._cell import _guarded

    def hook(configs, context):
        yield "first"
        raise RuntimeError("out of memory")

    notes = []
    assert list(_guarded(hook, [1, 2, 3], None, notes.append)) == ["first", None, None]
    assert "failed after 1" in notes[0] and "out of memory" in notes[0]
    notes.clear()
    assert list(_guarded(lambda c, x: ["a"], [1, 2], None, notes.append)) == ["a", None]
    assert notes == ["run_seeds returned 1 results for 2 seeds"]
    assert list(_guarded(lambda c, x: ["a", "b", "c"], [1, 2], None, notes.append)) == ["a", "b"]


def test_local_workers_freeze_what_importing_gradflow_made():
    """The local engine's workers freeze the objects of their imports (`init_local_worker`), as
    the `gradflow` command does; a plain process does not."""
    import gc
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from gradflow.sweeps._cell import init_local_worker

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=init_local_worker) as pool:
        frozen = pool.submit(gc.get_freeze_count).result()
    assert frozen > 100_000  # gradflow and JAX's modules, classes and functions
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        assert pool.submit(gc.get_freeze_count).result() == 0
