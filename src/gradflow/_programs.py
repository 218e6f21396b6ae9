"""Traced solves kept on disk (`jax.export`), so that a process running a solve that another
process has run skips tracing it, not only compiling it.

JAX's persistent compilation cache (`_cache`) keys a program on its lowered text, so a process
must trace and lower a program before it can ask the cache for it: for a quick deep-linear run
that is ~1.5 s of its ~9 s even when every compilation comes from the cache, almost all of it in
the three `diffrax.diffeqsolve` loops. `stored_jit` keys a call instead on a description of its
arguments, and keeps the traced program (`jax.export`'s serialised StableHLO) under that key:

- the key names every non-array part of the arguments (the pytree structure with each node's
  type and static data, Python numbers, functions) and the shape and dtype of every array, plus
  the function, a digest of gradflow's own source files, the versions of jax, jaxlib and the
  libraries whose code is traced, the backend and device kind, JAX's configuration and equinox's
  error mode;
- a part is named only if it is data (numbers, strings, arrays by content) or a class, function
  or module-level object of gradflow or of those libraries, found again by its import path. A
  part that is anything else (a lambda, a closure, a user's own function or class, whose code the
  key could not see change) makes the call an ordinary `eqx.filter_jit` call: nothing is stored
  and nothing is loaded for it;
- the output's pytree structure is stored beside the program in the same vocabulary, and is
  stored only if it reads back equal to the original.

So a stored program is loaded only by a call that would trace the same program: same code, same
static data, same shapes (a process that patches gradflow's or those libraries' code while it
runs must switch the store off: `enable(None)`). What is stored is data: a serialised StableHLO
module and JSON, never pickle; `jax.export` refuses programs with host callbacks (equinox's
runtime checks unless `EQX_ON_ERROR=nan`), which then simply run as ordinary calls. The store is on where the
compilation cache is (`gradflow run`, `gradflow sweep`, `enable_compilation_cache`), in its
folder's `programs/` subfolder. XLA's compiler options are not part of the key: they act after
tracing, so one stored program serves every set of options, and each call compiles it with its
own (`stored_jit(fn, compiler_options)`; the compilation cache keys them).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import json
import sys
import types
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from ._files import write_bytes

FORMAT = 1
# Code these packages hold is covered by the key: gradflow's by a digest of its source files, the
# others by their installed versions.
LIBRARIES = ("jax", "jaxlib", "equinox", "diffrax", "optimistix", "lineax", "optax", "numpy")
TRUSTED = frozenset(("builtins", "gradflow", *LIBRARIES))
# ... and the versions of every library whose code gradflow's traced code may call.
VERSIONED = (*LIBRARIES, "ott-jax", "jaxtyping")

_directory: Path | None = None
# (key, compiler options) → program (None: this call is not stored)
_memo: dict[tuple[str, str], Callable | None] = {}


class Unnamed(Exception):
    """A part of a call that the store cannot name safely (the call runs as an ordinary one)."""


def enable(directory) -> None:
    """Keep and load traced programs in `directory` (None: switch the store off)."""
    global _directory
    _directory = None if directory is None else Path(directory)
    _memo.clear()


def directory() -> Path | None:
    """The folder of the store, or None when it is off."""
    return _directory


# naming ------------------------------------------------------------------------------------------


def _path_of(obj) -> str:
    """'module:qualname' of a class or function of a trusted package that imports back to `obj`
    itself, or of a module-level object of such a package (a sentinel, an enumeration)."""
    if obj is type(None):
        return _NONE_TYPE
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        path = f"{module}:{qualname}"
        try:
            if module.split(".")[0] in TRUSTED and _resolve(path) is obj:
                return path
        except (ImportError, AttributeError, Unnamed):
            pass
    owner = type(obj).__module__
    if owner.split(".")[0] in TRUSTED and owner in sys.modules:
        for name, value in vars(sys.modules[owner]).items():
            if value is obj and not name.startswith("__"):
                return f"{owner}:{name}"
    raise Unnamed(f"{obj!r} is not a class, function or module-level object of {sorted(TRUSTED)}")


_NONE_TYPE = "builtins:NoneType"  # the one builtin type not reachable by its name


def _resolve(path: str):
    if path == _NONE_TYPE:
        return type(None)
    module, _, qualname = path.partition(":")
    if module.split(".")[0] not in TRUSTED:
        raise Unnamed(f"{module} is not one of {sorted(TRUSTED)}")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def encode(value):
    """`value` as JSON data that names it exactly (see the module docstring); raises `Unnamed`."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"int": value}
    if isinstance(value, float):
        return {"float": repr(value)}
    if isinstance(value, tuple | list):
        return {type(value).__name__: [encode(v) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, np.ndarray | np.generic | jax.Array):
        array = np.asarray(value)
        digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
        return {"array": [str(array.dtype), list(array.shape), digest]}
    if isinstance(value, functools.partial):
        return {"partial": [encode(value.func), encode(value.args), encode(value.keywords)]}
    if isinstance(value, type | types.FunctionType | types.BuiltinFunctionType):
        return {"named": _path_of(value)}
    if isinstance(value, eqx.Module):  # a module held as static data: its whole tree
        leaves, treedef = jax.tree_util.tree_flatten(value)
        return {"module": [encode_structure(treedef), [encode(leaf) for leaf in leaves]]}
    return {"named": _path_of(value)}


def decode(data):
    """The value `encode` named (classes, functions and objects found by their import paths)."""
    if data is None or isinstance(data, str):
        return data
    ((kind, body),) = data.items()
    if kind in ("bool", "int"):
        return body
    if kind == "float":
        return float(body)
    if kind == "tuple":
        return tuple(decode(v) for v in body)
    if kind == "list":
        return [decode(v) for v in body]
    if kind == "dict":
        return {decode(k): decode(v) for k, v in body}
    if kind == "named":
        try:
            return _resolve(body)
        except (ImportError, AttributeError) as err:
            raise Unnamed(f"cannot import {body}") from err
    raise Unnamed(f"cannot rebuild a {kind!r} from its name")


def encode_structure(treedef) -> list:
    """A pytree structure as nested lists: [] for a leaf, else [type, static data, children]."""
    node = treedef.node_data()
    if node is None:
        return []
    kind, data = node
    return [encode(kind), encode(data), [encode_structure(c) for c in treedef.children()]]


_LEAF = jax.tree_util.tree_structure(0)


def decode_structure(data):
    """The pytree structure `encode_structure` described."""
    if not data:
        return _LEAF
    kind, static, children = data
    node = (decode(kind), decode(static))
    return _LEAF.from_node_data_and_children(
        jax.tree_util.default_registry, node, [decode_structure(c) for c in children]
    )


def _aval(leaf) -> list:
    shaped = jax.typeof(leaf) if isinstance(leaf, jax.Array) else None
    weak = bool(getattr(shaped, "weak_type", False))
    return [str(np.result_type(leaf.dtype)), list(np.shape(leaf)), weak]


# the key -----------------------------------------------------------------------------------------


def _digest_sources() -> str:
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# Read when gradflow is imported (~5 ms), not when the first program is stored: a file edited
# while a process runs must not lend its digest to programs traced from the code loaded before.
_SOURCE_DIGEST = _digest_sources()


def source_digest() -> str:
    """sha256 over gradflow's Python source files (their paths and contents), as they were when
    gradflow was imported."""
    return _SOURCE_DIGEST


@functools.cache
def _versions() -> dict:
    def version(name):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {name: version(name) for name in VERSIONED} | {"python": sys.version}


def environment() -> dict:
    """Everything outside a call's arguments that decides the program it traces."""
    from equinox._config import EQX_ON_ERROR

    device = jax.devices()[0]
    config = {k: repr(v) for k, v in sorted(jax.config.values.items()) if "cache" not in k.lower()}
    return {
        "gradflow": source_digest(),
        "versions": _versions(),
        "backend": jax.default_backend(),
        "device": device.device_kind,
        "devices": jax.device_count(),
        "jax_config": config,
        "eqx_on_error": EQX_ON_ERROR,
    }


def describe(fn, args) -> dict:
    """The key's contents for `fn(*args)`: raises `Unnamed` where a part cannot be named."""
    leaves, treedef = jax.tree_util.tree_flatten(args)
    return {
        "format": FORMAT,
        "function": _path_of(fn),
        "structure": encode_structure(treedef),
        "leaves": [{"aval": _aval(x)} if eqx.is_array(x) else encode(x) for x in leaves],
        "environment": environment(),
    }


def key_of(description: dict) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


# the store ---------------------------------------------------------------------------------------


def stored_jit(fn: Callable, compiler_options: dict | None = None) -> Callable:
    """`eqx.filter_jit(fn)` whose traced programs are kept in the store while it is on.

    Arrays in the arguments are the program's inputs and everything else is static, as for
    `eqx.filter_jit`; non-array outputs are kept with the output's structure. A call that cannot
    be named (see the module docstring) is an ordinary `eqx.filter_jit` call.
    `compiler_options`: XLA's options for compiling it (`jax.jit`'s), also when it is loaded from
    the store (the stored program is the traced one, before compilation: the same for any).
    """
    jitted = eqx.filter_jit(fn, compiler_options=compiler_options)
    options = json.dumps(compiler_options, sort_keys=True)

    @functools.wraps(fn)
    def call(*args):
        from equinox._config import EQX_ON_ERROR

        # Other error modes put host callbacks in the program, which jax.export refuses.
        if _directory is None or EQX_ON_ERROR not in ("nan", "off"):
            return jitted(*args)
        program = _program(fn, args, compiler_options, options)
        return jitted(*args) if program is None else program(args)

    return call


def _program(fn, args, compiler_options, options: str):
    try:
        description = describe(fn, args)
    except Unnamed:
        return None
    key = key_of(description)
    if (key, options) not in _memo:
        assert _directory is not None
        program = _load(fn, key, description, compiler_options)
        if program is None and not (_directory / f"{key}.refused").exists():
            program = _export(fn, args, key, description, compiler_options)
        _memo[key, options] = program
    return _memo[key, options]


def _runner(name: str, exported, tree, static: dict, compiler_options) -> Callable:
    def program(*arrays):
        return exported.call(*arrays)

    program.__name__ = program.__qualname__ = name  # JAX's logs name it `jit_<name>`
    call = jax.jit(program, compiler_options=compiler_options)

    def run(args):
        outputs = iter(call(*[x for x in jax.tree_util.tree_leaves(args) if eqx.is_array(x)]))
        leaves = [static[i] if i in static else next(outputs) for i in range(tree.num_leaves)]
        return jax.tree_util.tree_unflatten(tree, leaves)

    return run


def _read_structure(data: dict):
    return decode_structure(data["tree"]), {int(i): decode(v) for i, v in data["static"]}


def _load(fn, key: str, description: dict, compiler_options):
    """The stored program of `key`, or None (not stored, unreadable, or described otherwise)."""
    assert _directory is not None
    try:
        data = json.loads((_directory / f"{key}.json").read_text())
        payload = (_directory / f"{key}.jaxexport").read_bytes()
        if data["description"] != description:
            return None
        tree, static = _read_structure(data)
        exported = jax.export.deserialize(bytearray(payload))
        return _runner(fn.__name__, exported, tree, static, compiler_options)
    except Exception:  # noqa: BLE001  (missing, truncated, foreign: any unreadable entry)
        return None  # traced again and stored anew


def _export(fn, args, key: str, description: dict, compiler_options):
    """Trace `fn(*args)` once with `jax.export`, store it, and return the program (None where
    jax.export refuses the program or its output cannot be named)."""
    assert _directory is not None
    leaves, treedef = jax.tree_util.tree_flatten(args)
    where = [i for i, x in enumerate(leaves) if eqx.is_array(x)]
    captured = {}

    def flat(*arrays):
        full = list(leaves)
        for i, array in zip(where, arrays, strict=True):
            full[i] = array
        out, tree = jax.tree_util.tree_flatten(fn(*jax.tree_util.tree_unflatten(treedef, full)))
        captured["tree"] = tree
        captured["static"] = {i: x for i, x in enumerate(out) if not eqx.is_array(x)}
        return [x for x in out if eqx.is_array(x)]

    try:
        exported = jax.export.export(jax.jit(flat))(*[leaves[i] for i in where])
        payload = exported.serialize()
        structure = {
            "tree": encode_structure(captured["tree"]),
            "static": [[i, encode(v)] for i, v in captured["static"].items()],
        }
        tree, static = _read_structure(structure)
        if tree != captured["tree"] or static != captured["static"]:
            raise Unnamed(f"the output's structure reads back as {tree}")
    except (Unnamed, ValueError, TypeError, NotImplementedError, ImportError) as err:
        # Errors of the call itself are raised again by the ordinary call that follows; refusals
        # (host callbacks, unnamed outputs) are remembered, so no process traces them twice.
        if isinstance(err, Unnamed | NotImplementedError) or "custom call" in str(err).lower():
            _write(_directory / f"{key}.refused", f"{type(err).__name__}: {err}\n".encode())
        return None
    record = {**structure, "description": description}
    _write(_directory / f"{key}.json", json.dumps(record).encode())
    _write(_directory / f"{key}.jaxexport", bytes(payload))
    return _runner(fn.__name__, exported, tree, static, compiler_options)


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, data)
    except OSError:  # a read-only or full cache folder: the program is simply not kept
        pass
