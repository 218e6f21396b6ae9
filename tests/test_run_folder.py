"""Run folders (issue 8, items 2 and 5): the lock, refusing a folder that holds another run,
--overwrite removing only gradflow's files, status from 'running' to ok | failed | interrupted,
incomplete flows, atomic writes, file-system errors as one line (never a traceback) and the
report (status first, figures headline-first, 4 significant digits, only regular files inside
the folder). Driven in process through the CLI with the fast test-only experiment `test-fake`
(tests/fake_experiment.py): each run takes well under a second once its descent is compiled."""

import base64
import errno
import json
from pathlib import Path

import pytest
from cli_helpers import exited, invoke, last_error_line, one_error_line

from gradflow import _files

OUTPUTS = (
    "config.json",
    "summary.json",
    "metrics.parquet",
    "trajectory.nc",
    "zeta_headline.png",
    "alpha_second.png",
    "captions.json",
    "report.html",
)


def run_fake(out, *sets, flags=()):
    args = ["run", "test-fake", "--out", out, *flags]
    for item in sets:
        args += ["--set", item]
    return invoke(*args)


def summary_of(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob(f"{_files.TMP_PREFIX}*")]


# ---------------------------------------------------------------------------------------------
# a complete run


def test_a_run_writes_every_file_with_status_ok(fake_experiment, tmp_path):
    out = tmp_path / "run"
    result = run_fake(out, "seed=1")
    exited(result, 0)
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    assert not (out / "checkpoints").exists()  # a successful run removes its checkpoints
    assert temporaries(out) == []
    summary = summary_of(out)
    assert summary["experiment"] == "test-fake" and summary["status"] == "ok"
    assert summary["resumed"] == 0 and summary["wall_time_s"] > 0
    record = json.loads((out / "config.json").read_text())
    assert list(record) == ["experiment", "preset", "set_by_user", "config", "provenance"]
    assert record["preset"] == "full" and record["set_by_user"] == ["seed"]
    assert record["config"]["seed"] == 1 and record["config"]["pieces"] == 4
    captions = json.loads((out / "captions.json").read_text())
    assert captions["figures"] == ["zeta_headline", "alpha_second"]  # the experiment's order


def test_status_is_running_before_any_work(fake_experiment, tmp_path, monkeypatch):
    out = tmp_path / "run"
    seen = {}
    original = fake_experiment.run

    def spy(config, context):
        seen["summary"] = summary_of(out)
        seen["config"] = (out / "config.json").is_file()
        return original(config, context)

    from gradflow.experiments import REGISTRY, Experiment

    spied = Experiment("test-fake", "spy", fake_experiment.FakeConfig, spy)
    monkeypatch.setitem(REGISTRY, "test-fake", spied)
    exited(run_fake(out), 0)
    assert seen["config"] and seen["summary"]["status"] == "running"
    assert summary_of(out)["status"] == "ok"


# ---------------------------------------------------------------------------------------------
# the lock and a folder holding another run


def test_a_second_run_into_a_locked_folder_exits_2(fake_experiment, tmp_path):
    import fcntl

    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".gradflow.lock", "w") as handle:  # another run holds the lock
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = run_fake(out)
    exited(result, 2)
    line = one_error_line(result.stderr)
    assert str(out) in line and "another gradflow run" in line
    assert not (out / "config.json").exists() and not (out / "summary.json").exists()


def test_two_runs_into_one_folder_at_once_the_second_is_refused(
    fake_experiment, tmp_path, monkeypatch
):
    from gradflow.experiments import REGISTRY, Experiment, run_experiment
    from gradflow.runs import RunFolderError

    out = tmp_path / "run"
    errors = []
    original = fake_experiment.run

    def racing(config, context):  # while this run works, a second one starts into its folder
        for flags in ({}, {"overwrite": True}):
            with pytest.raises(RunFolderError) as info:
                run_experiment("test-fake", {"seed": "5"}, out, **flags)
            errors.append(str(info.value))
        return original(config, context)

    monkeypatch.setitem(
        REGISTRY, "test-fake", Experiment("test-fake", "race", fake_experiment.FakeConfig, racing)
    )
    exited(run_fake(out), 0)
    assert len(errors) == 2 and all("another gradflow run" in e for e in errors), errors
    assert json.loads((out / "config.json").read_text())["config"]["seed"] == 0
    assert summary_of(out)["status"] == "ok"


def test_a_folder_holding_a_run_is_refused_and_overwrite_removes_only_gradflow_files(
    fake_experiment, tmp_path
):
    out = tmp_path / "run"
    exited(run_fake(out), 0)
    (out / "notes.txt").write_text("the user's")
    (out / "mine.png").write_bytes(b"the user's own plot")
    # a figure of the earlier run that the next one does not make: named in the manifest
    manifest = json.loads((out / ".gradflow-files.json").read_text())
    (out / "stale.png").write_bytes(b"an old figure")
    manifest["files"].append("stale.png")
    (out / ".gradflow-files.json").write_text(json.dumps(manifest))
    before = (out / "summary.json").read_bytes()

    refused = run_fake(out, "seed=2")
    exited(refused, 2)
    line = one_error_line(refused.stderr)
    assert "already holds a run (status ok)" in line and "--overwrite" in line
    assert (out / "summary.json").read_bytes() == before  # untouched

    exited(run_fake(out, "seed=2", flags=["--overwrite"]), 0)
    assert (out / "notes.txt").read_text() == "the user's"
    assert (out / "mine.png").read_bytes() == b"the user's own plot"
    assert not (out / "stale.png").exists()
    assert json.loads((out / "config.json").read_text())["config"]["seed"] == 2
    report = (out / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 2  # the run's figures only, not mine.png
    assert base64.b64encode(b"the user's own plot").decode() not in report


# ---------------------------------------------------------------------------------------------
# failed, incomplete and interrupted runs


def test_incomplete_flows_mark_the_run_failed_with_all_results(fake_experiment, tmp_path):
    out, result, line = failing_run(tmp_path, 1, "unfinished=true")
    assert line.startswith("error: run incomplete: 1 flow(s) did not reach their end")
    assert "stopped at max_steps (simulated)" in line and str(out) in line
    assert f"report: {(out / 'report.html').resolve()}" in result.stdout.splitlines()
    summary = summary_of(out)
    assert summary["status"] == "failed"
    assert summary["incomplete"] == ["piece 0: stopped at max_steps (simulated)"]
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    report = (out / "report.html").read_text()
    assert "status: failed" in report and "stopped at max_steps (simulated)" in report


def test_a_diverging_run_exits_1_keeping_its_partial_trajectory(fake_experiment, tmp_path):
    out, result, line = failing_run(tmp_path, 1, "fail=true")
    assert line.startswith("error: DivergenceError: the state became non-finite (simulated)")
    summary = summary_of(out)
    assert summary["status"] == "failed" and summary["error"].startswith("DivergenceError")
    assert (out / "trajectory.nc").is_file() and (out / "metrics.parquet").is_file()
    assert "status: failed" in (out / "report.html").read_text()


def test_an_interrupted_run_is_marked_interrupted_and_exits_143(fake_experiment, tmp_path):
    out, result, line = failing_run(tmp_path, 143, "kill_at=1")
    assert line.startswith("error: interrupted by SIGTERM")
    assert f"gradflow run --resume --out {out}" in line
    summary = summary_of(out)
    assert summary["status"] == "interrupted" and summary["signal"] == "SIGTERM"
    assert (out / "checkpoints" / "warmup.nc").is_file()
    assert sorted(p.name for p in (out / "checkpoints" / "pieces").iterdir()) == [
        "piece0.nc",
        "piece1.nc",
    ]
    report = (out / "report.html").read_text()
    assert "status: interrupted" in report and "--resume" in report


# ---------------------------------------------------------------------------------------------
# atomic writes and file-system errors


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "summary.json"
    _files.write_json(path, {"status": "ok"})

    def half_then_full_disk(tmp):
        tmp.write_text('{"status": "runn')
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    with pytest.raises(OSError):
        _files.atomic_write(path, half_then_full_disk)
    assert json.loads(path.read_text()) == {"status": "ok"}
    assert temporaries(tmp_path) == []


def full_disk_on(monkeypatch, name: str) -> None:
    """Writing a file called `name` fails with ENOSPC (everything else is written)."""
    real = _files.atomic_write

    def atomic_write(path, write):
        if Path(path).name == name:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, write)

    monkeypatch.setattr(_files, "atomic_write", atomic_write)


def failing_run(tmp_path, code: int, *settings, error_line=last_error_line):
    """A fake run in tmp_path/run with `settings` that exits `code`: (folder, result, the error
    line read by `error_line`)."""
    out = tmp_path / "run"
    result = run_fake(out, *settings)
    exited(result, code)
    return out, result, error_line(result.stderr)


def full_disk_run(monkeypatch, tmp_path, name: str, code: int, error_line) -> Path:
    """A fake run whose write of `name` fails with ENOSPC exits `code`, its error line (read by
    `error_line`) naming the cause and the folder; returns the folder."""
    full_disk_on(monkeypatch, name)
    out, _, line = failing_run(tmp_path, code, error_line=error_line)
    assert "No space left on device" in line and str(out) in line
    return out


def test_a_full_disk_while_writing_the_report_exits_1_with_one_line(
    fake_experiment, tmp_path, monkeypatch
):
    out = full_disk_run(monkeypatch, tmp_path, "report.html", 1, last_error_line)
    summary = summary_of(out)
    assert summary["status"] == "failed" and "report.html" in summary["error"]  # never 'ok'
    assert not (out / "report.html").exists() and temporaries(out) == []


def test_a_full_disk_before_the_run_starts_exits_2_with_one_line(
    fake_experiment, tmp_path, monkeypatch
):
    full_disk_run(monkeypatch, tmp_path, "config.json", 2, one_error_line)


def test_a_full_disk_in_gradflow_report_exits_1_with_one_line(
    fake_experiment, tmp_path, monkeypatch
):
    out = tmp_path / "run"
    exited(run_fake(out), 0)
    full_disk_on(monkeypatch, "report.html")
    result = invoke("report", out)
    exited(result, 1)
    assert "No space left on device" in one_error_line(result.stderr)


@pytest.mark.parametrize("case", ["a file", "empty", "under /proc", "/proc itself"])
def test_an_unusable_out_exits_2_with_one_line(fake_experiment, tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a folder")
    out = {
        "a file": "afile",
        "empty": "",
        "under /proc": "/proc/gradflow-test/run",
        "/proc itself": "/proc",
    }[case]
    result = invoke("run", "test-fake", "--out", out)
    exited(result, 2)
    line = one_error_line(result.stderr)
    assert line.startswith("error: run folder ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing written here
    assert not Path("/proc/gradflow-test").exists()


# ---------------------------------------------------------------------------------------------
# the report


@pytest.mark.parametrize(
    "damage",
    ["config.json invalid", "summary.json invalid", "captions.json not an object", "binary"],
)
def test_report_of_a_damaged_folder_exits_2_with_one_line(fake_experiment, tmp_path, damage):
    out = tmp_path / "run"
    exited(run_fake(out), 0)
    name, content = {
        "config.json invalid": ("config.json", b'{"experiment": "test-fake", '),
        "summary.json invalid": ("summary.json", b"{not json"),
        "captions.json not an object": ("captions.json", b"[1, 2]"),
        "binary": ("config.json", b"\xff\xfe\x00garbage"),
    }[damage]
    (out / name).write_bytes(content)
    result = invoke("report", out)
    exited(result, 2)
    line = one_error_line(result.stderr)
    assert str(out / name) in line


def test_report_on_a_folder_that_is_not_a_run_exits_2(tmp_path):
    for target in (tmp_path, tmp_path / "missing", ""):
        result = invoke("report", target)
        exited(result, 2)
        assert "config.json" in one_error_line(result.stderr)


def test_report_embeds_only_regular_files_inside_the_folder(fake_experiment, tmp_path):
    out = tmp_path / "run"
    exited(run_fake(out), 0)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"bytes from outside the run folder")
    (out / "alpha_second.png").unlink()
    (out / "alpha_second.png").symlink_to(secret)
    captions = json.loads((out / "captions.json").read_text())
    captions["figures"] += ["../secret", "/etc/passwd"]
    (out / "captions.json").write_text(json.dumps(captions))
    exited(invoke("report", out), 0)
    report = (out / "report.html").read_text()
    assert base64.b64encode(secret.read_bytes()).decode() not in report
    assert report.count("data:image/png;base64,") == 1  # zeta_headline only


def test_report_shows_status_figures_in_order_numbers_config_and_provenance(
    fake_experiment, tmp_path
):
    out = tmp_path / "run"
    exited(run_fake(out, "lr=0.05"), 0)
    report = (out / "report.html").read_text()
    assert report.index("status: ok") < report.index("<figure>")  # status first
    assert report.index("zeta_headline") < report.index("alpha_second")  # headline first
    assert "<td>3.142</td>" in report and "3.14159" not in report  # 4 significant digits
    assert "<tr class='set'><th>lr</th><td>0.05</td></tr>" in report  # the value set, marked
    for key in ("<th>pieces</th>", "<th>jax</th>", "<th>backend</th>", "<th>dtype</th>"):
        assert key in report, key
    # rebuilt from the folder's files alone: the same report
    exited(invoke("report", out), 0)
    assert (out / "report.html").read_text() == report
