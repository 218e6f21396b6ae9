"""Trajectory files: NetCDF with the model described in JSON, never pickled.

`Trajectory.save(path)` writes, and `Trajectory.load(path)` reads, a NetCDF-4 file (format
`gradflow.trajectory`, version 2) that any NetCDF reader can open, e.g.
`xr.open_dataset(path, engine="h5netcdf")` without gradflow:

- coordinate `time` (time): the saved times;
- `loss`, `grad_norm` (time), or (member, time) for an ensemble: F and |∇F|_G;
- one variable per trainable array of the model, named by its path in the model (fields joined
  by ".", e.g. `V`, `W` for a `ResNet`, `weights.0`, `weights.1` for a `DeepLinear`, `u` for a
  mean-field model), stacked along time: dimensions (time, V_0, V_1, ...) or (member, time, ...);
- `static.<path>`: the model's fixed arrays (e.g. `static.b` of a mean-field model without bias;
  with a leading member axis for an ensemble);
- `mass.<path>`: the metric mass of each trainable array (a number, or an array broadcasting
  against one saved state);
- attributes: `gradflow_format` = "gradflow.trajectory", `format_version` = 2,
  `gradflow_version`; `model`: JSON of the model's structure, each module as
  `{"class": "ResNet", "fields": {...}}` with arrays as `{"array": "V"}` (see `_serialise`);
  `stats` (solver statistics) and `info` (how the trajectory was made), JSON; `sha256`: JSON of
  each variable's checksum; `json_attrs`: which attributes are JSON (see `_netcdf`).

Every array keeps its dtype, so a round trip is bit-exact. Loading rebuilds the model from the
JSON, only for classes registered with gradflow (gradflow's models, and classes passed to
`gradflow.models.register_model`); for another class, `Trajectory.load(path, like=model)` takes
the class and the non-array fields from `model` and the arrays from the file.

Files written before version 2 pickled the model (attribute `gradflow_skeleton`): loading one
could run any code, so `load` refuses them. `convert_legacy_trajectory(old, new)` converts one
with an unpickler that can only build gradflow's model classes.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from . import _netcdf
from ._errors import ConfigError, FileFormatError
from ._serialise import describe, leaves_by_path, path_of, rebuild, registered_classes
from ._trajectory import Trajectory, _jsonable

FORMAT = "gradflow.trajectory"
VERSION = 2
STATIC, MASS = "static.", "mass."
_SERIES = ("time", "loss", "grad_norm")
_LEGACY = {
    "gradflow_skeleton": "the file uses the old pickled format, which gradflow no longer "
    "unpickles (it could run any code); if you trust it, convert it once with "
    "gradflow.convert_legacy_trajectory(old, new)"
}


def save_trajectory(traj: Trajectory, path) -> Path:
    """Write `traj` to the NetCDF file `path` (layout in the module docstring), atomically.

    **Arguments:**

    - `traj`: the trajectory.
    - `path`: the file (replaced if it exists).

    **Returns:** `path` as a `Path`.
    """
    lead = ("time",) if traj.ensemble_size is None else ("member", "time")
    # Opaque parts (an unregistered class, a function) are recorded, not refused: the arrays are
    # still saved, and `load(path, like=model)` reads them back.
    structure, _ = describe(eqx.combine(traj.params, traj.static), opaque=True)
    params = _array_leaves(traj.params, "params")
    static = _array_leaves(traj.static, "static")
    masses = _array_leaves(traj.masses, "masses")
    if jtu.tree_structure(traj.masses) != jtu.tree_structure(traj.params):
        raise ConfigError("masses", "a tree unlike params", "one mass per trainable array")
    arrays = {"time": traj.ts, "loss": traj.loss, "grad_norm": traj.grad_norm}
    dims = {"time": ("time",), "loss": lead, "grad_norm": lead}
    named = [(p, p, a) for p, a in params.items()]
    named += [(STATIC + p, p, a) for p, a in static.items()]
    named += [(MASS + p, p, a) for p, a in masses.items()]
    for name, p, a in named:
        if name in arrays:  # e.g. a model field called `loss`
            raise ConfigError(
                "model", f"array {name!r}", "array names other than time, loss, grad_norm"
            )
        arrays[name] = a
        if name == p:
            dims[name] = lead + tuple(f"{p}_{i}" for i in range(a.ndim - len(lead)))
    attrs = {"model": structure, "stats": _jsonable(traj.stats), "info": _jsonable(traj.info)}
    return _netcdf.write_arrays(
        path, arrays, attrs, dims, format_name=FORMAT, format_version=VERSION
    )


def _array_leaves(tree, what: str) -> dict[str, np.ndarray]:
    out = {}
    for p, leaf in leaves_by_path(tree).items():
        if eqx.is_array(leaf):
            out[p] = np.asarray(leaf)
        elif what != "static":  # the static part may hold numbers; the others only arrays
            raise ConfigError(what, f"{p} = {type(leaf).__name__}", "arrays")
    return out


def load_trajectory(path, like=None) -> Trajectory:
    """Read a trajectory written by `save_trajectory`.

    **Arguments:**

    - `path`: the file.
    - `like`: a model of the class the file holds (e.g. the initial model, or an `Ensemble`
      of them), for classes not registered with gradflow: the class and the non-array fields
      come from it, the arrays from the file (matched by path, shapes checked).

    **Returns:** the `Trajectory`, every array as it was saved.

    **Raises:** `FileFormatError` (one line) for a file gradflow cannot read: not this format, a
    newer version, damaged (checksum), a pickled legacy file, a model class that is not
    registered (without `like`), arrays that do not match `like`.
    """
    arrays, attrs = _netcdf.read_arrays(path, FORMAT, max_version=VERSION, legacy=_LEGACY)
    bad = lambda problem: FileFormatError(path, problem, f"a {FORMAT} file written by gradflow")
    missing = [n for n in _SERIES if n not in arrays] + ([] if "model" in attrs else ["model"])
    if missing:
        raise bad(f"{missing[0]!r} is missing")
    for name in ("stats", "info"):
        if type(attrs.get(name)) is not dict:
            raise bad(f"attribute {name!r} is not a JSON object")
    ts, loss, grad_norm = (arrays.pop(name) for name in _SERIES)
    if ts.ndim != 1 or loss.ndim not in (1, 2) or loss.shape != grad_norm.shape:
        raise bad(f"time {ts.shape}, loss {loss.shape}, grad_norm {grad_norm.shape}")
    if loss.shape[-1] != ts.shape[0]:
        raise bad(f"loss {loss.shape} does not follow time {ts.shape}")
    static = {n[len(STATIC) :]: a for n, a in arrays.items() if n.startswith(STATIC)}
    masses = {n[len(MASS) :]: a for n, a in arrays.items() if n.startswith(MASS)}
    params = {n: a for n, a in arrays.items() if not n.startswith((STATIC, MASS))}
    if set(masses) != set(params):
        raise bad(f"masses {sorted(masses)} do not match the trainable arrays {sorted(params)}")
    for p, a in params.items():
        if a.shape[: loss.ndim] != loss.shape:
            raise bad(f"{p!r} of shape {a.shape} does not follow loss {loss.shape}")
    if like is None:
        model = _from_structure(path, attrs["model"], params, static, loss.shape)
    else:
        model = _from_like(path, like, params, static, loss.ndim)
    spec = jtu.tree_map_with_path(lambda kp, _: path_of(kp) in params, model)
    params_tree, static_tree = eqx.partition(model, spec)
    masses_tree = jtu.tree_map_with_path(
        lambda kp, _: jnp.asarray(masses[path_of(kp)]), params_tree
    )
    return Trajectory(
        jnp.asarray(ts),
        params_tree,
        static_tree,
        jnp.asarray(loss),
        jnp.asarray(grad_norm),
        masses_tree,
        attrs["stats"],
        attrs["info"],
    )


def _from_structure(path, structure, params, static, lead: tuple[int, ...]):
    both = {p: jnp.asarray(a) for p, a in {**params, **static}.items()}
    # The classes' checks are written for one model, not one stacked along time: check the
    # first saved model, then build the stacked one without checks.
    if np.prod(lead) > 0:
        first = {p: both[p][(0,) * len(lead)] for p in params}
        rebuild(structure, {**both, **first}, source=path, check=True)
    return rebuild(structure, both, source=path, check=False)


def _from_like(path, like, params, static, n_lead: int):
    from ._ensemble import Ensemble

    if isinstance(like, Ensemble):
        like = like.member(0)
    if not isinstance(like, eqx.Module):
        raise ConfigError("like", type(like).__name__, "a model of the class the file holds")
    wanted = {p: leaf for p, leaf in leaves_by_path(like).items() if eqx.is_array(leaf)}
    found = {**params, **static}
    if set(wanted) != set(found):
        problem = (
            f"arrays {sorted(found)} do not match like={type(like).__name__}'s {sorted(wanted)}"
        )
        raise FileFormatError(path, problem, "a model with the file's arrays")
    for p, a in found.items():
        shape = np.shape(wanted[p])
        # Trainable arrays are stacked along (member,) time; an ensemble's fixed arrays carry
        # the member axis.
        ok = a.shape[n_lead:] == shape if p in params else shape in (a.shape, a.shape[1:])
        if not ok:
            problem = f"array {p!r} has shape {a.shape}; like={type(like).__name__} has {shape}"
            raise FileFormatError(path, problem, "arrays of the shapes of `like`'s")
    return jtu.tree_map_with_path(
        lambda kp, leaf: jnp.asarray(found[path_of(kp)]) if eqx.is_array(leaf) else leaf, like
    )


# -------------------------------------------------------------------------------------------
# legacy files (format 1: a pickled skeleton)


class _LegacySlot:
    """Stands for `gradflow.trajectory._Slot`, the array placeholder of format-1 skeletons."""


_SLOTS = {("gradflow.trajectory", "_Slot"), ("gradflow._trajectory", "_Slot")}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can only name gradflow's registered model classes and the slot.

    Format-1 skeletons (pickle protocol 4) use no other global: modules are built by NEWOBJ and
    BUILD (which sets `__dict__`), tuples, strings and numbers are opcodes of their own. Every
    other global (`os.system`, `builtins.eval`, ...) is refused before it is even imported.
    """

    def find_class(self, module, name):
        if (module, name) in _SLOTS:
            return _LegacySlot
        for cls in registered_classes().values():
            if (cls.__module__, cls.__qualname__) == (module, name):
                return cls
        raise pickle.UnpicklingError(
            f"refusing to load {str(module)[:60]}.{str(name)[:60]}: only gradflow's model "
            "classes may appear in a trajectory file"
        )

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing a persistent id")


def convert_legacy_trajectory(old, new) -> Path:
    """Convert a trajectory file of the old pickled format (gradflow ≤ 0.1.0) to the current one.

    The old file's pickle is read by an unpickler that only builds gradflow's model classes and
    refuses anything else, so a crafted file cannot run code; still, only convert files you
    trust to hold what they say.

    **Arguments:**

    - `old`: the legacy file (attribute `gradflow_skeleton`).
    - `new`: the file to write (it may be `old`: the write is atomic).

    **Returns:** `new` as a `Path`.

    **Raises:** `FileFormatError` (one line) if `old` is not a readable legacy file or its
    pickle names anything but gradflow's model classes.
    """
    import xarray as xr

    expected = "a trajectory file written by gradflow ≤ 0.1.0"
    bad = lambda problem: FileFormatError(old, problem, expected)
    try:
        with xr.open_dataset(old, engine="h5netcdf", mask_and_scale=False) as ds:
            ds.load()
            values = {str(k): np.asarray(v.values) for k, v in ds.variables.items()}
            attrs = dict(ds.attrs)
    except Exception as err:  # h5py, xarray and OS errors alike
        raise bad(f"not a readable NetCDF file ({type(err).__name__})") from None
    if "gradflow_format" in attrs or "gradflow_skeleton" not in attrs:
        raise bad("not a legacy trajectory file (no gradflow_skeleton attribute)")
    try:
        raw = base64.b64decode(str(attrs["gradflow_skeleton"]), validate=True)
        skeleton = _RestrictedUnpickler(io.BytesIO(raw)).load()
    except pickle.UnpicklingError as err:
        raise bad(" ".join(str(err).split())[:200]) from None
    except Exception as err:  # a damaged pickle (or base64) fails in many ways
        raise bad(f"damaged gradflow_skeleton ({type(err).__name__})") from None
    try:
        params_sk, masses_sk, static_sk = skeleton
        n_params, n_static = int(attrs["n_params"]), int(attrs["n_static"])
        params = _fill(params_sk, values, "param", n_params, only_slots=True)
        masses = _fill(masses_sk, values, "mass", n_params, only_slots=True)
        static = _fill(static_sk, values, "static", n_static, only_slots=False)
        traj = Trajectory(
            jnp.asarray(values["time"]),
            params,
            static,
            jnp.asarray(values["loss"]),
            jnp.asarray(values["grad_norm"]),
            masses,
            _netcdf_json(attrs, "stats"),
            _netcdf_json(attrs, "info"),
        )
    except Exception as err:  # a skeleton or variables unlike what format 1 wrote
        raise bad(f"unexpected content ({type(err).__name__}: {str(err)[:120]})") from None
    return save_trajectory(traj, new)


def _fill(skeleton, values: dict, prefix: str, count: int, only_slots: bool):
    # Format 1 numbered the arrays of each tree in leaf order: param0, param1, ...
    leaves = jtu.tree_leaves(skeleton)
    slots = sum(isinstance(x, _LegacySlot) for x in leaves)
    if slots != count or (only_slots and slots != len(leaves)):
        raise ValueError(f"the {prefix} skeleton does not hold {count} array slots")
    arrays = iter(jnp.asarray(values[f"{prefix}{i}"]) for i in range(count))
    return jtu.tree_map(lambda x: next(arrays) if isinstance(x, _LegacySlot) else x, skeleton)


def _netcdf_json(attrs: dict, name: str) -> dict:
    value = json.loads(str(attrs[name]))
    if type(value) is not dict:
        raise ValueError(f"{name} is not a JSON object")
    return value
