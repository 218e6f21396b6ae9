"""The persistent compilation cache holds gradflow's compiled solves: a second process loads a
`gf.flow` solve and a continued `gf.flow_in_pieces` solve from disk instead of compiling them, and
their traced programs from the program store (`gradflow._programs`) instead of tracing them.

JAX never caches a program with host callbacks, and equinox's runtime checks (diffrax's checks of
`SaveAt(ts=...)` and of a carried step) are host callbacks unless `EQX_ON_ERROR=nan`: the
`gradflow` command and a sweep's workers set it (`gradflow._cache.CACHEABLE_ENV`). The processes
here read JAX's own cache log (hits, misses, and the entries it refuses to write)."""

import json
import os
import subprocess
import sys

import gradflow_command
from gradflow import _cache

SCRIPT = r"""
import json, logging, sys
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.getMessage())
log = logging.getLogger("jax._src.compiler")
log.setLevel(logging.DEBUG)
log.addHandler(Keep())
sys.path.insert(0, sys.argv[2])
import diffrax
import numpy as np
traced = []
solve_loop = diffrax.diffeqsolve
def counting(*args, **kwargs):  # called only while a solve is traced
    traced.append(1)
    return solve_loop(*args, **kwargs)
diffrax.diffeqsolve = counting
import gradflow as gf
from gradflow._cache import enable_compilation_cache
from problems import deep_linear
enable_compilation_cache(sys.argv[1])
model, data = deep_linear()
gf.flow(model, data, 2.0, saveat=np.linspace(0.0, 2.0, 5))
gf.flow_in_pieces(model, data, np.linspace(0.0, 2.0, 5), piece=2)  # a first and a continued piece
solve = [m for m in records if "'jit_solve_program'" in m]
print(json.dumps({
    "hits": sum("cache hit" in m.lower() for m in solve),
    "misses": sum("cache miss" in m.lower() for m in solve),
    "not_written": sum("Not writing" in m for m in solve),
    "traced": len(traced),
}))
"""


def _solve_log(cache, eqx_on_error) -> dict:
    env = {**os.environ, "EQX_ON_ERROR": eqx_on_error}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(cache), os.path.dirname(__file__)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_command_sets_the_environment_the_cache_needs():
    assert gradflow_command.CACHEABLE_ENV == _cache.CACHEABLE_ENV
    assert _cache.CACHEABLE_ENV == {"EQX_ON_ERROR": "nan"}


def test_the_command_freezes_what_its_import_made():
    """The console script collects nothing while importing gradflow and then freezes those
    objects, so that the run's full collections do not scan them again (`gradflow_command`)."""
    probe = (
        "import gc, gradflow_command, gradflow.cli\n"
        "gradflow.cli.main = lambda: print(gc.isenabled(), gc.get_freeze_count(),"
        " sum(gc.get_count()), len(gc.get_objects()))\n"
        "gradflow_command.main()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    enabled, frozen, pending, tracked = out[0], *map(int, out[1:])
    assert enabled == "True"
    # gradflow and JAX leave > 100k container objects; all of them frozen, none left to scan.
    assert frozen > 100_000
    assert tracked < 1_000 and pending < 1_000


def test_solves_are_written_to_and_loaded_from_the_cache(tmp_path):
    first = _solve_log(tmp_path, "nan")
    # three solve programs: the flow, the first piece, a continued piece (it carries a step)
    assert first == {"hits": 0, "misses": 3, "not_written": 0, "traced": 3}, first
    second = _solve_log(tmp_path, "nan")
    assert second == {"hits": 3, "misses": 0, "not_written": 0, "traced": 0}, second
    assert len(list((tmp_path / "programs").glob("*.jaxexport"))) == 3


def test_solves_with_runtime_checks_are_neither_stored_nor_loaded(tmp_path):
    # equinox's default error mode puts host callbacks in every solve: nothing can be kept, and
    # each process traces (and compiles) its solves again.
    for _ in range(2):
        log = _solve_log(tmp_path, "raise")
        assert log["traced"] == 3 and log["hits"] == 0, log
    assert not list((tmp_path / "programs").glob("*"))


def test_child_environment_is_set_only_while_open(monkeypatch):
    monkeypatch.delenv("EQX_ON_ERROR", raising=False)
    with _cache.child_environment() as added:
        assert added == {"EQX_ON_ERROR": "nan"}
        assert os.environ["EQX_ON_ERROR"] == "nan"
    assert "EQX_ON_ERROR" not in os.environ
    monkeypatch.setenv("EQX_ON_ERROR", "raise")  # the user's own choice is kept
    with _cache.child_environment() as added:
        assert added == {} and os.environ["EQX_ON_ERROR"] == "raise"
