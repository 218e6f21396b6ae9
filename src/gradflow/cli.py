"""The `gradflow` command: `gradflow list`, `gradflow run NAME [--set k=v ...] [--out DIR]`,
`gradflow report DIR`. Invalid input prints one line and exits 2; a run that fails prints one line,
keeps its partial results in the run folder and exits 1."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
err_console = Console(stderr=True, log_path=False)
console = Console()


class _RichProgress:
    """The experiments' `Progress`, shown with rich."""

    def __init__(self, progress: Progress):
        self._progress = progress

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None):
        task_id = self._progress.add_task(description, total=total)
        try:
            yield lambda n=1: self._progress.advance(task_id, n)
        finally:
            self._progress.update(task_id, visible=False)

    def log(self, message: str) -> None:
        self._progress.console.log(message)


def _fail(message: str, code: int) -> None:
    """Print `error: message` on one line of stderr and exit with `code`."""
    from rich.markup import escape

    message = " ".join(str(message).split())  # one line, whatever the message holds
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _parse_sets(sets: list[str]) -> dict[str, str]:
    from ._errors import ConfigError

    out = {}
    for item in sets:
        if "=" not in item:
            raise ConfigError("--set", item, "key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


@app.command("list")
def list_experiments() -> None:
    """List the named experiments, one line each."""
    from .experiments import REGISTRY

    table = Table("experiment", "what it shows", box=None)
    for name in sorted(REGISTRY):
        table.add_row(name, REGISTRY[name].description)
    console.print(table)


@app.command()
def run(
    name: str = typer.Argument(..., help="experiment name (see `gradflow list`)"),
    set_: list[str] = typer.Option([], "--set", help="override a config field: key=value"),
    out: Path = typer.Option(None, "--out", help="run folder (default runs/NAME)"),
) -> None:
    """Run a named experiment and write its run folder."""
    from ._errors import ConfigError, DivergenceError, SolverError
    from .experiments import make_config, run_experiment

    try:
        overrides = _parse_sets(set_)
        make_config(name, overrides)  # invalid input fails here, before any output
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        ) as bar:
            folder, result = run_experiment(name, overrides, out, _RichProgress(bar))
    except ConfigError as err:
        _fail(str(err), 2)
    except (DivergenceError, SolverError) as err:
        where = out if out is not None else Path("runs") / name
        _fail(f"{type(err).__name__}: {err} (partial results kept in {where})", 1)
    # A path is printed as is: on one line whatever the console width (pipes: 80 columns), and
    # never read as rich markup.
    console.print(f"run folder: {folder}", soft_wrap=True, markup=False)
    console.print(f"report: {(folder / 'report.html').resolve()}", soft_wrap=True, markup=False)


@app.command()
def report(folder: Path = typer.Argument(..., help="a run folder")) -> None:
    """Rebuild the HTML report of a run folder."""
    from ._errors import ConfigError
    from .report import write_report

    try:
        path = write_report(folder)
    except ConfigError as err:
        _fail(str(err), 2)
    console.print(f"report: {path.resolve()}", soft_wrap=True, markup=False)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
