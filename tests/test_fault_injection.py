"""Fault injection (issue 8, item 4), the short version of `make test-faults`: three real
`gradflow run resnet-relu --set preset=tiny` subprocesses killed by SIGKILL, SIGTERM and SIGINT
at random times while they work; each folder is complete or resumable, and `--resume` completes it to exactly
the numbers of an uninterrupted run (scripts/fault_injection.py). About 45 s: the tiny run is
~9 s, mostly compilation, run 1 + 3 + (up to) 3 times. Also: a second signal ends a run at once,
even in the middle of a long XLA computation (the signal watcher, ~3 s)."""

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fault_injection.py"


def load_script():
    spec = importlib.util.spec_from_file_location("fault_injection", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fault_injection"] = module
    spec.loader.exec_module(module)
    return module


def test_three_killed_runs_are_complete_or_resume_to_the_same_numbers(tmp_path):
    faults = load_script()
    lines = []
    results = faults.inject(
        ["resnet-relu"], trials=3, seed=8, workdir=tmp_path, log=lines.append, during=True
    )
    assert [r.signal for r in results] == ["SIGKILL", "SIGTERM", "SIGINT"]
    failed = [r for r in results if not r.ok]
    assert not failed, "\n".join(lines)
    # signalled while working: the SIGKILLed run at least was resumed (not run again afresh)
    assert "resumed" in results[0].outcome, "\n".join(lines)


def test_the_script_reports_counts_per_outcome(tmp_path, monkeypatch, capsys):
    faults = load_script()
    fake = [
        faults.Trial("x", "SIGKILL", 1.0, "never started; run again", True),
        faults.Trial("x", "SIGTERM", 2.0, "interrupted; resumed", True),
        faults.Trial("x", "SIGINT", 3.0, "interrupted; resumed", False, "numbers differ"),
    ]
    monkeypatch.setattr(faults, "inject", lambda *a, **k: fake)
    assert faults.main(["--trials", "3", "--experiments", "x"]) == 1
    out = capsys.readouterr().out
    assert "1  interrupted; resumed" in out and "1  never started; run again" in out
    assert "FAILED interrupted; resumed: numbers differ" in out and "2/3 trials passed" in out


WATCHED = textwrap.dedent(
    """
    import jax, jax.numpy as jnp
    from gradflow.runs import SignalGuard

    @jax.jit
    def long(x):  # one XLA call of many seconds: Python handlers cannot run meanwhile
        return jax.lax.fori_loop(0, 10**10, lambda i, x: x * 1.0000001 + 1e-9, x)

    with SignalGuard(notify=lambda m: print(m, flush=True)):
        print("started", flush=True)
        long(jnp.ones(4)).block_until_ready()
    """
)


def test_a_second_signal_ends_a_run_at_once_even_inside_xla(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", WATCHED],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout.readline().strip() == "started"
        time.sleep(1.0)  # inside the compiled loop by now
        proc.send_signal(signal.SIGTERM)
        assert "SIGTERM: stopping at the next safe point" in proc.stdout.readline()
        sent = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143
    assert time.perf_counter() - sent < 3.0
    assert stderr.splitlines()[-1].startswith("error: SIGTERM: interrupted twice")
    assert "Traceback" not in stderr


SIGNALLED = textwrap.dedent(
    """
    import os, sys
    import gradflow.cli as cli
    from gradflow.runs import _runner

    plan = _runner.plan

    def signalled_plan(*args, **kwargs):  # the signal arrives while the run is being prepared
        os.kill(os.getpid(), SIG)
        return plan(*args, **kwargs)

    _runner.plan = signalled_plan
    sys.argv = ["gradflow", *sys.argv[1:]]
    cli.main()
    """
)


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_before_a_run_starts_stops_it_with_one_line_and_nothing_written(tmp_path, sig):
    number = int(getattr(signal, sig))
    program = SIGNALLED.replace("SIG)", f"{number})")
    args = ["run", "resnet-relu", "--set", "preset=tiny", "--out", "out"]
    proc = subprocess.run(
        [sys.executable, "-c", program, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 128 + number, proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: interrupted by {sig} before the run started: nothing written"
    ]
    assert list(tmp_path.iterdir()) == []
