"""`gf.sweep`: a grid of runs of one experiment, every (cell, seed) a run folder, one table."""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from pathlib import Path

from .. import _interrupt
from .._errors import ConfigError
from .._progress import progress_bar
from . import _report, _table
from ._cell import folder_status
from ._engines import ENGINES, execute
from ._grid import claim, make_plan, seed_folder


def sweep(
    name: str,
    grid: dict,
    seeds: int = 1,
    *,
    out,
    sets: dict | None = None,
    engine: str = "local",
    workers: int | None = None,
    address: str | None = None,
    imports: Sequence[str] = (),
    cache: str | None = None,
    progress=None,
):
    """Run experiment `name` on every cell of `grid` for `seeds` seeds; return the table.

    **Arguments:**

    - `grid`: {key: [values]} (values typed or as `--set` text); the cells are the product of the
      lists, e.g. {"depth": [2, 3], "init_scale": [1e-2, 1e-1]} gives 4 cells.
    - `seeds`: K ≥ 1; the seeds of a cell are S, S+1, ..., S+K−1 with S the configuration's seed
      (`sets={"seed": S}`, default 0). They run as one ensemble when the experiment registered
      a `run_seeds` hook, else as separate runs in one warm worker.
    - `out`: the sweep folder: DIR/manifest.json (fixes the grid: another grid, experiment, seed
      count or `sets` into the same folder is refused), DIR/cells/<cell>/seed-<s>/ (a run folder
      each, written by `gradflow.runs`), DIR/results.parquet, DIR/report.html.
    - `sets`: `--set` values applied to every cell (a preset included: {"preset": "tiny"}).
    - `engine`: 'local' (a process pool, `workers` processes, default one per core; 0 runs
      the cells in this process) or 'ray'
      (`address` of a cluster; default a running or a new local Ray), see `_engines`.
    - `imports`: modules to import in every worker (ones registering an experiment of your own).
    - `cache`: the compilation cache folder of the workers (default `GRADFLOW_CACHE_DIR` or
      ~/.cache/gradflow/jax; 'off' for none).
    - `progress`: a `rich.progress.Progress` to show a bar over the cells on, True for one on
      stderr, None (default) for one when stderr is a terminal, False for none.

    Rerunning the same sweep skips complete cells (their files are not touched), resumes
    interrupted runs and runs the rest. A run that fails is recorded (status 'failed' and its
    error, in its folder and the table) and the sweep goes on.

    **Returns:** a pandas DataFrame, one row per (cell, seed), also written to
    DIR/results.parquet (columns: `_table`); `df.attrs["sweep"]` says what this call did (cells
    run and skipped, runs by action: 'ensemble', 'run', 'resumed', 'skipped', 'failed'; per
    cell run: worker pid and seconds).

    **Raises:** `ConfigError` (one line, nothing written) for an invalid grid, key, value,
    engine or a folder holding another sweep.
    """
    if engine not in ENGINES:
        raise ConfigError("--engine", engine, "one of " + ", ".join(ENGINES))
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 0
    ):
        raise ConfigError("--workers", workers, "an integer >= 0 (0: in this process)")
    if isinstance(imports, str):
        imports = [imports]
    for module in imports:  # an import error is the caller's, before anything is written
        importlib.import_module(module)
    plan = make_plan(name, grid, seeds, sets)
    out = claim(Path(out), plan)
    tasks, done = [], 0
    for cell in plan.cells:
        folders = [seed_folder(out, cell, s) for s in plan.seeds]
        if all(folder_status(f) in ("ok", "failed") for f in folders):
            done += 1  # complete: not even handed to a worker
            continue
        tasks.append(
            {
                "experiment": name,
                "index": cell.index,
                "seeds": [
                    [s, plan.overrides(cell, s), str(f)]
                    for s, f in zip(plan.seeds, folders, strict=True)
                ],
                "imports": list(imports),
                "cache": cache,
            }
        )
    errors: dict = {}
    stats = {"cells_run": len(tasks), "cells_skipped": done, "workers": set(), "cell_s": 0.0}
    actions: dict[str, int] = {}
    cells: list[dict] = []

    def on_done(result: dict) -> None:
        if "error" in result:
            for s in plan.seeds:
                errors[(result["index"], s)] = result["error"]
        else:
            stats["workers"].add(result["pid"])
            cells.append({k: result[k] for k in ("index", "pid", "wall_s")})
            stats["cell_s"] += result["wall_s"]
            for record in result["seeds"].values():
                actions[record["action"]] = actions.get(record["action"], 0) + 1
        advance()
        # Ctrl-C / SIGTERM under `gradflow sweep` (recorded by its handler; the workers got it
        # too and marked their runs interrupted): stop handing out cells. Rerun to continue.
        _interrupt.check()

    start = time.perf_counter()
    with _bar(progress, len(plan.cells), done, name) as advance:
        execute(tasks, on_done, engine, workers, address)
    df = _table.frame(_table.rows(out, plan, errors), plan)
    _table.write(out, df)
    _report.write(out, df, plan)
    df.attrs["sweep"] = {
        **stats,
        "workers": len(stats["workers"]),
        "runs": actions,
        "cells": cells,
        "wall_s": time.perf_counter() - start,
        "folder": str(out),
    }
    return df


class _bar:
    """A rich progress bar over the cells (elapsed, ETA), or nothing."""

    def __init__(self, progress, total: int, done: int, name: str):
        self._given = progress if progress not in (None, True, False) else None
        self._progress, self._task = self._given, None
        if progress is True or progress is None:
            from rich.console import Console

            console = Console(stderr=True)
            if progress is True or console.is_terminal:
                self._progress = progress_bar(console)
        self._total, self._done, self._name = total, done, name

    def __enter__(self):
        if self._progress is not None:
            if self._given is None:
                self._progress.start()
            self._task = self._progress.add_task(
                f"sweep {self._name}: cells", total=self._total, completed=self._done
            )
        return self.advance

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, 1)

    def __exit__(self, *exc):
        if self._progress is not None and self._given is None:
            self._progress.stop()
