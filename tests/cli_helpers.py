"""Helpers for driving the `gradflow` command in tests: in process (`invoke`, typer's CliRunner)
or as a real subprocess (`gradflow_command`), and checks of the one-line error contract."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from typer.testing import CliRunner

from gradflow.cli import app


def invoke(*args) -> SimpleNamespace:
    """Run `gradflow ARGS` in process: exit_code, stdout, stderr, and `uncaught`, the repr of an
    exception that escaped the command."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    escaped = result.exception is not None and not isinstance(result.exception, SystemExit)
    return SimpleNamespace(
        exit_code=result.exit_code,
        stdout=result.stdout,
        stderr=result.stderr,
        uncaught=repr(result.exception) if escaped else None,
    )


def exited(result, code: int) -> None:
    """The command exited with `code` through typer, not through an uncaught exception."""
    assert result.uncaught is None, f"uncaught {result.uncaught}\n{result.stderr}"
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr


def one_error_line(stderr: str) -> str:
    """stderr is exactly one line, `error: ...`; returns it."""
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def last_error_line(stderr: str) -> str:
    """The one `error:` line of stderr, which is its last non-blank line (log lines may come
    before it)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    return errors[0]


def gradflow_command() -> list[str]:
    """The installed `gradflow` entry point next to this interpreter (else `python -m`)."""
    script = Path(sys.executable).with_name("gradflow")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "gradflow_command"]


def run_subprocess(*args, cwd, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*gradflow_command(), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )
