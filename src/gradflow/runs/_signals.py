"""SIGINT and SIGTERM during a run: the first asks the run to stop at its next safe point, a
second one ends the process at once.

Nothing is ever raised from a signal handler: an exception thrown into the middle of a JAX call
can leave the runtime in a bad state (crashes at exit). Instead Python's own handlers are
replaced by no-ops and the signals are read from a wakeup pipe (`signal.set_wakeup_fd`) by a
watcher thread. The C-level handler writes to that pipe at once, even while the main thread is
inside a long XLA computation, so the watcher sees every signal immediately:

- first signal: `gradflow._interrupt.request("SIGINT" | "SIGTERM")`; the experiment raises
  `RunInterrupted` at its next safe point (`advance()`, between the pieces of a long flow), the
  runner writes what was computed, marks the folder `interrupted` and exits 130 / 143;
- second signal: one line on stderr and `os._exit` (130 / 143) at once; the folder stays
  `running` (or `interrupted`) and can be resumed.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

from .. import _interrupt

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


def exit_code(reason: str) -> int:
    """The exit status of a run interrupted by `reason` (a signal's name): 128 + the signal."""
    return EXIT_CODES.get(str(reason), 130)


class SignalGuard:
    """Context manager installing the handlers for the duration of a run (main thread only;
    elsewhere it does nothing).

    - `notify(message)`: called (from the watcher thread) on the first signal.
    - `immediate_exit_message`: the line printed before exiting at once on a second signal.
    """

    def __init__(
        self,
        notify: Callable[[str], None] | None = None,
        immediate_exit_message: str = "interrupted twice: stopped at once",
    ):
        self.notify = notify
        self.immediate_exit_message = immediate_exit_message
        self.received: list[str] = []
        self.active = False
        self._previous: dict = {}
        self._previous_fd = -1
        self._pipe: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is not threading.main_thread():
            return self
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        self._pipe = (read_fd, write_fd)
        self._previous = {s: signal.signal(s, _ignore) for s in SIGNALS}
        self._previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        self._thread = threading.Thread(
            target=self._watch, args=(read_fd,), name="gradflow-signals", daemon=True
        )
        self._thread.start()
        self.active = True
        return self

    def _watch(self, read_fd: int) -> None:
        while True:
            try:
                data = os.read(read_fd, 64)
            except OSError:
                return
            if not data:
                return
            for number in data:
                if number not in {int(s) for s in SIGNALS}:
                    continue
                name = signal.Signals(number).name
                self.received.append(name)
                if len(self.received) == 1:
                    _interrupt.request(name)
                    if self.notify is not None:
                        try:
                            self.notify(
                                f"{name}: stopping at the next safe point (again to stop at once)"
                            )
                        except Exception:
                            pass
                else:
                    line = f"error: {name}: {self.immediate_exit_message}\n"
                    try:
                        os.write(2, line.encode())
                    except OSError:
                        pass
                    os._exit(exit_code(name))

    def __exit__(self, *exc) -> None:
        if not self.active:
            return
        signal.set_wakeup_fd(self._previous_fd)
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        read_fd, write_fd = self._pipe
        os.close(write_fd)  # the watcher reads end-of-file and returns
        self._thread.join(timeout=5)
        os.close(read_fd)
        self.active = False


def _ignore(signum, frame) -> None:
    """Python-level handler: nothing (the watcher thread acts on the wakeup pipe)."""
