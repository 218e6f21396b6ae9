"""JAX's persistent compilation cache, switched on by `gradflow run` and `gradflow sweep`.

A compiled solve is keyed by XLA on the program, the shapes, the backend, the device kind and the
jax/jaxlib versions, so one folder serves every backend and machine that shares it; a process
that compiles a program already compiled by another (a second `gradflow run`, the workers of a
sweep) loads it from disk instead of compiling it again.

Where: `GRADFLOW_CACHE_DIR` if set (`off`, `none` or an empty value switch the cache off), else
`$XDG_CACHE_HOME/gradflow/jax` (default `~/.cache/gradflow/jax`).

Per backend:
- CPU: every compilation is cached (minimum compile time 0 s). A deep-linear solve compiles in
  ~0.2-2 s on a CPU and many of an experiment's programs are small, so JAX's default threshold
  (1 s) would leave most of them out; the entries are small (tens of kB to a few MB).
- GPU/TPU: programs taking at least 0.5 s to compile are cached. Small programs compile in tens
  of milliseconds there and reading an entry costs about as much. XLA's autotuning results are
  cached with them (`jax_persistent_cache_enable_xla_caches`), which is most of a GPU
  compilation's time.

Host callbacks. JAX never writes a program that calls back into Python to the cache. equinox's
runtime checks (`eqx.error_if`) are such callbacks unless `EQX_ON_ERROR=nan`, and every
`diffrax.diffeqsolve` with `SaveAt(ts=...)` carries two of them (the save times increase and lie
in [t0, t1]): with equinox's default every compiled solve of `gf.flow` would be compiled again in
each new process, ~2 s of a quick deep-linear run. So the `gradflow` command and a sweep's worker
processes run with `EQX_ON_ERROR=nan` (`CACHEABLE_ENV`; a value the user set is kept), as the
diffrax maintainers advise (diffrax issue #664). Nothing gradflow relies on is lost: the save
times and the start are checked on the host before every solve (`check_saves`), and gradflow's
solves, root finders and linear solves report failure through their result codes
(`throw=False`), never through a runtime error. equinox reads the variable once, when it is first
imported, so it must be in the environment before `gradflow` is: the command's entry point is the
module `gradflow_command`, outside this package, and sweeps set it for the workers they start
(`child_environment`). A library user who wants their own processes' solves cached sets it
before importing gradflow.

The traced programs of gradflow's solves are kept in the same folder (`programs/`, see
`gradflow._programs`), so that a second process skips tracing them too. The folder can be removed
at any time: it is only ever a cache.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

ENV = "GRADFLOW_CACHE_DIR"
_OFF = ("", "off", "none", "0", "false")
# Minimum compile time (s) for an entry to be written, per backend (see the module docstring).
MIN_COMPILE_TIME_S = {"cpu": 0.0, "gpu": 0.5, "cuda": 0.5, "rocm": 0.5, "tpu": 0.5}

# The environment under which compiled solves have no host callbacks (see the module docstring).
CACHEABLE_ENV = {"EQX_ON_ERROR": "nan"}

_enabled: Path | None = None


def cacheable_env() -> dict[str, str]:
    """The variables of `CACHEABLE_ENV` this process's environment does not set already."""
    return {k: v for k, v in CACHEABLE_ENV.items() if k not in os.environ}


@contextlib.contextmanager
def child_environment():
    """While open, processes started from this one get `cacheable_env()` (this process's own
    modules, equinox among them, are already imported: it changes nothing here)."""
    added = cacheable_env()
    os.environ.update(added)
    try:
        yield added
    finally:
        for key in added:
            os.environ.pop(key, None)


def cache_dir() -> Path | None:
    """The folder the cache uses: `GRADFLOW_CACHE_DIR`, else `~/.cache/gradflow/jax` (under
    `XDG_CACHE_HOME` when set); None when the variable switches the cache off."""
    value = os.environ.get(ENV)
    if value is not None:
        return None if value.strip().lower() in _OFF else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gradflow" / "jax"


def enable_compilation_cache(directory=None) -> Path | None:
    """Switch JAX's persistent compilation cache on for this process, in `directory` (default
    `cache_dir()`); returns the folder, or None when switched off or the folder cannot be
    created (then compilations are simply not cached). Idempotent."""
    global _enabled
    import jax

    path = Path(directory).expanduser() if directory is not None else cache_dir()
    if path is None:
        return None
    if _enabled == path:
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    backend = jax.default_backend()
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update(
        "jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S.get(backend, 0.5)
    )
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    if backend != "cpu":
        try:
            jax.config.update("jax_persistent_cache_enable_xla_caches", "all")
        except (AttributeError, ValueError):  # an older jax without the option
            pass
    from . import _programs

    # The traced programs of gf.flow's solves go beside the compiled ones (see `_programs`).
    _programs.enable(path / "programs")
    _enabled = path
    return path
