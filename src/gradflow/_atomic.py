"""Atomic file writes: a file is written to a temporary file beside it (`.gradflow-tmp-...`),
flushed to disk (fsync) and renamed over its final name (`os.replace`, atomic on POSIX), so a
reader sees the old file or the new one, never a truncated one. A run folder removes the
temporary files a killed writer left (`gradflow.runs`)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

TMP_PREFIX = ".gradflow-tmp-"


def temporary_name(path: Path) -> Path:
    """A fresh temporary path beside `path` that keeps its suffix (writers that look at it)."""
    return path.with_name(f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}")


def atomic_write(path, write: Callable[[Path], Any]) -> Path:
    """Write `path` atomically: `write(tmp)` creates a temporary file beside it, which is fsynced
    and renamed over `path`. On any error the temporary file is removed and the error raised;
    `path` is then unchanged."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    fsync_folder(path.parent)
    return path


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries, which makes a rename in it durable (POSIX; not on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
