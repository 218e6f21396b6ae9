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
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "GRADFLOW_CACHE_DIR"
_OFF = ("", "off", "none", "0", "false")
# Minimum compile time (s) for an entry to be written, per backend (see the module docstring).
MIN_COMPILE_TIME_S = {"cpu": 0.0, "gpu": 0.5, "cuda": 0.5, "rocm": 0.5, "tpu": 0.5}

_enabled: Path | None = None


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
    _enabled = path
    return path
