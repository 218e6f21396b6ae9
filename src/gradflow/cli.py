"""The `gradflow` command: `gradflow list`, `gradflow describe NAME`,
`gradflow run NAME [--set k=v ...] [--out DIR] [--overwrite | --resume] [--dry-run]`,
`gradflow report DIR`, `gradflow sweep NAME --grid key=v1,v2 [--seeds K] --out DIR`.

Exit codes: 0 success; 1 a run that failed (diverged, stopped early, incomplete, could not write
its files: partial results kept); 2 invalid input or a run folder that cannot be used (one line,
nothing written); 130 / 143 a run interrupted by SIGINT / SIGTERM (resumable). Every error is one
line on stderr, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ._progress import progress_bar

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
err_console = Console(stderr=True, log_path=False)
console = Console()


class _RichView:
    """The run's `ProgressView`, shown with rich on stderr: elapsed time and ETA per task."""

    def __init__(self, progress: Progress):
        self._progress = progress

    def start(self, description: str, total: int | None):
        return self._progress.add_task(description, total=total)

    def advance(self, handle, n: int) -> None:
        self._progress.advance(handle, n)

    def stop(self, handle) -> None:
        self._progress.update(handle, visible=False)

    def log(self, message: str) -> None:
        self._progress.console.log(message, markup=False, highlight=False)


def _progress_bar():
    # pipes get the log lines and the result only
    return progress_bar(err_console, transient=True, disable=not err_console.is_terminal)


def _fail(message: str, code: int) -> None:
    """Print `error: message` on one line of stderr and exit with `code`."""
    from rich.markup import escape

    message = " ".join(str(message).split())  # one line, whatever the message holds
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _os_error(err: OSError) -> str:
    where = f" ({err.filename})" if getattr(err, "filename", None) else ""
    return f"{err.strerror or type(err).__name__}{where}"


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
def describe(name: str = typer.Argument(..., help="experiment name (see `gradflow list`)")) -> None:
    """List every `--set` key of an experiment: type, default, quick and tiny values, meaning."""
    from ._errors import ConfigError
    from .experiments import describe as rows_of
    from .experiments import get_experiment

    try:
        rows = rows_of(name)
    except ConfigError as err:
        _fail(str(err), 2)
    exp = get_experiment(name)
    table = Table(title=f"{name}: {exp.description}", title_justify="left")
    for column in ("key", "type", "default", "quick", "tiny"):
        table.add_column(column, no_wrap=True)
    table.add_column("meaning")
    for row in rows:
        table.add_row(*(row[k] for k in ("key", "type", "default", "quick", "tiny", "meaning")))
    # In a pipe, one row per line (a table 80 columns wide would wrap every meaning).
    out = console if console.is_terminal else Console(width=max(console.width, 240))
    out.print(table, markup=False, highlight=False)


def _print_effective(effective, folder: Path) -> None:
    """The effective configuration, field by field, with where each value comes from."""
    from .experiments import format_bytes, physical_memory, to_text

    config = effective.config
    sources = effective.sources()
    table = Table("key", "value", "from", box=None)
    for key, source in sources.items():
        table.add_row(key, to_text(getattr(config, key)), source)
    console.print(
        f"experiment {effective.experiment}, preset {effective.preset}; would write {folder}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    console.print(table, markup=False, highlight=False)
    estimate, limit = config.estimated_bytes(), physical_memory()
    if estimate is not None:
        console.print(
            f"estimated memory {format_bytes(estimate)} of {format_bytes(limit or float('nan'))}",
            markup=False,
            highlight=False,
        )


@app.command()
def run(
    name: str = typer.Argument(None, help="experiment name (see `gradflow list`)"),
    set_: list[str] = typer.Option(
        [],
        "--set",
        help="a config value: key=value (`gradflow describe NAME` lists the keys; "
        "preset=quick|tiny|full)",
    ),
    out: str = typer.Option(None, "--out", help="run folder (default runs/NAME)"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="replace the run the folder holds (only gradflow's files)"
    ),
    resume: bool = typer.Option(
        False, "--resume", help="continue the interrupted run in --out with its config.json"
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="validate and print the effective configuration; run nothing"
    ),
) -> None:
    """Run a named experiment and write its run folder."""
    from . import _interrupt, runs
    from ._cache import enable_compilation_cache
    from ._errors import ConfigError, DivergenceError, RunInterrupted, SolverError
    from .runs import exit_code

    enable_compilation_cache()  # a second run of the same shapes loads its programs from disk
    folder = out
    try:
        if resume:
            if set_:
                raise ConfigError(
                    "--set",
                    " ".join(set_),
                    "no --set with --resume (the run "
                    "continues with the configuration in its config.json)",
                )
            if overwrite:
                raise ConfigError("--overwrite", True, "not with --resume")
            if out is None and name is None:
                raise ConfigError("--out", None, "the folder of the run to resume")
            folder = out if out is not None else runs.default_folder(name)
            if dry_run:
                effective = runs.read_config(folder, name)
                _print_effective(effective, folder)
                return
            with _progress_bar() as bar:
                folder, result = runs.resume_experiment(folder, name, _RichView(bar))
        else:
            if name is None:
                raise ConfigError("NAME", None, "an experiment name (see gradflow list)")
            overrides = _parse_sets(set_)
            effective, folder = runs.plan(name, overrides, out, overwrite=overwrite)
            if dry_run:
                _print_effective(effective, folder)
                return
            with _progress_bar() as bar:
                folder, result = runs.run_experiment(
                    name, overrides, folder, _RichView(bar), overwrite=overwrite
                )
    except ConfigError as err:
        _fail(str(err), 2)
    except (DivergenceError, SolverError) as err:
        _fail(f"{type(err).__name__}: {err} (partial results kept in {folder})", 1)
    except RunInterrupted as err:
        if not getattr(err, "started", True):
            _interrupt.clear()
            _fail(
                f"interrupted by {err} before the run started: nothing written", exit_code(str(err))
            )
        _fail(
            f"interrupted by {err}: results so far kept in {folder} (status interrupted); "
            f"continue with: gradflow run --resume --out {folder}",
            exit_code(str(err)),
        )
    except OSError as err:
        _fail(f"cannot write the run folder {folder}: {_os_error(err)}", 1)
    _interrupt.clear()  # a signal after the run ended changes nothing: it is complete
    # A path is printed as is: on one line whatever the console width (pipes: 80 columns), and
    # never read as rich markup.
    console.print(f"run folder: {folder}", soft_wrap=True, markup=False)
    console.print(f"report: {(folder / 'report.html').resolve()}", soft_wrap=True, markup=False)
    reasons = result.summary.get("incomplete") or []
    if reasons:
        more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
        _fail(
            f"run incomplete: {len(reasons)} flow(s) did not reach their end: {reasons[0]}{more}; "
            f"status failed, all results written to {folder}",
            1,
        )


@app.command()
def report(folder: str = typer.Argument(..., help="a run folder")) -> None:
    """Rebuild the HTML report of a run folder."""
    from ._errors import ConfigError
    from .runs import write_report

    try:
        if folder.strip() == "":
            raise ConfigError("DIR", folder, "a run folder containing config.json")
        path = write_report(folder)
    except ConfigError as err:
        _fail(str(err), 2)
    except OSError as err:
        _fail(f"cannot write {Path(folder) / 'report.html'}: {_os_error(err)}", 1)
    console.print(f"report: {path.resolve()}", soft_wrap=True, markup=False)


@app.command()
def sweep(
    name: str = typer.Argument(..., help="experiment name (see `gradflow list`)"),
    grid: list[str] = typer.Option(
        [], "--grid", help="a swept key: key=v1,v2,... (repeat for more keys: their product)"
    ),
    seeds: int = typer.Option(1, "--seeds", help="seeds per cell: S, S+1, ..., S+K-1"),
    set_: list[str] = typer.Option([], "--set", help="a config value for every cell: key=value"),
    out: str = typer.Option(..., "--out", help="the sweep folder"),
    engine: str = typer.Option("local", "--engine", help="local (process pool) or ray"),
    address: str = typer.Option(None, "--address", help="a Ray cluster (HEAD:6379); ray only"),
    workers: int = typer.Option(
        None, "--workers", help="processes (default: one per core; 0: in this process)"
    ),
    import_: list[str] = typer.Option(
        [], "--import", help="a module to import in every worker (registers your experiment)"
    ),
) -> None:
    """Run an experiment over a grid (x seeds): a run folder per cell and seed, one table
    (DIR/results.parquet) and a report (DIR/report.html). Rerun to resume."""
    from ._errors import ConfigError, RunInterrupted
    from .sweeps import parse_grid_options
    from .sweeps import sweep as run_sweep

    try:
        if not grid:
            raise ConfigError("--grid", None, "at least one key=v1,v2,... option")
        table = run_sweep(
            name,
            parse_grid_options(grid),
            seeds,
            out=out,
            sets=_parse_sets(set_),
            engine=engine,
            workers=workers,
            address=address,
            imports=import_,
        )
    except ConfigError as err:
        _fail(str(err), 2)
    except ImportError as err:
        _fail(f"--import: {err}", 2)
    except RunInterrupted as err:
        _fail(f"interrupted by {err}: rerun the same command to continue", 130)
    except OSError as err:
        _fail(f"cannot write the sweep folder {out}: {_os_error(err)}", 1)
    info = table.attrs["sweep"]
    counts = table["status"].value_counts().to_dict()
    console.print(
        f"{len(table)} runs ({', '.join(f'{n} {s}' for s, n in counts.items())}); "
        f"{info['cells_run']} cells run, {info['cells_skipped']} complete already; "
        f"{info['wall_s']:.1f} s",
        soft_wrap=True,
        markup=False,
    )
    console.print(f"table: {Path(out) / 'results.parquet'}", soft_wrap=True, markup=False)
    console.print(f"report: {(Path(out) / 'report.html').resolve()}", soft_wrap=True, markup=False)
    bad = table[table["status"] != "ok"]
    if len(bad):
        first = bad.iloc[0]
        _fail(f"{len(bad)} run(s) did not succeed, e.g. {first['folder']}: {first['error']}", 1)


def _on_signal(number, frame) -> None:
    """SIGINT / SIGTERM outside a run (a run installs its own handlers, `gradflow.runs._signals`):
    never raise (an exception from a handler can land anywhere, e.g. in a JAX garbage-collection
    callback); record it, so that a run about to start does not, and a command that is running
    ends with 130 / 143. A second one ends the process at once."""
    import os
    import signal

    from . import _interrupt

    name = signal.Signals(number).name
    if _interrupt.requested():
        os.write(2, f"error: {name}: stopped at once\n".encode())
        os._exit(128 + number)
    _interrupt.request(name)


def main() -> None:
    """The console script: `app()`, with `_on_signal` outside runs. A signal that arrived while a
    command other than a run was working ends it with one line and 130 / 143. Once the command
    is done the process ends at once (`os._exit`, after flushing): every file is written and
    closed, and the interpreter's teardown of the JAX runtime is skipped."""
    import os
    import signal

    from . import _interrupt
    from ._errors import RunInterrupted
    from .runs import exit_code

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _on_signal)
    code = 0
    try:
        app()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except KeyboardInterrupt:  # typer turns it into exit 130; kept for safety
        _interrupt.request("SIGINT")
    try:
        _interrupt.check()
    except RunInterrupted as err:
        err_console.print(f"error: interrupted by {err}", highlight=False)
        code = code or exit_code(str(err))
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, RuntimeError):
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
