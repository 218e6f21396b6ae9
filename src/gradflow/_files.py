"""Atomic writes and reads of a run folder's files.

Every file is written to a temporary file in the same folder (`.gradflow-tmp-...`), flushed to
disk (fsync) and renamed over its final name (`os.replace`, atomic on POSIX), so a reader sees the
old file or the new one, never a truncated one — whatever kills the writer (a signal, a full
disk). A temporary file left by a killed writer is removed by the next run in that folder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import TMP_PREFIX as TMP_PREFIX
from ._atomic import atomic_write as atomic_write
from ._atomic import temporary_name as temporary_name
from ._errors import ConfigError, FileFormatError


class RunFolderError(ConfigError):
    """A run folder that cannot be used as asked (not a folder, not writable, holding another
    run, locked by a running one): one line naming the folder and the problem (exit code 2)."""

    def __init__(self, folder, problem: str):
        super().__init__("--out", str(folder), problem)
        self.folder = str(folder)
        self.problem = problem
        self.args = (f"run folder {folder}: {problem}",)

    def __str__(self) -> str:
        return self.args[0]


def jsonable(value: Any) -> Any:
    """`value` with NumPy arrays and scalars as lists and numbers, tuples as lists, dict keys as
    strings and non-finite floats as strings ('nan', 'inf'): valid JSON."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic | np.ndarray) or (
        hasattr(value, "tolist") and not isinstance(value, str)
    ):
        return jsonable(np.asarray(value).tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_bytes(path, data: bytes) -> Path:
    """Write `data` to `path` atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "xb") as handle:
            handle.write(data)

    return atomic_write(path, write)


def write_text(path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def dumps(value: Any) -> str:
    """The JSON text gradflow writes (indented, keys in order, non-finite numbers as strings)."""
    return json.dumps(jsonable(value), indent=2, ensure_ascii=False) + "\n"


def write_json(path, value: Any) -> Path:
    """Write `value` as JSON to `path` atomically."""
    return write_text(path, dumps(value))


def read_json(path, what: str = "a JSON file written by gradflow") -> Any:
    """Read a JSON file; `FileFormatError` (one line) if it cannot be read or is not JSON."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FileFormatError(path, "not UTF-8 text", what) from None
    except OSError as err:
        raise FileFormatError(path, err.strerror or type(err).__name__, what) from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        problem = (
            f"invalid JSON ({err.msg} at line {err.lineno})"
            if hasattr(err, "msg")
            else ("invalid JSON")
        )
        raise FileFormatError(path, problem, what) from None


def remove_temporaries(folder: Path) -> None:
    """Remove the temporary files a killed writer left in `folder` (only gradflow's own)."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(TMP_PREFIX) and (entry.is_file() or entry.is_symlink()):
            try:
                entry.unlink()
            except OSError:
                pass
