"""Where a sweep's cells run.

- 'local': a process pool with one worker per core (at most one per cell). Workers are started
  with 'spawn' (JAX is not fork-safe) and each runs many cells, so the programs it compiled for
  one cell (JAX's in-process jit cache) serve the next cell of the same shapes; across processes
  and invocations the persistent compilation cache (`gradflow._cache`) does the same. Each worker
  dies with the driver (Linux PR_SET_PDEATHSIG): a killed sweep leaves nothing writing.
  `workers=0` runs the cells in the calling process, one after another (debugging, notebooks).
- 'ray': one Ray task per cell (1 CPU each). `address` connects to a running cluster (`ray start
  --head` on one machine, `ray start --address HEAD:6379` on the others; the sweep folder must
  be on a file system every node sees); without it an already initialised Ray is used, else a
  local one is started (with `workers` CPUs) and shut down at the end. Ray reuses its worker
  processes across tasks, so compiled programs are reused as in the local pool. Ray is imported
  only here, only when asked for.

Each engine calls `on_done(result)` in the driver as cells finish (for the progress bar);
a cell whose worker died gives {index, error} instead of the worker's result.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .._cache import cacheable_env, child_environment
from .._errors import ConfigError
from ._cell import init_local_worker, run_cell

ENGINES = ("local", "ray")


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_local(tasks: list[dict], on_done: Callable, workers: int | None) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    workers = max(1, min(workers or default_workers(), len(tasks)))
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=init_local_worker)
    try:
        # The workers are spawned by these submissions, with the environment that keeps their
        # solves cacheable (`_cache.child_environment`).
        with child_environment():
            futures = {pool.submit(run_cell, task): task for task in tasks}
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as err:  # noqa: BLE001  (a worker died: recorded, sweep goes on)
                result = {"index": futures[future]["index"], "error": _why(err)}
            on_done(result)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def run_ray(tasks: list[dict], on_done: Callable, workers: int | None, address: str | None):
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--engine", "ray", "installed first (pip install 'gradflow[ray]') or --engine local"
        ) from None
    started = False
    if address is not None or not ray.is_initialized():
        kwargs = {"address": address} if address else {"num_cpus": workers or default_workers()}
        try:
            ray.init(**kwargs, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise ConfigError("--address", address, f"a reachable Ray cluster ({err})") from None
        started = True
    try:
        env = cacheable_env()  # (see `_cache`): Ray's workers start with it
        runtime = {"runtime_env": {"env_vars": env}} if env else {}
        remote = ray.remote(num_cpus=1, max_retries=0, **runtime)(run_cell)
        refs = {remote.remote(task): task for task in tasks}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    result = ray.get(ref)
                except Exception as err:  # noqa: BLE001  (a task or worker failed: recorded)
                    result = {"index": refs[ref]["index"], "error": _why(err)}
                on_done(result)
    except BaseException:
        for ref in refs if "refs" in locals() else ():
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


def _why(err: BaseException) -> str:
    text = " ".join(str(err).split())[:300]
    return f"the worker running this cell failed: {type(err).__name__}: {text}"


def execute(tasks, on_done, engine: str = "local", workers=None, address=None) -> None:
    """Run `tasks` (`_cell.run_cell` dicts) with `engine`, calling `on_done` per finished cell."""
    if not tasks:
        return
    if engine == "local":
        if address is not None:
            raise ConfigError("--address", address, "only with --engine ray")
        if workers == 0:
            for task in tasks:
                on_done(run_cell(task))
        else:
            run_local(tasks, on_done, workers)
    elif engine == "ray":
        run_ray(tasks, on_done, workers, address)
    else:
        raise ConfigError("--engine", engine, "one of " + ", ".join(ENGINES))
