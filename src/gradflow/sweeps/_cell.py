"""One cell of a sweep, run inside a worker process: its seeds, each into its own run folder made
by the runner (`gradflow.runs`: effective config, status, lock, atomic writes, resume).

For each seed the folder decides: complete ('ok', or 'failed' with its error recorded) — left
untouched; started and not complete (the driver or worker was killed, or interrupted) — resumed
with `resume_experiment`; absent — run. The seeds to run go through the experiment's
`run_seeds` hook (one ensemble solve) when it has one, else one after another in this process,
whose JAX jit cache is warm after the first (a worker runs many cells).

A task is a plain dict (it crosses process boundaries: a process pool or Ray).
"""

from __future__ import annotations

import importlib
import os
import time
from typing import Any

_PREPARED: set = set()


def prepare(imports: tuple[str, ...] = (), cache: str | None = None) -> None:
    """Make this worker ready: the compilation cache on, Agg plots, the modules that register
    the swept experiment (if it is not one of gradflow's) imported. Idempotent."""
    key = (tuple(imports), cache)
    if key in _PREPARED:
        return
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    from .. import _cache

    _cache.enable_compilation_cache(cache) if cache != "off" else None
    for module in imports:
        importlib.import_module(module)
    _PREPARED.add(key)


def init_local_worker() -> None:
    """The local engine's process-pool initializer: `die_with_parent`, then `gc.freeze()` of what
    importing gradflow made. The pool owns its workers, so it may do what the `gradflow` command
    does (see `gradflow_command`): full collections no longer scan those ~150k objects again.
    Ray's workers belong to Ray (and may be a user's cluster): they are left as they are."""
    import gc

    die_with_parent()
    gc.freeze()


def die_with_parent() -> None:
    """On Linux, ask the kernel to SIGKILL this worker when the driver dies, so that a killed
    sweep leaves no worker writing into its folders (the next run of the sweep resumes their
    cells; their locks go with the process)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the driver died before the call
            os._exit(1)
    except (OSError, AttributeError):  # not Linux: workers end when they next talk to the driver
        pass


def folder_status(folder) -> str | None:
    """The status of a run folder: None (no run), 'ok', 'failed', 'running', 'interrupted' or
    'unknown'."""
    from ..runs import RunFolder

    state = RunFolder(folder).state() if os.path.isdir(folder) else None
    return None if state is None else state["status"]


def _record(folder, fallback_error: str | None = None) -> dict[str, Any]:
    from .. import _files

    try:
        summary = _files.read_json(os.path.join(folder, "summary.json"))
    except Exception:  # noqa: BLE001  (no summary: the error says why)
        summary = None
    if not isinstance(summary, dict):
        return {"status": "failed", "error": fallback_error or "no summary.json written"}
    return {"status": summary.get("status", "unknown"), "error": summary.get("error")}


def _one(name, overrides, folder, status, compute=None) -> dict[str, Any]:
    """Run, resume or leave one seed's folder; the error of a failed run is recorded, never
    raised (the sweep goes on), except an interrupt."""
    from .._errors import RunInterrupted
    from ..runs import resume_experiment, run_experiment

    try:
        if status is None:
            run_experiment(name, overrides, folder, compute=compute)
        else:
            resume_experiment(folder, name)
    except RunInterrupted:
        raise
    except Exception as err:  # noqa: BLE001  (recorded in the run folder and the table)
        return {**_record(folder, f"{type(err).__name__}: {err}"), "action": "failed"}
    return {**_record(folder), "action": "run" if status is None else "resumed"}


def _ensemble(name, plan_seeds, context_log):
    """An iterator over the results of the seeds `plan_seeds` [(seed, overrides, folder)] from
    the experiment's `run_seeds` hook, in order, or None (no hook). The hook may produce them
    lazily (a generator: each seed's result, figures included, is written before the next is
    made); `_next_result` takes them one at a time."""
    from ..experiments import effective_config, get_experiment
    from ..runs import RunContext

    hook = get_experiment(name).run_seeds
    if hook is None or len(plan_seeds) < 2:
        return None
    configs = [effective_config(name, dict(o)).config for _, o, _ in plan_seeds]
    return iter(_guarded(hook, configs, RunContext(), context_log))


def _guarded(hook, configs, context, context_log):
    """The hook's results; where it fails or stops short, the rest of the seeds get None (they
    then run one by one, and fail there on their own if they must)."""
    done = 0
    try:
        for result in hook(configs, context):
            if done == len(configs):
                break
            done += 1
            yield result
    except Exception as err:  # noqa: BLE001  (each remaining seed then runs on its own)
        context_log(
            f"ensemble of {len(configs)} seeds failed after {done} ({type(err).__name__}: "
            f"{err}); running the rest one by one"
        )
    else:
        if done < len(configs):
            context_log(f"run_seeds returned {done} results for {len(configs)} seeds")
    for _ in range(len(configs) - done):
        yield None


def run_cell(task: dict) -> dict:
    """Run one cell: `task` = {experiment, seeds: [[seed, overrides, folder], ...], imports,
    cache, index}. Returns {index, seeds: {seed: {status, error, action}}, wall_s, pid}."""
    prepare(tuple(task.get("imports", ())), task.get("cache"))
    start = time.perf_counter()
    name = task["experiment"]
    notes: list[str] = []
    out: dict[int, dict] = {}
    todo = []
    for seed, overrides, folder in task["seeds"]:
        status = folder_status(folder)
        if status in ("ok", "failed"):
            out[seed] = {**_record(folder), "action": "skipped"}
        elif status is None:
            todo.append((seed, overrides, folder))
        else:
            out[seed] = _one(name, overrides, folder, status)
    results = _ensemble(name, todo, notes.append)
    for seed, overrides, folder in todo:
        result = None if results is None else next(results)
        compute = None if result is None else (lambda config, context, r=result: r)
        out[seed] = _one(name, overrides, folder, None, compute)
        if result is not None and out[seed]["action"] == "run":
            out[seed]["action"] = "ensemble"
    return {
        "index": task["index"],
        "seeds": out,
        "wall_s": time.perf_counter() - start,
        "pid": os.getpid(),
        "notes": notes,
    }
