"""Trajectory files: exact round trips for every model class, readable without gradflow, never
unpickled; damaged, newer, crafted and legacy files give one-line errors (and never run code)."""

import base64
import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import equinox as eqx
import h5py
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest
import xarray as xr

import gradflow as gf
from gradflow import _netcdf, _serialise
from gradflow._errors import FileFormatError
from gradflow._trajectory_io import convert_legacy_trajectory

LEGACY = Path(__file__).parent / "data" / "legacy"
M = gf.models
key = jax.random.PRNGKey


def _gauss():
    return gf.data.gaussian(key(1), 3, 2, 2)


def _lin():
    return gf.data.linear_teacher(key(0), 2, 2, 4, [1.0, 0.5])


# One small trajectory per registered class (and the variants with fixed arrays): descents of
# two steps, so that each file holds three saved states.
CASES = {
    "DeepLinear": lambda: (M.DeepLinear([2, 3, 2], key(2), 0.5), _lin(), "euclidean"),
    "AdjacencyDeepLinear": lambda: (
        M.AdjacencyDeepLinear.from_layers(M.DeepLinear([2, 2, 2], key(3), 0.5)),
        _lin(),
        "euclidean",
    ),
    "ResNet": lambda: (M.ResNet(2, 3, 2, 2, 2, key(4), init="iid"), _gauss(), "euclidean"),
    "ResNet-frozen-embedded": lambda: (
        M.ResNet(2, 3, 2, 2, 2, key(4), init="iid", frozen=("V",), train_embedding=True),
        _gauss(),
        "conditional_wasserstein",
    ),
    "NeuralODE": lambda: (
        M.ResNet(2, 2, 2, 2, 2, key(5), init="iid").ode_limit(rtol=1e-6, atol=1e-6),
        _gauss(),
        "euclidean",
    ),
    "MeanFieldResNet": lambda: (
        M.MeanFieldResNet(2, 3, 2, 2, 2, key(6), bias=False, input_scale=0.5),
        _gauss(),
        "conditional_wasserstein",
    ),
    "TwoLayerMeanField": lambda: (M.TwoLayerMeanField(2, 3, 2, key(7)), _gauss(), "wasserstein"),
    # a module of registered classes (an equinox MLP or a function needs like=: test_wrapped.py)
    "Wrapped": lambda: (
        M.Wrapped(M.ResNet(2, 3, 2, 2, 2, key(4), init="iid"), masses=0.5),
        _gauss(),
        "wasserstein",
    ),
}


def _descend(case):
    model, data, geometry = CASES[case]()
    return gf.descent(model, data, 2, 0.1, geometry=geometry, save_every=1)


def _assert_identical(a: gf.Trajectory, b: gf.Trajectory):
    """Same trees, same leaves bit for bit and dtype for dtype, same statistics."""
    for x, y in ((a.ts, b.ts), (a.loss, b.loss), (a.grad_norm, b.grad_norm)):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(x, y, strict=True)
    for ta, tb in ((a.params, b.params), (a.static, b.static), (a.masses, b.masses)):
        assert jtu.tree_structure(ta) == jtu.tree_structure(tb)
        for x, y in zip(jtu.tree_leaves(ta), jtu.tree_leaves(tb), strict=True):
            if eqx.is_array(x):
                assert np.asarray(x).dtype == np.asarray(y).dtype
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y), strict=True)
            else:
                assert x == y
    assert a.stats == b.stats and a.info == b.info
    assert type(a.final) is type(b.final)


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and len(message) < 600, message
    return message


def test_every_model_class_is_registered():
    concrete = {
        name
        for name, cls in vars(M).items()
        if isinstance(cls, type)
        and issubclass(cls, M.AbstractModel)
        and not getattr(cls, "__abstractmethods__", None)
    }
    registered = set(_serialise.registered_classes())
    assert concrete == {"DeepLinear", "AdjacencyDeepLinear", "ResNet", "NeuralODE"} | {
        "MeanFieldResNet",
        "TwoLayerMeanField",
        "Wrapped",
    }
    assert concrete <= registered
    assert all(_serialise.registered_class(n) is getattr(M, n) for n in concrete)
    # every concrete registered class has a round-trip case below (abstract bases such as
    # AbstractLinearModel are registered too but are never instantiated)
    assert concrete <= {c.split("-")[0] for c in CASES}


@pytest.mark.parametrize("case", list(CASES))
def test_round_trip_is_exact(case, tmp_path):
    traj = _descend(case)
    back = gf.Trajectory.load(traj.save(tmp_path / "t.nc"))
    _assert_identical(traj, back)
    x = jnp.linspace(-1.0, 1.0, 6).reshape(3, 2)
    np.testing.assert_array_equal(back.final(x), traj.final(x), strict=True)


def test_round_trip_ensemble_and_flow(tmp_path):
    ens = gf.ensemble(lambda k: M.ResNet(2, 3, 2, 2, 2, k, init="iid"), jax.random.split(key(8), 3))
    traj = gf.descent(ens, _gauss(), 2, 0.1, save_every=1)
    back = gf.Trajectory.load(traj.save(tmp_path / "e.nc"))
    _assert_identical(traj, back)
    assert back.ensemble_size == 3 and back.params.V.shape[:2] == (3, 3)
    with xr.open_dataset(tmp_path / "e.nc", engine="h5netcdf") as ds:
        assert ds["V"].dims == ("member", "time", "V_0", "V_1", "V_2")
        assert ds["loss"].dims == ("member", "time")
    flowed = gf.flow(M.DeepLinear([2, 2, 2], key(9), 0.5), _lin(), 0.5, saveat=[0.0, 0.25, 0.5])
    _assert_identical(flowed, gf.Trajectory.load(flowed.save(tmp_path / "f.nc")))


def test_round_trip_ensemble_with_fixed_arrays(tmp_path):
    # An ensemble's fixed arrays carry the member axis (gf.ensemble vmaps the whole model); built
    # by hand here from a single trajectory, as gf.descent cannot yet run such an ensemble.
    single = _descend("MeanFieldResNet")
    two = lambda a: jnp.stack([a, 2 * a])
    traj = gf.Trajectory(
        single.ts,
        jtu.tree_map(two, single.params),
        jtu.tree_map(two, single.static),
        two(single.loss),
        two(single.grad_norm),
        single.masses,
        single.stats,
        single.info,
    )
    back = gf.Trajectory.load(traj.save(tmp_path / "e.nc"))
    _assert_identical(traj, back)
    assert back.static.b.shape == (2, 2, 2) and back.params.u.shape == (2, 3, 2, 2, 3)
    like = M.MeanFieldResNet(2, 3, 2, 2, 2, key(0), bias=False, input_scale=0.5)
    _assert_identical(traj, gf.Trajectory.load(tmp_path / "e.nc", like=like))


def test_file_reads_with_plain_xarray(tmp_path):
    resnet = _descend("ResNet")
    resnet.save(tmp_path / "r.nc")
    with xr.open_dataset(tmp_path / "r.nc", engine="h5netcdf") as ds:
        assert {"V", "W", "mass.V", "mass.W", "loss", "grad_norm"} <= set(ds.variables)
        assert ds["V"].dims == ("time", "V_0", "V_1", "V_2") and ds["V"].dtype == np.float64
        np.testing.assert_array_equal(ds["V"].values, resnet.params.V)
        np.testing.assert_array_equal(ds["time"].values, resnet.ts)
        assert ds.attrs["gradflow_format"] == "gradflow.trajectory"
        assert ds.attrs["format_version"] == 2
        model = json.loads(ds.attrs["model"])
        assert model["class"] == "ResNet" and model["fields"]["V"] == {"array": "V"}
        assert model["fields"]["frozen"] == {"tuple": []}
        assert json.loads(ds.attrs["info"])["kind"] == "descent"
        # the checksums as the module docstring of _netcdf says to compute them
        sums = json.loads(ds.attrs["sha256"])
        v = ds["V"].values
        v = np.ascontiguousarray(v, v.dtype.newbyteorder("<"))
        assert sums["V"] == hashlib.sha256(v.tobytes()).hexdigest()
    _descend("DeepLinear").save(tmp_path / "d.nc")
    with xr.open_dataset(tmp_path / "d.nc", engine="h5netcdf") as ds:
        assert {"weights.0", "weights.1", "mass.weights.0"} <= set(ds.variables)
    _descend("MeanFieldResNet").save(tmp_path / "m.nc")
    with xr.open_dataset(tmp_path / "m.nc", engine="h5netcdf") as ds:
        assert {"u", "w", "static.b"} <= set(ds.variables) and "b" not in ds.variables


def test_arrays_keep_their_dtype(tmp_path):
    arrays = {
        "time": np.arange(3.0),
        "f32": np.float32([1.5, np.nan, -np.inf]),
        "f64": np.array([[1 / 3, np.nan]]),
        "i": np.arange(4, dtype=np.int32),
        "b": np.array([True, False]),
        "scalar": np.float64(2.0),
    }
    attrs = {"s": "text", "n": 3, "x": 0.5, "d": {"k": [1, None, True]}, "t": True}
    path = _netcdf.write_arrays(
        tmp_path / "a.nc", arrays, attrs, {"time": ("time",)}, format_name="test", format_version=1
    )
    back, back_attrs = _netcdf.read_arrays(path, "test", max_version=1)
    assert set(back) == set(arrays)
    for name, a in arrays.items():
        assert back[name].dtype == np.asarray(a).dtype, name
        np.testing.assert_array_equal(back[name], a, strict=False)
    assert back_attrs == {**attrs, "format_version": 1, "gradflow_version": gf.__version__}
    assert not [p.name for p in tmp_path.iterdir() if p.name != "a.nc"]  # no temporary left


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = _netcdf.write_arrays(
        tmp_path / "a.nc", {"x": np.ones(2)}, {}, format_name="test", format_version=1
    )
    before = path.read_bytes()

    def crash(self, target, **kwargs):
        Path(target).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", crash)
    with pytest.raises(OSError, match="disk full"):
        _netcdf.write_arrays(path, {"x": np.zeros(2)}, {}, format_name="test", format_version=1)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.nc"]


# -------------------------------------------------------------------------------------------
# damaged, newer, foreign files


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A ResNet trajectory in the current format."""
    path = tmp_path_factory.mktemp("saved") / "r.nc"
    _descend("ResNet").save(path)
    return path


def _copy(src: Path, tmp_path: Path, name="x.nc") -> Path:
    dst = tmp_path / name
    shutil.copyfile(src, dst)
    return dst


def _set_attr(path: Path, name: str, value):
    with h5py.File(path, "r+") as f:
        f.attrs[name] = value


def test_flipped_byte_fails_the_checksum(saved, tmp_path):
    path = _copy(saved, tmp_path)
    with h5py.File(path, "r") as f:
        offset = f["W"].id.get_offset()  # contiguous storage: the values' first byte
    data = bytearray(path.read_bytes())
    data[offset + 3] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(FileFormatError) as excinfo:
        gf.Trajectory.load(path)
    assert "'W' fails its SHA-256 checksum" in _one_line(excinfo)


def test_newer_format_version_is_refused(saved, tmp_path):
    path = _copy(saved, tmp_path)
    _set_attr(path, "format_version", 3)
    _set_attr(path, "gradflow_version", "9.0.0")
    with pytest.raises(FileFormatError) as excinfo:
        gf.Trajectory.load(path)
    message = _one_line(excinfo)
    assert "version 3" in message and "newer gradflow (9.0.0)" in message
    assert "upgrade gradflow" in message


def test_unreadable_files(tmp_path):
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"\x89HDF\r\n" + os.urandom(300))
    for path, words in ((junk, "not a readable NetCDF file"), (tmp_path / "none.nc", "no such")):
        with pytest.raises(FileFormatError) as excinfo:
            gf.Trajectory.load(path)
        assert words in _one_line(excinfo)
    other = _netcdf.write_arrays(
        tmp_path / "o.nc", {"x": np.ones(1)}, {}, format_name="other", format_version=1
    )
    with pytest.raises(FileFormatError) as excinfo:
        gf.Trajectory.load(other)
    assert "'other' file" in _one_line(excinfo)


def _edit_model(path: Path, edit):
    with h5py.File(path, "r+") as f:
        model = json.loads(f.attrs["model"])
        edit(model)
        f.attrs["model"] = json.dumps(model)


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda m: m.update({"class": "Evil"}), "'Evil' is not registered"),
        (lambda m: m.update({"class": "posix.system"}), "'posix.system' is not registered"),
        (lambda m: m["fields"].pop("activation"), "fields missing ['activation']"),
        (lambda m: m["fields"].update({"extra": 1}), "extra ['extra']"),
        (lambda m: m["fields"].update({"V": {"array": "W"}}), "array reference 'W' at V"),
        (lambda m: m["fields"].update({"A": {"array": "A"}}), "array 'A' is missing"),
        (lambda m: m["fields"].update({"frozen": {"pickle": "gASV"}}), "unknown entry"),
        (lambda m: m["fields"].update({"io_dims": {"opaque": "function"}}), "like=model"),
    ],
)
def test_crafted_model_structure_is_refused(saved, tmp_path, edit, words):
    path = _copy(saved, tmp_path)
    _edit_model(path, edit)
    with pytest.raises(FileFormatError) as excinfo:
        gf.Trajectory.load(path)
    assert words in _one_line(excinfo)


# -------------------------------------------------------------------------------------------
# pickle payloads


class _Payload:
    """Unpickling this runs `os.system("touch <marker>")`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _payload(marker: Path) -> bytes:
    return pickle.dumps((_Payload(marker), (), ()))


def test_the_payload_is_live(tmp_path):
    """The control: plain pickle.loads of the payload does create the marker."""
    marker = tmp_path / "marker"
    pickle.loads(_payload(marker))
    assert marker.exists()


def _with_variable(src: Path, dst: Path, name: str, value):
    with xr.open_dataset(src, engine="h5netcdf", mask_and_scale=False) as ds:
        ds = ds.load()
    ds[name] = value
    ds.to_netcdf(dst, engine="h5netcdf")


@pytest.mark.parametrize(
    "where", ["gradflow_skeleton", "model", "stats", "info", "bytes variable", "string variable"]
)
def test_payload_in_a_current_file_never_runs(saved, tmp_path, where):
    marker = tmp_path / "marker"
    payload = _payload(marker)
    encoded = base64.b64encode(payload).decode()
    path = _copy(saved, tmp_path)
    if where == "bytes variable":
        _with_variable(saved, path, "payload", (("n",), np.frombuffer(payload, np.uint8)))
    elif where == "string variable":
        _with_variable(saved, path, "payload", ((), encoded))
    else:
        _set_attr(path, where, encoded)
    if where == "gradflow_skeleton":  # an attribute the current format does not read
        gf.Trajectory.load(path)
        assert not marker.exists()
        return
    with pytest.raises(FileFormatError) as excinfo:
        gf.Trajectory.load(path)
    assert not marker.exists()
    assert "payload" in _one_line(excinfo) or where in str(excinfo.value)


@pytest.mark.parametrize("name", ["resnet_frozen.nc", "deep_linear_flow.nc"])
def test_payload_in_a_legacy_file_never_runs(tmp_path, name):
    marker = tmp_path / "marker"
    path = _copy(LEGACY / name, tmp_path)
    payloads = [
        _payload(marker),  # os.system
        pickle.dumps(eval),  # builtins.eval, to be called by a REDUCE
        # a legitimate-looking skeleton hiding a call in a nested tuple
        pickle.dumps(((_Payload(marker),), None, None)),
    ]
    for payload in payloads:
        _set_attr(path, "gradflow_skeleton", base64.b64encode(payload).decode())
        with pytest.raises(FileFormatError) as excinfo:
            gf.Trajectory.load(path)
        assert not marker.exists()
        assert "old pickled format" in _one_line(excinfo)
        with pytest.raises(FileFormatError) as excinfo:
            convert_legacy_trajectory(path, tmp_path / "new.nc")
        assert not marker.exists()
        assert "refusing to load" in _one_line(excinfo)
        assert "only gradflow's model classes" in str(excinfo.value)
    assert not (tmp_path / "new.nc").exists()


# -------------------------------------------------------------------------------------------
# legacy files


@pytest.mark.parametrize("name", ["resnet_frozen.nc", "deep_linear_flow.nc", "ensemble_resnet.nc"])
def test_legacy_file_is_refused_then_converted(tmp_path, name):
    old = LEGACY / name
    with pytest.raises(FileFormatError) as excinfo:
        gf.Trajectory.load(old)
    message = _one_line(excinfo)
    assert "old pickled format" in message and "convert_legacy_trajectory" in message

    new = convert_legacy_trajectory(old, tmp_path / name)
    traj = gf.Trajectory.load(new)
    expected = json.loads((LEGACY / "expected.json").read_text())[name]
    with xr.open_dataset(old, engine="h5netcdf") as ds:
        # the arrays are those the old code saved, in its leaf order, bit for bit
        for prefix, tree in (("param", traj.params), ("mass", traj.masses)):
            for i, leaf in enumerate(jtu.tree_leaves(tree)):
                np.testing.assert_array_equal(leaf, ds[f"{prefix}{i}"].values, strict=True)
        statics = [x for x in jtu.tree_leaves(traj.static) if eqx.is_array(x)]
        assert len(statics) == int(ds.attrs["n_static"])
        for i, leaf in enumerate(statics):
            np.testing.assert_array_equal(leaf, ds[f"static{i}"].values, strict=True)
        np.testing.assert_array_equal(traj.loss, ds["loss"].values, strict=True)
        assert traj.stats == json.loads(ds.attrs["stats"])
        assert traj.info == json.loads(ds.attrs["info"])
    # the model computes what the old code's model computed
    np.testing.assert_array_equal(traj.ts, expected["ts"])
    final = (traj if traj.ensemble_size is None else traj.member(0)).final
    assert type(final).__name__ == expected["class"]
    x = jnp.linspace(-1.0, 1.0, 6).reshape(3, 2)
    np.testing.assert_array_equal(final(x), np.array(expected["output"]))
    _assert_identical(traj, gf.Trajectory.load(traj.save(tmp_path / "again.nc")))


# -------------------------------------------------------------------------------------------
# a model class of the user's own


class Tiny(M.AbstractModel):
    """Not registered; its activation is a function, which JSON cannot describe."""

    w: jax.Array
    scale: jax.Array
    sigma: object = eqx.field(static=True)

    def __init__(self, n, k, sigma=jnp.tanh):
        self.w = jax.random.normal(k, (2, n))
        self.scale = jnp.ones(())
        self.sigma = sigma

    def trainable(self):
        return eqx.tree_at(
            lambda m: (m.w, m.scale), jtu.tree_map(lambda _: False, self), (True, False)
        )

    def __call__(self, x):
        return self.scale * self.sigma(x @ self.w)

    @property
    def in_dim(self):
        return 2

    @property
    def out_dim(self):
        return self.w.shape[1]


def test_like_for_a_class_of_your_own(tmp_path):
    model = Tiny(2, key(3))
    traj = gf.descent(model, _gauss(), 2, 0.1, save_every=1)
    path = traj.save(tmp_path / "tiny.nc")
    with pytest.raises(FileFormatError) as excinfo:
        gf.Trajectory.load(path)
    message = _one_line(excinfo)
    assert "Tiny' is not registered" in message and "like=model" in message
    _assert_identical(traj, gf.Trajectory.load(path, like=Tiny(2, key(0))))
    with pytest.raises(FileFormatError) as excinfo:
        gf.Trajectory.load(path, like=Tiny(3, key(0)))
    assert "array 'w' has shape (3, 2, 2); like=Tiny has (2, 3)" in _one_line(excinfo)
    with pytest.raises(FileFormatError) as excinfo:
        gf.Trajectory.load(path, like=M.TwoLayerMeanField(2, 3, 2, key(7)))
    assert "do not match like=TwoLayerMeanField" in _one_line(excinfo)


def test_register_model_for_a_class_of_your_own(tmp_path):
    @M.register_model
    class Registered(M.AbstractModel):
        w: jax.Array
        shape_note: tuple = eqx.field(static=True)

        def __call__(self, x):
            return x @ self.w

        in_dim = property(lambda self: self.w.shape[0])
        out_dim = property(lambda self: self.w.shape[1])

    try:
        model = Registered(jnp.eye(2), (2, {"a": [1.5, None]}))
        structure, arrays = _serialise.describe(model)
        assert structure["class"].endswith(
            "test_register_model_for_a_class_of_your_own.<locals>.Registered"
        )
        back = _serialise.rebuild(json.loads(json.dumps(structure)), arrays)
        assert type(back) is Registered and back.shape_note == (2, {"a": [1.5, None]})
        np.testing.assert_array_equal(back.w, model.w)
        with pytest.raises(gf.ConfigError) as excinfo:
            _serialise.describe(Tiny(2, key(0)))
        assert "like=model" in _one_line(excinfo)
    finally:
        _serialise._CLASSES.pop(structure["class"], None)
        _serialise._NAMES.pop(Registered, None)


def test_rebuild_runs_the_class_checks():
    model = M.AdjacencyDeepLinear.from_layers(M.DeepLinear([2, 2, 2], key(3), 0.5))
    structure, arrays = _serialise.describe(model)
    assert structure["fields"]["widths"] == {"tuple": [2, 2, 2]}
    back = _serialise.rebuild(structure, arrays)
    assert back.widths == (2, 2, 2) and isinstance(back.widths, tuple)
    structure["fields"]["widths"] = {"tuple": [2, 2, 3]}
    with pytest.raises(FileFormatError) as excinfo:
        _serialise.rebuild(structure, arrays)
    assert "AdjacencyDeepLinear at the top fails its checks" in _one_line(excinfo)
