"""A run folder: its lock, what it holds, and gradflow's own files in it.

`RunFolder(path).open(mode)` creates the folder if needed, takes an exclusive non-blocking lock
(`fcntl.flock` on `.gradflow.lock`; a second run into the same folder is refused at once), then
checks what the folder holds: a folder holding another run is refused unless `mode` is
'overwrite' (that run's files are removed first: only gradflow's own files, never anything else)
or 'resume' (a run that is not complete). Files are written atomically (`_files`) and each name
is recorded in a manifest (`.gradflow-files.json`) *before* the file is created, so an overwrite
removes exactly what gradflow wrote even when a run was killed halfway.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from .. import _files
from .._errors import FileFormatError
from .._files import RunFolderError

LOCK = ".gradflow.lock"
MANIFEST = ".gradflow-files.json"
CHECKPOINTS = "checkpoints"
# The files every run folder may hold (figures are named in the manifest and captions.json).
OWN_FILES = (
    "config.json",
    "summary.json",
    "metrics.parquet",
    "trajectory.nc",
    "captions.json",
    "report.html",
)
STATUSES = ("running", "ok", "failed", "interrupted")
FIGURE_DPI = 110  # a run's PNG figures (a 5.2 x 4 inch panel: 572 x 440 pixels)


def _safe_name(name: Any) -> bool:
    """A plain file name inside the folder (no separators, not '.', '..' or hidden)."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
        and not name.startswith(".")
    )


def check_out(out) -> Path:
    """The `--out` path as a `Path`; `RunFolderError` for an empty path or one that exists and is
    not a folder. Creates nothing."""
    if out is None or str(out).strip() == "":
        raise RunFolderError(repr(str(out or "")), "an empty path is not a folder (give --out DIR)")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise RunFolderError(path, "exists and is not a folder")
    return path


class RunFolder:
    """The folder of one run, locked while open."""

    def __init__(self, path):
        self.path = check_out(path)
        self._lock_fd: int | None = None
        self._names: list[str] = []

    # ------------------------------------------------------------------------------------------
    # opening

    def open(self, mode: str = "new") -> dict | None:
        """Create, lock and check the folder for `mode` ('new', 'overwrite' or 'resume'). Returns
        the state of the run it held before (None: none). Raises `RunFolderError`."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise RunFolderError(self.path, "exists and is not a folder") from None
        except OSError as err:
            raise RunFolderError(self.path, f"cannot be created ({err.strerror})") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise RunFolderError(self.path, "is not writable")
        try:
            if mode == "resume" and self.state() is None:  # refused before any lock file
                self._check(mode, None)
        except OSError as err:
            raise RunFolderError(self.path, f"cannot be used ({err.strerror})") from None
        self._lock()
        try:
            state = self.state()
            self._check(mode, state)
            if state is not None and mode == "overwrite":
                self.clear()
            _files.remove_temporaries(self.path)
            _files.remove_temporaries(self.path / CHECKPOINTS)
            self._names = self._manifest()
            return state
        except OSError as err:
            self.close()
            raise RunFolderError(self.path, f"cannot be used ({err.strerror})") from None
        except BaseException:
            self.close()
            raise

    def _check(self, mode: str, state: dict | None) -> None:
        """Refuse what `mode` cannot do with a folder in `state`."""
        if mode == "resume":
            if state is None:
                raise RunFolderError(self.path, "holds no run to resume (no config.json)")
            if state["status"] == "ok":
                raise RunFolderError(
                    self.path, "the run is already complete (status ok): nothing to resume"
                )
        elif state is not None and mode != "overwrite":
            raise RunFolderError(
                self.path,
                f"already holds a run (status {state['status']}); use --overwrite to "
                "replace it or --resume to continue it",
            )

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # no fcntl (Windows): no lock
            return
        try:
            fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise RunFolderError(self.path, f"cannot be locked ({err.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunFolderError(
                self.path, "another gradflow run is writing into it (its lock is held)"
            ) from None
        self._lock_fd = fd

    def close(self) -> None:
        """Release the lock (the lock file stays: removing it would race with another run)."""
        if self._lock_fd is not None:
            try:
                os.close(self._lock_fd)
            finally:
                self._lock_fd = None

    # ------------------------------------------------------------------------------------------
    # what it holds

    def state(self) -> dict | None:
        """None if the folder holds no run, else {'status': ..., 'summary': dict | None}. A run
        without summary.json (killed right after it started) counts as 'running'; a damaged
        summary.json as 'unknown' (not complete: resumable)."""
        has_config = (self.path / "config.json").exists()
        has_summary = (self.path / "summary.json").exists()
        if not (has_config or has_summary or (self.path / CHECKPOINTS).exists()):
            return None
        if not has_summary:
            return {"status": "running", "summary": None}
        try:
            summary = _files.read_json(self.path / "summary.json")
        except FileFormatError:
            return {"status": "unknown", "summary": None}
        status = summary.get("status") if isinstance(summary, dict) else None
        return {"status": status if status in STATUSES else "unknown", "summary": summary}

    def _manifest(self) -> list[str]:
        try:
            names = _files.read_json(self.path / MANIFEST).get("files", [])
        except (FileFormatError, AttributeError):
            return []
        return [n for n in names if _safe_name(n)] if isinstance(names, list) else []

    def clear(self) -> None:
        """Remove the previous run's files: gradflow's fixed names, the names in its manifest,
        the figures named in its captions.json, its checkpoints and temporary files. Nothing
        else (user files in the folder stay)."""
        names = set(OWN_FILES) | set(self._manifest())
        try:
            captions = _files.read_json(self.path / "captions.json")
            stems = captions.get("figures") or list(captions.get("captions", {}))
            names |= {f"{s}.png" for s in stems if _safe_name(f"{s}.png")}
        except (FileFormatError, AttributeError, TypeError):
            pass
        for name in sorted(names):
            entry = self.path / name
            if entry.is_symlink() or entry.is_file():
                entry.unlink()
        checkpoints = self.path / CHECKPOINTS
        if checkpoints.is_symlink():
            checkpoints.unlink()
        elif checkpoints.is_dir():
            shutil.rmtree(checkpoints)
        manifest = self.path / MANIFEST
        if manifest.is_file():
            manifest.unlink()
        _files.remove_temporaries(self.path)

    # ------------------------------------------------------------------------------------------
    # writing

    def _register(self, name: str) -> Path:
        """Record `name` in the manifest (before the file exists) and return its path."""
        if not _safe_name(name):
            raise ValueError(f"not a plain file name: {name!r}")
        if name not in self._names:
            self._names.append(name)
            _files.write_json(self.path / MANIFEST, {"files": self._names})
        return self.path / name

    def write_json(self, name: str, value: Any) -> Path:
        return _files.write_json(self._register(name), value)

    def write_text(self, name: str, text: str) -> Path:
        return _files.write_text(self._register(name), text)

    def write_figure(self, stem: str, figure) -> Path:
        """Save a matplotlib figure as `stem.png` (to a temporary file, then renamed)."""
        return _files.atomic_write(
            self._register(f"{stem}.png"),
            lambda tmp: figure.savefig(tmp, format="png", dpi=FIGURE_DPI, bbox_inches="tight"),
        )

    def write_metrics(self, frame) -> Path:
        return _files.atomic_write(
            self._register("metrics.parquet"), lambda tmp: frame.to_parquet(tmp, index=False)
        )

    def write_trajectory(self, trajectory, metrics: bool = False) -> None:
        """trajectory.nc (and, with `metrics`, metrics.parquet from it)."""
        _files.atomic_write(self._register("trajectory.nc"), trajectory.save)
        if metrics:
            self.write_metrics(trajectory.metrics_frame())

    def remove(self, name: str) -> None:
        entry = self.path / name
        if entry.is_symlink() or entry.is_file():
            entry.unlink()

    def remove_checkpoints(self) -> None:
        checkpoints = self.path / CHECKPOINTS
        if checkpoints.is_dir() and not checkpoints.is_symlink():
            shutil.rmtree(checkpoints)
