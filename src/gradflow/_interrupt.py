"""A process-wide interrupt flag.

Raising `KeyboardInterrupt` from a signal handler in the middle of a JAX call can leave the
runtime in a bad state (a crash on exit); instead the run folder's signal handlers set this flag,
and the library checks it at safe points (between the pieces of a long flow, between the flows of
an experiment) and raises `RunInterrupted` there, after the work done so far has been written.
"""

from __future__ import annotations

import threading

from ._errors import RunInterrupted

_FLAG = threading.Event()
_REASON: list[str] = []


def request(reason: str = "interrupted") -> None:
    """Ask the running computation to stop at its next safe point."""
    _REASON[:] = [reason]
    _FLAG.set()


def clear() -> None:
    _REASON.clear()
    _FLAG.clear()


def requested() -> bool:
    return _FLAG.is_set()


def check() -> None:
    """Raise `RunInterrupted` if an interrupt was requested."""
    if _FLAG.is_set():
        raise RunInterrupted(_REASON[0] if _REASON else "interrupted")
