"""Any network as a gradflow model: an equinox module, or a pure function with a pytree of
parameters, flowed by θ' = −G⁻¹∇F(θ) like gradflow's own models.

    f_θ(x) = module(x)   or   f_θ(x) = fn(params, x),    applied to each sample of the batch,

θ = the inexact arrays of the module (or params) unless `trainable=` selects others. Without
masses only the Euclidean geometry applies (θ' = −∇F); with `masses` (one per trainable array,
a number or an array broadcasting against it) the Wasserstein flow θ' = −∇_θF / m, and with
`layered=True` the conditional-Wasserstein one (the masses then discretise a measure over a
layer coordinate that the parameters do not hold: see `docs/geometries.md`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from .._custom_types import Array, Inputs, Outputs, PyTree
from .._errors import ConfigError
from .._serialise import leaves_by_path, path_of
from .._validation import check, positive_int
from ._base import AbstractModel, DimsFromIO

_SIZED = (eqx.nn.MLP, eqx.nn.Linear)  # modules whose in_size/out_size give (d_in, d_out)


class Function:
    """A function held in a static field: equal to another (so compiled code is shared) only when
    it holds the very same function object, and shown by its qualified name so that a model's
    description (e.g. the fingerprint of a checkpointed flow) does not depend on memory
    addresses."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args)

    def __eq__(self, other) -> bool:
        return isinstance(other, Function) and other.fn is self.fn

    def __hash__(self) -> int:
        return hash(id(self.fn))

    def __repr__(self) -> str:
        module = getattr(self.fn, "__module__", None) or "?"
        name = getattr(self.fn, "__qualname__", None) or type(self.fn).__name__
        return f"Function({module}.{name})"


def _sizes(module, in_dim, out_dim) -> tuple[Any, Any]:
    """(d_in, d_out) from the arguments, or from the module: an `eqx.nn.MLP`/`eqx.nn.Linear`'s
    `in_size`/`out_size`, a gradflow model's `in_dim`/`out_dim`."""
    if isinstance(module, _SIZED):
        known = (module.in_size, module.out_size)
    elif isinstance(module, AbstractModel):
        known = (module.in_dim, module.out_dim)
    else:
        return in_dim, out_dim
    for name, given, size in zip(("in_dim", "out_dim"), (in_dim, out_dim), known, strict=True):
        check(
            size != "scalar",
            name,
            "'scalar'",
            f"an integer {name[:-4]}_size of the {type(module).__name__} (vector samples)",
        )
        check(given is None or given == size, name, given, f"None or {size}, the module's")
    return known


def _is_tracer(x) -> bool:
    return isinstance(x, jax.core.Tracer)


@final
class Wrapped(DimsFromIO, AbstractModel):
    """An equinox module, or a pure function `fn(params, x)` with a pytree of parameters, as a
    gradflow model (see the module docstring).

    **Arguments:**

    - `module_or_fn`: an `eqx.Module` mapping one sample (d_in,) to (d_out,) (e.g.
      `eqx.nn.MLP`), or a function `fn(params, x)` doing so.
    - `params`: the function's parameters (a pytree of arrays); None for a module (its arrays are
      its parameters).
    - `masses`: None (default: the Euclidean geometry only); a number (every trainable array);
      or a pytree like the trainable parameters, e.g.
      `jax.tree.map(lambda _: 1 / M, eqx.filter(mlp, eqx.is_inexact_array))`, with a number or
      an array broadcasting against each trainable array.
    - `in_dim`, `out_dim`: d_in and d_out. Read from an `eqx.nn.MLP` or `eqx.nn.Linear`
      (`in_size`, `out_size`; 'scalar' is refused) and from a gradflow model; required for any
      other module and for a function.
    - `trainable`: which leaves the flow moves, as an equinox filter of the module or params: a
      function of a leaf (default `eqx.is_inexact_array`) or a pytree (prefix) of booleans.
      Only inexact arrays can train.
    - `layered`: True for the conditional-Wasserstein geometry (needs `masses`).
    - `batched`: the module or function maps a whole batch (n, d_in) → (n, d_out) itself
      (default False: it maps one sample and is vmapped over the batch).

    A function is a static field, compared by identity: use the same function object for
    models that should share compiled code (a new `lambda` each time compiles anew). Files save
    every array, but a module of another library or a function cannot be named in a file: load a
    trajectory with `Trajectory.load(path, like=model)`.
    """

    params: PyTree
    mass_values: tuple[Array, ...] | None
    fn: Function | None = eqx.field(static=True)
    io_dims: tuple[int, int] = eqx.field(static=True)
    trainable_paths: tuple[str, ...] = eqx.field(static=True)
    layered: bool = eqx.field(static=True)
    batched: bool = eqx.field(static=True)

    def __init__(
        self,
        module_or_fn,
        params=None,
        masses=None,
        *,
        in_dim: int | None = None,
        out_dim: int | None = None,
        trainable=None,
        layered: bool = False,
        batched: bool = False,
    ):
        if isinstance(module_or_fn, eqx.Module):
            check(
                params is None,
                "params",
                type(params).__name__,
                "None for an equinox module (its arrays are its parameters)",
            )
            self.fn, self.params = None, module_or_fn
        else:
            check(
                callable(module_or_fn),
                "module_or_fn",
                type(module_or_fn).__name__,
                "an equinox module or a function fn(params, x)",
            )
            check(params is not None, "params", None, "the parameters of fn(params, x)")
            self.fn, self.params = Function(module_or_fn), params
        in_dim, out_dim = _sizes(self.params, in_dim, out_dim)
        for name, value in (("in_dim", in_dim), ("out_dim", out_dim)):
            check(value is not None, name, None, "an integer (required for this module/function)")
        self.io_dims = (positive_int("in_dim", in_dim), positive_int("out_dim", out_dim))
        spec = eqx.is_inexact_array if trainable is None else trainable
        try:
            selected, _ = eqx.partition(self.params, spec)
        except Exception as err:  # equinox refuses a spec unlike the parameters in many ways
            raise ConfigError(
                "trainable",
                type(trainable).__name__,
                f"an equinox filter of the parameters ({err})",
            ) from None
        self.trainable_paths = tuple(leaves_by_path(selected))
        self.mass_values = None if masses is None else self._masses_of(masses)
        self.layered = layered
        self.batched = batched

    def _masses_of(self, masses) -> tuple[Array, ...]:
        """One mass per trainable path, from a number or a pytree like the parameters."""
        if isinstance(masses, int | float | np.number) and not isinstance(masses, bool):
            given = {p: masses for p in self.trainable_paths}
        else:
            try:
                given = leaves_by_path(masses)
            except ConfigError:
                given = {}
        leaves = leaves_by_path(self.params)
        values = []
        for p in self.trainable_paths:
            mass = given.get(p)
            accepted = f"a number, or a pytree like the trainable parameters with a mass at {p!r}"
            check(mass is not None, "masses", type(masses).__name__, accepted)
            if not _is_tracer(mass):
                arr = np.asarray(mass, dtype=float)
                ok = np.all(np.isfinite(arr)) and np.all(arr > 0)
                check(ok, f"masses.{p}", mass, "positive numbers")
                try:
                    fits = np.broadcast_shapes(arr.shape, leaves[p].shape) == leaves[p].shape
                except ValueError:
                    fits = False
                check(fits, f"masses.{p}", arr.shape, f"a shape broadcasting to {leaves[p].shape}")
            values.append(jnp.asarray(mass, dtype=float))
        return tuple(values)

    def __check_init__(self):
        check(
            self.fn is None or isinstance(self.fn, Function),
            "fn",
            type(self.fn).__name__,
            "None (an equinox module) or a function",
        )
        check(
            self.fn is not None or isinstance(self.params, eqx.Module),
            "params",
            type(self.params).__name__,
            "an equinox module, or parameters of a function",
        )
        io = self.io_dims
        check(
            type(io) is tuple and len(io) == 2 and all(type(d) is int and d >= 1 for d in io),
            "io_dims",
            io,
            "a pair of positive integers (in_dim, out_dim)",
        )
        for name in ("layered", "batched"):
            check(type(getattr(self, name)) is bool, name, getattr(self, name), "True or False")
        leaves = leaves_by_path(self.params)
        paths = self.trainable_paths
        check(
            type(paths) is tuple
            and all(p in leaves and eqx.is_inexact_array(leaves[p]) for p in paths),
            "trainable",
            paths,
            "a selection of the parameters' floating-point arrays",
        )
        check(len(paths) >= 1, "trainable", paths, "at least one floating-point array")
        masses = self.mass_values
        check(
            masses is None or (type(masses) is tuple and len(masses) == len(paths)),
            "masses",
            None if masses is None else len(masses),
            f"one mass per trainable array ({len(paths)})",
        )
        check(
            not self.layered or masses is not None,
            "layered",
            True,
            "False unless masses are given (the conditional-Wasserstein geometry needs them)",
        )

    def _by_path(self, value_at) -> PyTree:
        """The model's tree with `value_at(path)` at each leaf of the parameters (path relative
        to them, as in `trainable_paths`) and None at every other leaf."""

        def at(keypath, leaf):
            path = path_of(keypath)
            if path == "params" or path.startswith("params."):
                return value_at(path[len("params.") :])
            return None

        return jtu.tree_map_with_path(at, self)

    def trainable(self) -> PyTree[bool]:
        chosen = set(self.trainable_paths)
        spec = self._by_path(lambda p: p in chosen)
        return jtu.tree_map(lambda s: bool(s), spec, is_leaf=lambda x: x is None)

    def masses(self) -> PyTree | None:
        if self.mass_values is None:
            return None
        mass = dict(zip(self.trainable_paths, self.mass_values, strict=True))
        return self._by_path(mass.get)

    def __call__(self, x: Inputs) -> Outputs:
        if self.fn is None:
            forward = self.params
        else:
            forward = lambda xi: self.fn(self.params, xi)  # noqa: E731
        return forward(x) if self.batched else jax.vmap(forward)(x)
