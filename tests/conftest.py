"""Shared test setup: importing gradflow switches float64 on once for the whole session; the
`once_per_session` and `quick_experiment` fixtures run expensive work (an experiment's quick
variant) once per test session, even across xdist workers."""

import contextlib
import json
import os
import sys
import traceback
from pathlib import Path

# The tests mirror the package's layout in sub-folders; all of them import the shared problems
# (`tests/problems.py`) by name.
sys.path.insert(0, str(Path(__file__).parent))

os.environ.setdefault("MPLBACKEND", "Agg")

# One persistent compilation cache for the whole session: the xdist workers and the `gradflow`
# subprocesses that the CLI, run-folder and fault-injection tests start compile the same solves
# again and again, and on a clean clone (CI) they share what the first one compiled. The first
# process (the xdist controller, or a plain pytest) makes the folder and the others inherit it.
if "GRADFLOW_TEST_COMPILE_CACHE" not in os.environ:
    import tempfile

    os.environ["GRADFLOW_TEST_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="gradflow-test-jax-")
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["GRADFLOW_TEST_COMPILE_CACHE"]
os.environ["GRADFLOW_CACHE_DIR"] = os.environ["GRADFLOW_TEST_COMPILE_CACHE"]
# As under the `gradflow` command: equinox's runtime checks without host callbacks, so that the
# compiled solves go into that cache (gradflow._cache). Set before equinox is first imported.
from gradflow_command import CACHEABLE_ENV  # noqa: E402  (imports nothing of gradflow)

for _key, _value in CACHEABLE_ENV.items():
    os.environ.setdefault(_key, _value)

import jax  # noqa: E402
import pytest  # noqa: E402

from gradflow._cache import enable_compilation_cache  # noqa: E402

enable_compilation_cache(os.environ["GRADFLOW_CACHE_DIR"])  # what `gradflow run` does, per backend

import gradflow  # noqa: E402,F401
import gradflow as gf  # noqa: E402
from gradflow.experiments import run_experiment  # noqa: E402


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


@contextlib.contextmanager
def _session_lock(path: Path):
    """An exclusive lock on `path` between the processes of this session (xdist workers)."""
    try:
        import fcntl
    except ImportError:  # no fcntl (Windows): each worker may do the work itself
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def once_per_session(tmp_path_factory):
    """once_per_session(key, make) -> (folder, value): `make(folder)` returns a JSON-able value,
    computed once per test session even under xdist (where module fixtures run once per worker)
    and stored beside `folder`."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, shared by its workers

    def get(key: str, make):
        folder, done = root / key, root / f"{key}.json"
        with _session_lock(root / f"{key}.lock"):
            if not done.is_file():
                done.write_text(json.dumps(make(folder)))
        return folder, json.loads(done.read_text())

    return get


@pytest.fixture(scope="session")
def quick_experiment(once_per_session):
    """quick_experiment(key, name, overrides) -> (run folder, summary) of
    `run_experiment(name, overrides)`, run once per session."""

    def get(key: str, name: str, overrides: dict):
        def make(folder):
            try:
                run_experiment(name, overrides, out=folder)
            except Exception:  # recorded: the tests needing it fail without re-running it
                return {"uncaught": traceback.format_exc()}
            return json.loads((folder / "summary.json").read_text())

        folder, summary = once_per_session(key, make)
        if "uncaught" in summary:
            pytest.fail(f"{name} {overrides} failed:\n{summary['uncaught']}")
        return folder, summary

    return get


_BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


class CompileCounter:
    """Counts (a) traces of the solvers' compiled bodies, through a side effect in a function
    they call only while tracing, and (b) XLA backend compilations, through jax.monitoring."""

    def __init__(self, monkeypatch):
        self.traces = 0
        self.compiles = 0
        original = gf.GradientFlowProblem.value_and_grad

        def counting(*args, **kwargs):
            self.traces += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(gf.GradientFlowProblem, "value_and_grad", counting)

    def _listener(self, event, duration, **kwargs):
        if event == _BACKEND_COMPILE:
            self.compiles += 1

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self._listener)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self._listener)


@pytest.fixture
def compile_counter(monkeypatch):
    """A `CompileCounter` (use as a context manager): traces of `GradientFlowProblem`'s gradient
    and XLA compilations while it is active."""
    return CompileCounter(monkeypatch)


@pytest.fixture
def fake_experiment():
    """Registers the test-only experiment `test-fake` (tests/fake_experiment.py) for one test;
    yields its module (CALLS records what it computed)."""
    import fake_experiment as fake

    from gradflow.experiments import REGISTRY, register

    fake.CALLS.clear()
    register(fake.NAME, "a fake experiment for the run-folder tests", fake.FakeConfig)(fake.run)
    try:
        yield fake
    finally:
        REGISTRY.pop(fake.NAME, None)
