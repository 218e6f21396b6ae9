"""`RunContext`: what an experiment receives from the runner.

    with context.task("flows", total=n) as advance:     # progress (the CLI shows ETA)
        for ...:
            ...
            advance()                                   # also a safe point: an interrupted
                                                        # run stops here (RunInterrupted)
    context.log("one line")
    folder = context.checkpoint("flow")                 # DIR/checkpoints/flow, the same on resume:
    traj = gf.flow_in_pieces(..., checkpoint=folder)    # a long flow continues where it stopped
    traj = context.cached("reference", compute)         # a whole Trajectory, stored once

Without a run folder (`RunContext()`: tests, library use) nothing is shown, `checkpoint` gives a
temporary folder and `cached` just computes.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from .. import _files, _interrupt

CHECKPOINTS = "checkpoints"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=-]{0,100}")


class ProgressView(Protocol):
    """How a front end shows progress (the CLI's is rich; `None` shows nothing)."""

    def start(self, description: str, total: int | None) -> Any: ...

    def advance(self, handle: Any, n: int) -> None: ...

    def stop(self, handle: Any) -> None: ...

    def log(self, message: str) -> None: ...


class RunContext:
    """Progress, log, checkpoints and cached trajectories for one run of an experiment.

    **Arguments:**

    - `folder`: the run folder (None: no folder; checkpoints go to a temporary folder).
    - `view`: a `ProgressView` (None: nothing shown).
    - `resumed`: True when the run continues an interrupted one (checkpoints may exist).
    """

    def __init__(self, folder=None, view: ProgressView | None = None, *, resumed: bool = False):
        self.folder = Path(folder) if folder is not None else None
        self.view = view
        self.resumed = resumed
        self._scratch: tempfile.TemporaryDirectory | None = None

    # ------------------------------------------------------------------------------------------
    # progress

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Callable[..., None]]:
        """A progress task; yields `advance(n=1)`. Entering the task and every `advance` are safe
        points: if an interrupt was requested they raise `RunInterrupted`."""
        _interrupt.check()
        handle = self.view.start(description, total) if self.view is not None else None

        def advance(n: int = 1) -> None:
            if self.view is not None:
                self.view.advance(handle, n)
            _interrupt.check()

        try:
            yield advance
        finally:
            if self.view is not None:
                self.view.stop(handle)

    def log(self, message: str) -> None:
        """One line for the user (shown above the progress bars)."""
        if self.view is not None:
            self.view.log(message)

    # ------------------------------------------------------------------------------------------
    # checkpoints

    def _root(self) -> Path:
        if self.folder is not None:
            return self.folder / CHECKPOINTS
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="gradflow-checkpoints-")
        return Path(self._scratch.name)

    @staticmethod
    def _check_name(name: str) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
            raise ValueError(
                f"checkpoint name {name!r}: letters, digits and _ . = - (starting with a letter "
                "or digit)"
            )

    def checkpoint(self, name: str) -> Path:
        """The folder `DIR/checkpoints/<name>` (created if needed; the same path when the run is
        resumed), for `gf.flow_in_pieces(..., checkpoint=...)`. Deleted when the run succeeds."""
        self._check_name(name)
        path = self._root() / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cached(self, name: str, compute: Callable[[], Any]):
        """The `Trajectory` `compute()` returns, stored in `DIR/checkpoints/<name>.nc` (atomically)
        the first time and loaded from there on resume instead of being computed again. Without a
        run folder it is just `compute()`."""
        from .._trajectory import Trajectory

        self._check_name(name)
        if self.folder is None:
            return compute()
        path = self._root() / f"{name}.nc"
        if path.is_file() and not path.is_symlink():
            try:
                trajectory = Trajectory.load(path)
            except Exception as err:  # damaged (e.g. written by another version): recompute
                self.log(f"checkpoint {name}: cannot be read ({type(err).__name__}); recomputing")
            else:
                self.log(f"checkpoint {name}: loaded (computed before the interruption)")
                return trajectory
        trajectory = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        _files.atomic_write(path, trajectory.save)
        return trajectory

    def close(self) -> None:
        """Remove the temporary checkpoint folder of a context without a run folder."""
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
