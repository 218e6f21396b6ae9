"""The runner: an experiment's effective configuration turned into a run folder.

    config.json    written first: the effective configuration and the provenance
    summary.json   status 'running' before any work; at the end 'ok', 'failed' or 'interrupted'
                   with the experiment's numbers (written last: it is the commit point)
    metrics.parquet, trajectory.nc, *.png, captions.json, report.html
    checkpoints/   what `RunContext.checkpoint`/`cached` stored; removed when the run succeeds

The configuration is validated before the folder is touched; the folder is locked for the
duration; every file is written atomically; SIGINT/SIGTERM stop the run at a safe point
(`_signals`). A run is 'ok' only if every flow reached its end (`Result.incomplete` empty).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .. import _files, _interrupt
from .._errors import ConfigError, DivergenceError, RunInterrupted, SolverError
from .._files import RunFolderError
from ..experiments import EffectiveConfig, Result, effective_config, from_record, get_experiment
from ._context import ProgressView, RunContext
from ._folder import FIGURE_DPI, RunFolder, check_out
from ._provenance import input_files, provenance
from ._report import write_report
from ._signals import SignalGuard


def default_folder(name: str) -> Path:
    """Where a run of `name` goes without `--out`: runs/NAME."""
    return Path("runs") / name


def plan(name: str, overrides: dict | None = None, out=None, *, overwrite: bool = False):
    """What `run_experiment` would do, checked without creating or writing anything: returns
    (effective config, folder). Raises `ConfigError` (invalid input, a folder that would be
    refused)."""
    effective = effective_config(name, overrides)
    folder = check_out(out if out is not None else default_folder(name))
    if folder.is_dir() and not overwrite:
        state = RunFolder(folder).state()
        if state is not None:
            raise RunFolderError(
                folder,
                f"already holds a run (status {state['status']}); use --overwrite to replace it "
                "or --resume to continue it",
            )
    return effective, folder


def run_experiment(
    name: str,
    overrides: dict | None = None,
    out=None,
    view: ProgressView | None = None,
    *,
    overwrite: bool = False,
    compute=None,
) -> tuple[Path, Result]:
    """Run experiment `name` with `overrides` (`--set` values) into the folder `out` (default
    runs/NAME); returns (folder, result). `result.summary` is what summary.json holds.

    Raises `ConfigError` before anything is written for invalid input or a folder that holds
    another run (unless `overwrite`); `DivergenceError`/`SolverError` after writing the partial
    results (status 'failed'); `RunInterrupted` after marking the folder 'interrupted'. A run
    whose flows did not all reach their end returns normally with status 'failed'.

    `compute(config, context) -> Result`, if given, replaces the experiment's run function: a
    sweep hands each member of an ensemble solved together (`gradflow.sweeps`) to the runner
    this way, so that its folder is written exactly as a run of its own would be."""
    effective = effective_config(name, overrides)
    folder = check_out(out if out is not None else default_folder(name))
    mode = "overwrite" if overwrite else "new"
    return _execute(folder, mode, view, effective=effective, compute=compute)


def resume_experiment(
    out, name: str | None = None, view: ProgressView | None = None
) -> tuple[Path, Result]:
    """Continue the run in folder `out` with the configuration in its config.json (`name`, if
    given, must be its experiment). Checkpoints stored by the interrupted run are reused."""
    folder = check_out(out)
    if not folder.is_dir():
        raise RunFolderError(folder, "does not exist: nothing to resume")
    return _execute(folder, "resume", view, expected=name)


def read_config(folder, expected: str | None = None) -> EffectiveConfig:
    """The effective configuration recorded in `folder/config.json`, validated; `expected` (an
    experiment name), if given, must match. Input files must be unchanged (SHA-256)."""
    folder = Path(folder)
    record = _files.read_json(folder / "config.json", "config.json written by gradflow")
    effective = from_record(record)
    if expected is not None and expected != effective.experiment:
        raise RunFolderError(folder, f"holds a run of {effective.experiment}, not {expected}")
    recorded = record.get("provenance", {}).get("inputs", {}) if isinstance(record, dict) else {}
    for field, now in input_files(effective.config).items():
        if recorded.get(field, {}).get("sha256") != now["sha256"]:
            raise ConfigError(field, now["path"], "the same file as when the run started")
    return effective


def _execute(folder: Path, mode: str, view, effective=None, expected=None, compute=None):
    try:
        _interrupt.check()  # a signal before the run started (the CLI's handlers record it)
    except RunInterrupted as err:
        err.started = False
        raise
    resume_hint = f"gradflow run --resume --out {folder}"
    guard = SignalGuard(
        notify=view.log if view is not None else None,
        immediate_exit_message=f"stopped at once; the run can be continued with: {resume_hint}",
    )
    with guard:
        run_folder = RunFolder(folder)
        previous = run_folder.open(mode)
        try:
            try:
                if mode == "resume":
                    effective = read_config(folder, expected)
                    summary = (previous or {}).get("summary") or {}
                    resumed = int(summary.get("resumed", 0) or 0) + 1
                else:
                    record = {**effective.record(), "provenance": provenance(effective.config)}
                    run_folder.write_json("config.json", record)
                    resumed = 0
                base = {"experiment": effective.experiment}
                run_folder.write_json(
                    "summary.json", {**base, "status": "running", "resumed": resumed}
                )
                run_folder.remove("report.html")
            except OSError as err:
                raise RunFolderError(folder, f"cannot be written ({err.strerror})") from None
            import matplotlib

            # Figures are only saved (Agg), and laid out at the resolution they are saved at, so
            # that saving one (bbox_inches="tight" draws it first) reuses its text layouts instead
            # of laying out every label again at a second resolution.
            matplotlib.use("Agg")
            with matplotlib.rc_context({"figure.dpi": FIGURE_DPI}):
                return _run(run_folder, effective, view, resumed, compute)
        finally:
            run_folder.close()
            _interrupt.clear()


def _finish(run_folder: RunFolder, summary: dict) -> dict:
    """Write report.html, then summary.json (the commit point). If the report cannot be written
    the run is marked failed (when even that cannot be written, it stays 'running')."""
    normal = json.loads(_files.dumps(summary))
    try:
        write_report(run_folder.path, summary=normal)
    except OSError as err:
        failed = {
            **summary,
            "status": "failed",
            "error": f"cannot write report.html: {err.strerror}",
        }
        run_folder.write_json("summary.json", failed)
        raise
    run_folder.write_json("summary.json", summary)
    return summary


def _write_result(run_folder: RunFolder, result: Result) -> None:
    import matplotlib.pyplot as plt

    try:
        if result.metrics is not None:
            run_folder.write_metrics(result.metrics)
        elif result.trajectory is not None:
            run_folder.write_metrics(result.trajectory.metrics_frame())
        if result.trajectory is not None:
            run_folder.write_trajectory(result.trajectory)
        for stem, figure in result.figures.items():
            run_folder.write_figure(stem, figure)
        run_folder.write_json(
            "captions.json",
            {"figures": list(result.figures), "captions": result.captions, "notes": result.notes},
        )
    finally:
        for figure in result.figures.values():
            plt.close(figure)


def _run(run_folder: RunFolder, effective: EffectiveConfig, view, resumed: int, compute=None):
    exp = get_experiment(effective.experiment)
    base = {"experiment": effective.experiment}
    context = RunContext(run_folder.path, view, resumed=resumed > 0)
    start = time.perf_counter()

    def ended(status: str, **fields) -> dict:
        wall = {"wall_time_s": time.perf_counter() - start, "resumed": resumed}
        return {**base, "status": status, **fields, **wall}

    try:
        result = (compute or exp.run)(effective.config, context)
    except RunInterrupted as err:
        trajectory = getattr(err, "trajectory", None)
        if trajectory is not None:
            run_folder.write_trajectory(trajectory, metrics=True)
        _finish(run_folder, ended("interrupted", signal=str(err)))
        raise
    except KeyboardInterrupt:  # no signal handlers (a run outside the main thread)
        _finish(run_folder, ended("interrupted", signal="SIGINT"))
        raise RunInterrupted("SIGINT") from None
    except (DivergenceError, SolverError) as err:
        if err.trajectory is not None:
            run_folder.write_trajectory(err.trajectory, metrics=True)
        _finish(run_folder, ended("failed", error=f"{type(err).__name__}: {err}"))
        raise
    except BaseException as err:
        try:
            _finish(run_folder, ended("failed", error=f"{type(err).__name__}: {err}"))
        except (OSError, ConfigError):
            pass
        raise
    finally:
        context.close()

    status = "failed" if result.incomplete else "ok"
    fields = {"incomplete": list(result.incomplete)} if result.incomplete else {}
    try:
        _write_result(run_folder, result)
    except OSError as err:
        try:
            _finish(run_folder, ended("failed", error=f"cannot write results: {err.strerror}"))
        except OSError:
            pass
        raise
    numbers = {k: v for k, v in result.summary.items() if k not in ("experiment", "status")}
    summary = ended(status, **fields, **numbers)
    _finish(run_folder, summary)
    if status == "ok":
        run_folder.remove_checkpoints()
    result.summary = summary
    return run_folder.path, result
