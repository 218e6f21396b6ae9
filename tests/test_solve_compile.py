"""How a solve is compiled on a CPU (`gradflow._solve.solve`): small problems single-threaded
(XLA writes their small matrix products into the program), larger ones with Eigen's thread pool;
an ensemble by the members stepped together (one at a time: as their single solves); the choice
kept when the traced program is loaded from the store."""

from types import SimpleNamespace

import jax
import numpy as np
import pytest
from jax._src import compiler as jax_compiler
from problems import deep_linear, leaves

import gradflow as gf
from gradflow import _programs
from gradflow import _solve as solve_module
from gradflow._problem import GradientFlowProblem
from gradflow._solve import CPU_SMALL_ELEMENTS, largest_step_array

EIGEN_THREADS = "xla_cpu_multi_thread_eigen"
TS = np.linspace(0.0, 1.0, 5)
cpu_only = pytest.mark.skipif(jax.default_backend() != "cpu", reason="a choice made on CPUs")


@pytest.fixture
def compiled_as(monkeypatch):
    """Which of the two compiled solves each `solve` call went to: 'small' or 'threaded'."""
    calls = []
    for name, label in (("_solve_small", "small"), ("_solve", "threaded")):
        real = getattr(solve_module, name)

        def spy(*args, _real=real, _label=label):
            calls.append(_label)
            return _real(*args)

        monkeypatch.setattr(solve_module, name, spy)
    return calls


def _members(widths, n=3):
    keys = jax.random.split(jax.random.PRNGKey(3), n)
    return [gf.models.DeepLinear(list(widths), k, init_scale=0.5) for k in keys]


@cpu_only
def test_small_problems_are_compiled_single_threaded_and_larger_ones_threaded(
    compiled_as, tmp_path
):
    model, data = deep_linear(widths=(3, 4, 2), n=10)
    small = gf.flow(model, data, 1.0, saveat=TS)
    # 40 x 40 layers: 1,600 elements in one array, more than CPU_SMALL_ELEMENTS
    model, data = deep_linear(widths=(40, 40, 2), n=40, s=(2.0, 0.5))
    large = gf.flow(model, data, 0.1, saveat=TS / 10)
    assert compiled_as == ["small", "threaded"]
    # the record says which options were used (none beyond the defaults: no key), also on disk
    assert small.info["compiler_options"] == {EIGEN_THREADS: False}
    assert "compiler_options" not in large.info
    small.save(tmp_path / "small.nc")
    assert gf.Trajectory.load(tmp_path / "small.nc").info["compiler_options"] == {
        EIGEN_THREADS: False
    }


@cpu_only
@pytest.mark.parametrize(
    "strategy, expected",
    [
        (1, "small"),
        (50, "small"),
        (100, "threaded"),
        ("vmap", "threaded"),
        ("lockstep", "threaded"),
    ],
)
def test_an_ensemble_counts_the_members_stepped_together(compiled_as, strategy, expected):
    """300 members of 12 parameters per layer: one at a time (as their single solves) or 50 at a
    time (600 elements) small; 100 at a time (1,200) or all together batched and threaded."""
    _, data = deep_linear(widths=(3, 4, 2), n=10)
    gf.flow(gf.Ensemble.stack(_members((3, 4, 2), n=300)), data, 0.2, ensemble=strategy)
    assert compiled_as == [expected]


def test_arrays_are_counted_per_member_and_shared_data_whole():
    model, data = deep_linear(widths=(3, 4, 2), n=10)
    problem, params = GradientFlowProblem.from_model(model, data)
    single = largest_step_array(problem, params, None, False)
    assert single == max(x.size for x in leaves((params, problem)))
    members = _members((3, 4, 2), n=300)
    one_at_a_time = SimpleNamespace(ensemble="map", group=1)
    problem, params = GradientFlowProblem.from_model(gf.Ensemble.stack(members), data)
    # shared data: counted whole
    assert largest_step_array(problem, params, one_at_a_time, True) == single
    datasets = [deep_linear(data_key=k, widths=(3, 4, 2), n=10)[1] for k in range(300)]
    problem, params = GradientFlowProblem.from_model(gf.Ensemble.stack(members), datasets)
    assert problem.per_member
    # each member's own data: per member, times the members stepped together
    assert largest_step_array(problem, params, one_at_a_time, True) == single
    for together in (SimpleNamespace(ensemble="map", group=7), SimpleNamespace(ensemble="vmap")):
        expected = 7 * single if together.ensemble == "map" else 300 * single
        assert largest_step_array(problem, params, together, True) == expected
    assert single <= CPU_SMALL_ELEMENTS


@cpu_only
def test_the_option_reaches_xla_with_the_store_off_and_on(tmp_path, monkeypatch):
    """XLA compiles the small solve single-threaded: an ordinary call (store off), and with the
    store on both when the program is traced and stored and when another process loads it (the
    stored program is the traced one, the same for any compiler option)."""
    # shapes no other test uses: each call below compiles (clearing JAX's caches instead would
    # make every later test in this process trace its programs again)
    model, data = deep_linear(widths=(3, 7, 2), n=13)
    real = jax_compiler.compile_or_get_cached
    compiled = []

    def recording(backend, computation, devices, options, *args, **kwargs):
        name = str(computation.operation.attributes["sym_name"]).strip('"')
        if "solve_program" in name:
            compiled.append(dict(options.env_option_overrides).get(EIGEN_THREADS))
        return real(backend, computation, devices, options, *args, **kwargs)

    monkeypatch.setattr(jax_compiler, "compile_or_get_cached", recording)
    previous = _programs.directory()
    results = []
    try:
        for store in (None, tmp_path, tmp_path):  # off; traced and stored; loaded
            _programs.enable(store)
            results.append(gf.flow(model, data, 1.0, saveat=TS))
            assert len(compiled) == 1 and compiled.pop() in (False, "false")
        assert len(list(tmp_path.glob("*.jaxexport"))) == 1
    finally:
        _programs.enable(previous)
    for other in results[1:]:
        for a, b in zip(leaves(other.params), leaves(results[0].params), strict=True):
            np.testing.assert_array_equal(a, b)
