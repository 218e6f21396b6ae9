"""One contract for the records gradflow's measurements return (diagnostics, fits, predictions).

A record is a frozen dataclass that subclasses `Record`: its fields are its named numbers (read
them as attributes; assigning one raises `dataclasses.FrozenInstanceError`), and `as_dict()`
returns them JSON-ready for a run's summary: NumPy and JAX arrays become (nested) lists, NumPy
scalars Python numbers, tuples lists, nested records dicts, and non-finite floats (NaN, ±inf,
which strict JSON has no words for) `None`. A field holding an object that is not data (a model)
is declared with `not_json()` and left out of `as_dict()`. A number a record computes from its
fields (a property) is in `as_dict()` too when the class names it in `DERIVED`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np


def not_json(**kwargs) -> Any:
    """A dataclass field left out of `as_dict()` (e.g. the model a record points at)."""
    return dataclasses.field(metadata={"json": False}, **kwargs)


def to_json(value) -> Any:
    """`value` as plain JSON data (see the module docstring); `TypeError` for anything else."""
    if isinstance(value, Record):
        return value.as_dict()
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.ndarray | jax.Array):
        return to_json(np.asarray(value).tolist())
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    raise TypeError(f"a {type(value).__name__} is not JSON data")


def alias(name: str, doc: str) -> property:
    """A read-only attribute that is the attribute `name` under a second name (e.g. a count
    that also has a name in another theory's words)."""
    return property(lambda self: getattr(self, name), doc=doc)


class Record:
    """Base of every result record: subclass it with `@dataclasses.dataclass(frozen=True)`."""

    # Properties (numbers computed from the fields) that `as_dict()` includes after the fields.
    DERIVED: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        """The fields by name, then the `DERIVED` properties, JSON-ready (arrays → lists, NaN →
        None, records → dicts)."""
        names = [f.name for f in dataclasses.fields(self) if f.metadata.get("json", True)]
        return {name: to_json(getattr(self, name)) for name in [*names, *self.DERIVED]}
