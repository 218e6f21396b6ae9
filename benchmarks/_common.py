"""What the comparative benchmark scripts share: a wall-clock timer, unbuffered progress lines,
and the final Markdown table printed and optionally written to a file."""

from __future__ import annotations

import time


class Timer:
    """Seconds since construction, on `perf_counter` (monotonic, the finest clock)."""

    def __init__(self):
        self.t = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.t


def log(s: str = "") -> None:
    """A progress line, flushed at once (the benchmarks run for minutes, often piped)."""
    print(s, flush=True)


def report(lines: list[str], path: str | None) -> int:
    """Print the report `lines` after a blank line and write them to `path` when given; the
    script's exit status (0)."""
    text = "\n".join(lines)
    log("\n" + text)
    if path:
        with open(path, "w") as fh:
            fh.write(text + "\n")
    return 0
