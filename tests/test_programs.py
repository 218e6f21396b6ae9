"""The program store (`gradflow._programs`): a solve's traced program is kept on disk under a key
that names everything static about the call, and a later call (another process) with the same key
runs it without tracing, with the same bits as an ordinary call. Calls that hold something the key
cannot name (a user's function) are ordinary calls, and nothing is stored for them."""

import functools

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from problems import deep_linear, leaves

import gradflow as gf
from gradflow import _programs
from gradflow._solve import SolveCarry, solve_program

TS = np.linspace(0.0, 2.0, 5)


@pytest.fixture
def store(tmp_path):
    """The store switched to an empty folder for one test (the session's store afterwards)."""
    previous = _programs.directory()
    _programs.enable(tmp_path)
    yield tmp_path
    _programs.enable(previous)


def _programs_in(folder):
    return sorted(p.name for p in folder.glob("*.jaxexport"))


def _new_process(store):
    """What a new process sees: the folder's programs, nothing traced in memory."""
    _programs.enable(store)


def _untraceable(monkeypatch):
    def traced(*args, **kwargs):
        raise AssertionError("the solve was traced")

    monkeypatch.setattr(diffrax, "diffeqsolve", traced)


def _assert_same(a, b):
    for x, y in zip(
        leaves((a.ts, a.params, a.loss, a.grad_norm)),
        leaves((b.ts, b.params, b.loss, b.grad_norm)),
        strict=True,
    ):
        np.testing.assert_array_equal(x, y)
    assert a.stats == b.stats


def _flow(data_key=2, **kwargs):
    model, data = deep_linear(data_key=data_key)
    return gf.flow(model, data, 2.0, saveat=TS, **kwargs)


def test_a_stored_solve_runs_in_a_new_process_without_tracing_with_the_same_bits(
    store, monkeypatch
):
    _programs.enable(None)
    plain, plain_other_data = _flow(), _flow(data_key=5)
    _programs.enable(store)
    first = _flow()
    assert len(_programs_in(store)) == 1
    _new_process(store)
    _untraceable(monkeypatch)
    loaded = _flow()
    # the data are the program's inputs, not constants in it: new data of the same shapes
    # run the same stored program
    loaded_other_data = _flow(data_key=5)
    for result in (first, loaded):
        _assert_same(result, plain)
    _assert_same(loaded_other_data, plain_other_data)
    assert len(_programs_in(store)) == 1


def test_the_key_names_the_static_options_and_not_the_numbers(store):
    _flow()
    _flow(rtol=1e-5, atol=1e-7)  # tolerances are inputs of the program
    assert len(_programs_in(store)) == 1
    _flow(solver="dopri5")  # another solver is another program
    assert len(_programs_in(store)) == 2
    model, data = deep_linear(widths=(3, 5, 2))  # other shapes, another program
    gf.flow(model, data, 2.0, saveat=TS)
    assert len(_programs_in(store)) == 3


def test_a_changed_source_is_another_key(store, monkeypatch):
    _flow()
    monkeypatch.setattr(_programs, "source_digest", lambda: "another gradflow")
    _new_process(store)
    _flow()
    assert len(_programs_in(store)) == 2


def my_loss(pred, y):
    """A user's loss: importable by name, but its code (and what it calls) is not gradflow's,
    so no key could see it change."""
    return 0.5 * jnp.mean(jnp.sum((pred - y) ** 2, axis=-1))


def test_a_users_own_function_is_never_stored(store):
    _programs.enable(None)
    plain = _flow(loss=my_loss)
    _programs.enable(store)
    stored = _flow(loss=my_loss)
    assert list(store.iterdir()) == []
    _assert_same(stored, plain)


def test_broken_or_mismatched_entries_are_traced_and_stored_again(store, monkeypatch):
    _programs.enable(None)
    plain = _flow()
    _programs.enable(store)
    _flow()
    (name,) = _programs_in(store)
    entry = store / name
    entry.write_bytes(b"not a program")
    _new_process(store)
    _assert_same(_flow(), plain)
    assert entry.read_bytes() != b"not a program"
    # a record describing another call under this key (a collision) is not loaded
    record = entry.with_suffix(".json")
    text = record.read_text()
    record.write_text(text.replace(":solve_program", ":another_function"))
    assert record.read_text() != text
    _new_process(store)
    _untraceable(monkeypatch)
    with pytest.raises(AssertionError, match="traced"):
        _flow()


def test_programs_with_host_callbacks_are_refused_once(store, monkeypatch):
    # a progress meter calls back into Python: jax.export cannot serialise it
    _programs.enable(None)
    plain = _flow(progress=True)
    _programs.enable(store)
    _assert_same(_flow(progress=True), plain)
    assert _programs_in(store) == [] and len(list(store.glob("*.refused"))) == 1
    _new_process(store)

    def export(*args, **kwargs):
        raise AssertionError("a refused program was exported again")

    monkeypatch.setattr(jax.export, "export", export)
    _assert_same(_flow(progress=True), plain)


def _local():
    return lambda x: x


class _Local(eqx.Module):
    x: float = 0.0


@pytest.mark.parametrize(
    "part",
    [lambda x: x, _local(), _Local(), functools.partial(_local(), 1), object()],
    ids=["lambda", "closure", "test-module class", "partial of a closure", "object"],
)
def test_parts_that_cannot_be_named_refuse_the_key(part):
    with pytest.raises(_programs.Unnamed):
        _programs.describe(solve_program, (part,))
    with pytest.raises(_programs.Unnamed):
        _programs.describe(_local(), ())


@pytest.mark.parametrize(
    "part",
    [jax.nn.relu, jnp.tanh, functools.partial(jnp.add, 1.0), diffrax.Tsit5(), diffrax.RESULTS],
    ids=["custom_jvp", "jnp function", "partial", "solver", "enumeration"],
)
def test_library_parts_are_named(part):
    described = _programs.describe(solve_program, (part,))
    assert described == _programs.describe(solve_program, (part,))


@pytest.mark.parametrize(
    "tree",
    [
        (1, None, {"a": 2, "b": (3, [4])}),
        diffrax.RESULTS.successful,
        SolveCarry(None, ((1, 2), 3), jnp.asarray(False), jnp.zeros(())),
        deep_linear()[0],
    ],
    ids=["containers", "enumeration item", "carry", "model"],
)
def test_output_structures_read_back_equal(tree):
    treedef = jax.tree_util.tree_structure(tree)
    assert _programs.decode_structure(_programs.encode_structure(treedef)) == treedef


def test_static_numbers_are_named_exactly():
    assert _programs.decode(_programs.encode(0.1)) == 0.1
    assert _programs.encode(0.1) != _programs.encode(float(np.nextafter(0.1, 1.0)))
    assert _programs.encode(True) != _programs.encode(1)
    a, b = np.arange(3.0), np.arange(3.0) + 1e-15
    assert _programs.encode(a) != _programs.encode(b)
