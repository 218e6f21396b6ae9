"""Provenance of a run: what produced its numbers.

The versions of gradflow and of the libraries that compute (jax, jaxlib, diffrax, equinox,
optax), the git commit of gradflow's checkout (and whether it had uncommitted changes) when it
runs from one, the JAX backend and device, the floating-point dtype, Python's version and the
SHA-256 of every input file (config fields declared with `param(..., file=True)`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = ("jax", "jaxlib", "diffrax", "equinox", "optax")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state() -> dict[str, Any] | None:
    """{'commit', 'dirty'} of the git checkout gradflow's source is in, or None (an installed
    copy, or git unavailable)."""
    source = Path(__file__).resolve().parents[1]  # .../src/gradflow
    top = _git(["rev-parse", "--show-toplevel"], source)
    if top is None or not (Path(top) / "src" / "gradflow").resolve() == source:
        return None
    commit = _git(["rev-parse", "HEAD"], source)
    status = _git(["status", "--porcelain", "--", "."], Path(top))
    if commit is None:
        return None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def sha256(path) -> str:
    """The SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_files(config) -> dict[str, dict[str, str]]:
    """{field: {'path', 'sha256'}} for the config's input-file fields that are set."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.metadata.get("file") and value is not None:
            out[f.name] = {"path": str(Path(value).resolve()), "sha256": sha256(value)}
    return out


def provenance(config) -> dict[str, Any]:
    """The provenance record of a run of `config` (config.json's `provenance`)."""
    import jax

    import gradflow

    device = jax.devices()[0]
    return {
        "gradflow": gradflow.__version__,
        **{name: _version(name) for name in LIBRARIES},
        "git": git_state(),
        "backend": jax.default_backend(),
        "device": str(device),
        "device_kind": getattr(device, "device_kind", None),
        "dtype": getattr(config, "dtype", None)
        or ("float64" if jax.config.read("jax_enable_x64") else "float32"),
        # equinox's runtime checks: 'nan' under the `gradflow` command (see gradflow._cache)
        "eqx_on_error": os.environ.get("EQX_ON_ERROR", "raise"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "inputs": input_files(config),
    }
