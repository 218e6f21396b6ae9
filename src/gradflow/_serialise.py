"""Models as JSON plus named arrays: what gradflow writes to files instead of pickles.

A model (an equinox module tree) is described by two things:

- its *structure*, JSON-able data naming the registered class of each module and giving every
  dataclass field, with each array replaced by a reference `{"array": "<path>"}`;
- its *arrays*, a dict from path to NumPy array.

A path joins field names, sequence indices and dict keys with "." (`V`, `weights.0`,
`blocks.2.w`): the same names `jax.tree_util` key paths give (see `path_of`), and valid NetCDF
variable names (which cannot contain "/").

How a value is written:

| value                                   | JSON                                           |
|-----------------------------------------|------------------------------------------------|
| None, bool, int, str                    | itself                                         |
| float                                   | itself; ±inf and nan as `{"float": "inf"}` ... |
| list                                    | a JSON list                                    |
| tuple                                   | `{"tuple": [...]}`                             |
| dict with str keys                      | `{"dict": {key: value}}`                       |
| array (in a pytree position)            | `{"array": path}`                              |
| module of a registered class            | `{"class": name, "fields": {field: value}}`    |

Rebuilding accepts nothing else, only constructs registered classes, and never calls `__init__`:
as equinox's own unflatten does, an instance is `object.__new__(cls)` with each field set by
`object.__setattr__`; then the class's `__check_init__` methods run so its invariants still
hold. No code named by a file is ever imported or called.

Every concrete `gradflow.models.AbstractModel` subclass defined in gradflow registers itself
under its class name; `register_model(cls)` registers a class of your own.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax.tree_util as jtu
import numpy as np

from ._errors import ConfigError, FileFormatError

# name -> class, and class -> name; gradflow's classes by bare name, others by qualified name.
_CLASSES: dict[str, type] = {}
_NAMES: dict[type, str] = {}

_LIKE = "load it with Trajectory.load(path, like=model), giving a model of its class"
_JSON_VALUES = "None, bool, int, float, str, lists, tuples, str-keyed dicts and arrays"


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register_model(cls: type, name: str | None = None) -> type:
    """Allow files to name `cls`, so that `Trajectory.load` can rebuild it without `like=`.

    Only register classes whose fields are JSON values, arrays and registered modules, and whose
    `__check_init__` (if any) checks invariants; rebuilding never calls `__init__`.

    **Arguments:**

    - `cls`: an `equinox.Module` subclass.
    - `name`: the name files use (default: `module.QualName`, or the bare class name for
      gradflow's own classes).

    **Returns:** `cls`, so this can be used as a class decorator.
    """
    if not (isinstance(cls, type) and issubclass(cls, eqx.Module)):
        raise ConfigError("model class", cls, "an equinox.Module subclass")
    if name is None:
        name = cls.__name__ if cls.__module__.startswith("gradflow.") else _qualified(cls)
    if not isinstance(name, str) or not name:
        raise ConfigError("model class name", name, "a non-empty string")
    old = _CLASSES.get(name)
    # The same class defined again (a module reloaded) replaces the old one; another class may
    # not take a name already in use, or files would rebuild the wrong class.
    if old is not None and old is not cls and _qualified(old) != _qualified(cls):
        raise ConfigError("model class name", name, f"a name not already used by {_qualified(old)}")
    if old is not None:
        _NAMES.pop(old, None)
    _CLASSES[name] = cls
    _NAMES[cls] = name
    return cls


def register_gradflow_class(cls: type) -> None:
    """Called by `AbstractModel.__init_subclass__`: register classes defined in gradflow."""
    if cls.__module__.startswith("gradflow.") and "<locals>" not in cls.__qualname__:
        register_model(cls, cls.__name__)


def registered_class(name: str) -> type | None:
    """The class registered under `name`, or None."""
    return _CLASSES.get(name)


def registered_classes() -> dict[str, type]:
    """Every registered class, by name (a copy)."""
    return dict(_CLASSES)


# The attribute of each kind of `jax.tree_util` key that names its step in a path: a module's
# field, a sequence's index, a dict's key, a registered node's flattened index.
_KEY_NAMES = (
    (jtu.GetAttrKey, "name"),
    (jtu.SequenceKey, "idx"),
    (jtu.DictKey, "key"),
    (jtu.FlattenedIndexKey, "key"),
)


def path_of(keypath) -> str:
    """The dotted path of a `jax.tree_util` key path (`weights.0` for `.weights[0]`)."""
    parts = []
    for key in keypath:
        attr = next((attr for kind, attr in _KEY_NAMES if isinstance(key, kind)), None)
        if attr is None:
            raise ConfigError("model", str(keypath), "a pytree of modules, tuples, lists and dicts")
        parts.append(str(getattr(key, attr)))
    return ".".join(parts)


def leaves_by_path(tree) -> dict[str, Any]:
    """Every leaf of `tree` (None is no leaf), keyed by its dotted path."""
    leaves, _ = jtu.tree_flatten_with_path(tree)
    return {path_of(keypath): leaf for keypath, leaf in leaves}


def _join(path: str, name) -> str:
    return f"{path}.{name}" if path else str(name)


# -------------------------------------------------------------------------------------------
# describe


def describe(tree, *, opaque: bool = False) -> tuple[Any, dict[str, np.ndarray]]:
    """The structure (JSON-able) and the named arrays of `tree` (see the module docstring).

    **Arguments:**

    - `tree`: a module of a registered class, or a tuple/list/dict of such modules and values.
    - `opaque`: record what JSON cannot describe (a function, an object, a module of an
      unregistered class) as `{"opaque": type}` or an unregistered class name instead of
      raising; such a structure can only be rebuilt with `like=` (a model given by the user).

    **Returns:** `(structure, arrays)`; `json.dumps(structure)` is the JSON.

    **Raises:** `ConfigError` (one line) for what JSON cannot describe, unless `opaque`.
    """
    arrays: dict[str, np.ndarray] = {}
    return _describe(tree, "", arrays, opaque, False), arrays


def _refuse(path: str, value) -> ConfigError:
    kind = type(value).__name__
    if isinstance(value, eqx.Module):
        kind = f"{_qualified(type(value))} (a class not registered with gradflow)"
    what = f"{path or 'the model'}: {kind}"
    return ConfigError(
        "model",
        what,
        f"registered model classes holding {_JSON_VALUES}; "
        f"otherwise the model cannot be rebuilt from JSON: {_LIKE}",
    )


def _describe(value, path: str, arrays: dict, opaque: bool, static: bool):
    if isinstance(value, np.generic) and static:
        value = value.item()  # aux data (a static field): a plain number
    if eqx.is_array(value):
        if static or not path:
            if opaque:
                return {"opaque": type(value).__name__}
            raise _refuse(path, value)
        arrays[path] = np.asarray(value)
        return {"array": path}
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float:
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, eqx.Module):
        cls = type(value)
        out: dict[str, Any] = {"class": _NAMES.get(cls)}
        if out["class"] is None:
            if not opaque:
                raise _refuse(path, value)
            out = {"class": _qualified(cls), "registered": False}
        out["fields"] = {
            f.name: _describe(
                getattr(value, f.name, None),
                _join(path, f.name),
                arrays,
                opaque,
                static or f.metadata.get("static", False),
            )
            for f in dataclasses.fields(value)
        }
        return out
    if type(value) in (list, tuple):
        items = [_describe(v, _join(path, i), arrays, opaque, static) for i, v in enumerate(value)]
        return {"tuple": items} if type(value) is tuple else items
    if type(value) is dict and all(isinstance(k, str) and k and "." not in k for k in value):
        return {
            "dict": {
                k: _describe(v, _join(path, k), arrays, opaque, static) for k, v in value.items()
            }
        }
    if opaque:
        return {"opaque": type(value).__name__}
    raise _refuse(path, value)


# -------------------------------------------------------------------------------------------
# rebuild


def rebuild(structure, arrays: Mapping[str, Any], *, source="the model structure", check=True):
    """The tree that `describe` described, with `arrays[path]` at each array reference.

    **Arguments:**

    - `structure`: the structure (decoded JSON).
    - `arrays`: the arrays by path; every one must be used, and every reference found.
    - `source`: what the structure came from (a file), named in errors.
    - `check`: run each rebuilt module's `__check_init__` (pass False for a tree whose arrays
      carry extra batch axes that the checks would not expect).

    **Returns:** the tree.

    **Raises:** `FileFormatError` (one line) for anything but what `describe` writes: an
    unregistered class, a field missing or extra, an unknown entry, an array missing or unused,
    a module failing its checks.
    """
    builder = _Builder(arrays, source, check)
    tree = builder.build(structure, "")
    unused = sorted(set(arrays) - builder.used)
    if unused:
        builder.fail(f"arrays {unused} are not part of the model structure")
    return tree


class _Builder:
    def __init__(self, arrays: Mapping[str, Any], source, check: bool):
        self.arrays, self.source, self.check = arrays, source, check
        self.used: set[str] = set()

    def fail(self, problem: str, accepted: str = "a model structure written by gradflow"):
        raise FileFormatError(self.source, problem, accepted)

    def build(self, value, path: str):
        if value is None or type(value) in (bool, int, float, str):
            return value
        if type(value) is list:
            return [self.build(v, _join(path, i)) for i, v in enumerate(value)]
        if type(value) is not dict:
            self.fail(f"unexpected {type(value).__name__} at {path or 'the top'}")
        keys = set(value)
        if keys == {"array"}:
            return self._array(value["array"], path)
        if keys == {"tuple"} and type(value["tuple"]) is list:
            return tuple(self.build(v, _join(path, i)) for i, v in enumerate(value["tuple"]))
        if keys == {"dict"} and type(value["dict"]) is dict:
            for k in value["dict"]:
                if not k or "." in k:
                    self.fail(f"dict key {k[:80]!r} at {path or 'the top'}")
            return {k: self.build(v, _join(path, k)) for k, v in value["dict"].items()}
        if keys == {"float"} and value["float"] in ("inf", "-inf", "nan"):
            return float(value["float"])
        if "class" in keys and keys <= {"class", "fields", "registered"}:
            return self._module(value, path)
        if keys == {"opaque"}:
            self.fail(
                f"{path or 'the model'} held a {str(value['opaque'])[:80]}, not stored in files",
                _LIKE,
            )
        self.fail(f"unknown entry {str(list(value))[:80]} at {path or 'the top'}")

    def _array(self, ref, path: str):
        # The reference must name the place it sits in: a file cannot move an array elsewhere.
        if ref != path or not path:
            self.fail(f"array reference {str(ref)[:80]!r} at {path or 'the top'}")
        if path not in self.arrays:
            self.fail(f"array {path!r} is missing")
        self.used.add(path)
        return self.arrays[path]

    def _module(self, value: dict, path: str):
        name, fields = value["class"], value.get("fields")
        cls = _CLASSES.get(name) if isinstance(name, str) else None
        if cls is None:
            shown = str(name)[:80]
            self.fail(
                f"model class {shown!r} is not registered with gradflow, so it cannot be rebuilt "
                "from JSON",
                f"a registered class; {_LIKE}, or register it with gradflow.models.register_model",
            )
        if type(fields) is not dict:
            self.fail(f"{name} at {path or 'the top'} has no fields")
        expected = [f.name for f in dataclasses.fields(cls)]
        # A field added to a class later with a default (e.g. ResNet.normalise) may be absent
        # from older files: it takes its default, the value every model had before.
        defaults = {
            f.name: f.default
            for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING and f.name not in fields
        }
        if set(fields) | set(defaults) != set(expected):
            missing = sorted(set(expected) - set(fields) - set(defaults))
            extra = sorted(set(fields) - set(expected))
            self.fail(
                f"{name} at {path or 'the top'} has fields missing {missing} / extra {extra}",
                f"the fields of {name}: {expected}",
            )
        try:
            module = object.__new__(cls)  # as equinox's unflatten: no __init__ runs
        except TypeError:  # an abstract class
            self.fail(f"model class {name!r} is abstract")
        for f in expected:
            value = defaults[f] if f in defaults else self.build(fields[f], _join(path, f))
            object.__setattr__(module, f, value)
        if self.check:
            self._check_init(module, name, path)
        return module

    def _check_init(self, module, name: str, path: str) -> None:
        # Equinox runs every class's __check_init__ in the hierarchy after __init__; so do we.
        for kls in type(module).__mro__:
            check_init = kls.__dict__.get("__check_init__")
            if check_init is None:
                continue
            try:
                check_init(module)
            except Exception as e:  # whatever the check raises, the user gets one line
                message = " ".join(str(e).split())[:200]
                self.fail(f"the {name} at {path or 'the top'} fails its checks: {message}")
