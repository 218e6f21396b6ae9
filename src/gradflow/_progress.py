"""The one look of a progress bar, for the CLI's runs and for sweeps: description, bar, done/total,
elapsed and remaining time. rich is imported on use (a library user may never show one)."""

from __future__ import annotations


def progress_bar(console, **options):
    """A `rich.progress.Progress` on `console` with the columns above; `options` go to it
    (e.g. transient=True, disable=...)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        **options,
    )
