"""Resume, runner side (issue 8, item 3): `gradflow run --resume --out DIR` re-reads the
effective configuration from DIR/config.json and reruns the experiment with a `RunContext` whose
`checkpoint(name)` folders and `cached(name, compute)` trajectories survive the interruption, so
the work done before it is loaded instead of recomputed and the summary equals an uninterrupted
run's. Uses the test-only experiment `test-fake`, which simulates SIGTERM after piece
`kill_at` on its first attempt (real signals: tests/test_fault_injection.py)."""

import json
from pathlib import Path

import pytest
from cli_helpers import exited, invoke, one_error_line

from gradflow import _interrupt
from gradflow._errors import RunInterrupted
from gradflow.runs import RunContext

RUNNER_KEYS = ("wall_time_s", "resumed")  # the runner's own entries: differ between attempts


def numbers(folder: Path) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    return {k: v for k, v in summary.items() if k not in RUNNER_KEYS}


def test_resume_loads_checkpoints_and_reaches_the_uninterrupted_numbers(fake_experiment, tmp_path):
    reference = tmp_path / "reference"
    exited(invoke("run", "test-fake", "--out", reference), 0)

    out = tmp_path / "run"
    fake_experiment.CALLS.clear()
    exited(invoke("run", "test-fake", "--set", "kill_at=1", "--out", out), 143)
    assert fake_experiment.CALLS == ["warmup", "piece0", "piece1"]
    config_bytes = (out / "config.json").read_bytes()

    fake_experiment.CALLS.clear()
    result = invoke("run", "--resume", "--out", out)
    exited(result, 0)
    # the cached warmup and the checkpointed pieces were loaded, not recomputed
    assert fake_experiment.CALLS == ["piece2", "piece3"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["resumed"] == 1
    assert numbers(out) == numbers(reference)
    assert not (out / "checkpoints").exists()  # removed once the run succeeded
    assert (out / "config.json").read_bytes() == config_bytes  # the configuration that ran


def test_resume_with_the_experiment_name_and_a_second_interruption(fake_experiment, tmp_path):
    out = tmp_path / "run"
    exited(invoke("run", "test-fake", "--set", "kill_at=0", "--out", out), 143)
    # resumed runs do not simulate the kill again; a real one would leave 'interrupted' again
    exited(invoke("run", "test-fake", "--resume", "--out", out), 0)
    assert json.loads((out / "summary.json").read_text())["status"] == "ok"


@pytest.mark.parametrize(
    "case",
    ["--set", "other name", "complete", "no run", "missing folder", "--overwrite"],
)
def test_resume_refusals_are_one_line_exit_2(fake_experiment, tmp_path, case):
    out = tmp_path / "run"
    if case == "complete":
        exited(invoke("run", "test-fake", "--out", out), 0)
    elif case == "no run":
        out.mkdir()
        (out / "notes.txt").write_text("a user's file")
    elif case != "missing folder":
        exited(invoke("run", "test-fake", "--set", "kill_at=0", "--out", out), 143)
    before = {p.name: p.read_bytes() for p in out.glob("*") if p.is_file()}
    args = {
        "--set": ["run", "--resume", "--out", out, "--set", "pieces=9"],
        "other name": ["run", "deep-linear", "--resume", "--out", out],
        "complete": ["run", "--resume", "--out", out],
        "no run": ["run", "--resume", "--out", out],
        "missing folder": ["run", "--resume", "--out", out],
        "--overwrite": ["run", "--resume", "--overwrite", "--out", out],
    }[case]
    result = invoke(*args)
    exited(result, 2)
    line = one_error_line(result.stderr)
    expected = {
        "--set": "no --set with --resume",
        "other name": "holds a run of test-fake, not deep-linear",
        "complete": "already complete (status ok)",
        "no run": "holds no run to resume",
        "missing folder": "does not exist",
        "--overwrite": "not with --resume",
    }[case]
    assert expected in line, line
    after = {p.name: p.read_bytes() for p in out.glob("*") if p.is_file()}
    assert after == before  # nothing written


def test_resume_refuses_a_changed_input_file(fake_experiment, tmp_path):
    data = tmp_path / "data.npz"
    data.write_bytes(b"version 1")
    out = tmp_path / "run"
    exited(
        invoke(
            "run", "test-fake", "--set", f"data_file={data}", "--set", "kill_at=0", "--out", out
        ),
        143,
    )
    inputs = json.loads((out / "config.json").read_text())["provenance"]["inputs"]
    assert inputs["data_file"]["path"] == str(data.resolve())
    assert len(inputs["data_file"]["sha256"]) == 64
    data.write_bytes(b"version 2")
    result = invoke("run", "--resume", "--out", out)
    exited(result, 2)
    assert "data_file" in one_error_line(result.stderr)
    data.write_bytes(b"version 1")
    exited(invoke("run", "--resume", "--out", out), 0)


def test_resume_dry_run_prints_the_recorded_configuration(fake_experiment, tmp_path):
    out = tmp_path / "run"
    exited(invoke("run", "test-fake", "--set", "pieces=2", "--set", "kill_at=0", "--out", out), 143)
    result = invoke("run", "--resume", "--dry-run", "--out", out)
    exited(result, 0)
    assert "pieces" in result.stdout and "set" in result.stdout
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"


def test_run_context_without_a_folder():
    context = RunContext()
    folder = context.checkpoint("flow")
    assert folder.is_dir() and context.checkpoint("flow") == folder
    calls = []
    assert context.cached("x", lambda: calls.append(1) or "computed") == "computed"
    assert context.cached("x", lambda: calls.append(1) or "computed") == "computed"
    assert calls == [1, 1]  # nothing stored without a run folder
    with pytest.raises(ValueError):
        context.checkpoint("../outside")
    context.close()
    assert not folder.exists()


def test_advance_is_a_safe_point_that_stops_an_interrupted_run():
    context = RunContext()
    try:
        with context.task("work", total=3) as advance:
            advance()
            _interrupt.request("SIGINT")
            with pytest.raises(RunInterrupted, match="SIGINT"):
                advance()
        with pytest.raises(RunInterrupted):
            with context.task("next"):
                pass
    finally:
        _interrupt.clear()


def test_the_cli_progress_shows_elapsed_time_and_eta():
    from rich.progress import TimeElapsedColumn, TimeRemainingColumn

    from gradflow.cli import _progress_bar

    kinds = {type(c) for c in _progress_bar().columns}
    assert {TimeElapsedColumn, TimeRemainingColumn} <= kinds
