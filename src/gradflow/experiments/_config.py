"""`ExperimentConfig`: the frozen, documented, validated configuration of an experiment.

A config class declares every field with `param(default, meaning, ...)`: a type (the annotation),
a default and a one-line meaning, optionally a check (`_checks`), a table of accepted names
(`choices=`), a mark for sizes that drive memory (`size=True`) and for input files (`file=True`,
hashed into the run's provenance). Two presets, class-level dicts of field values, give reduced
runs: `QUICK` (under a minute, the same files) and `TINY` (a few seconds, for fault injection and
sweeps); a preset is applied before the user's `--set` values, which always win.

`validate()` checks every field (its type, its check, its choices), then the relations between
fields (subclasses extend it and call `require`), always naming a field the user set. A subclass
whose sizes can explode overrides `estimated_bytes()`; `check_memory` compares it with the
machine's physical memory before any work.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import os
import typing
from collections.abc import Iterator
from typing import Any, ClassVar

from .._errors import ConfigError
from .._memory import physical_memory
from . import _checks
from ._parse import _item_type, _optional_inner, accepted_form

# The keys the user set in the configuration being validated (relations name one of them).
_USER_KEYS: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "gradflow_user_keys", default=frozenset()
)


@contextlib.contextmanager
def user_keys(keys) -> Iterator[None]:
    """Within this block, `require` names the first of its fields that is in `keys`."""
    token = _USER_KEYS.set(frozenset(keys))
    try:
        yield
    finally:
        _USER_KEYS.reset(token)


def param(
    default: Any,
    meaning: str,
    *,
    check: _checks.Check | None = None,
    choices=None,
    size: bool = False,
    file: bool = False,
) -> Any:
    """A config field: its default, its one-line meaning and how it is checked.

    - `check(field, value)`: raises `ConfigError` for invalid values (see `_checks`).
    - `choices`: the accepted names (a collection, or a function returning one, e.g. a library
      table); for a list field, each item must be one of them.
    - `size`: the field is a size in `estimated_bytes()` (a refusal for memory may name it).
    - `file`: the field is the path of an input file (must exist; its SHA-256 is recorded).
    """
    if "\n" in meaning or not meaning.strip():
        raise ValueError(f"a field's meaning is one non-empty line, got {meaning!r}")
    if isinstance(default, list | dict | set):
        raise TypeError("config defaults are immutable: use a tuple")
    metadata = {"meaning": meaning, "check": check, "choices": choices, "size": size, "file": file}
    return dataclasses.field(default=default, metadata=metadata)


def field_specs(cls) -> dict[str, tuple[dataclasses.Field, Any]]:
    """{name: (dataclass field, resolved annotation)} of a config class, in declaration order."""
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)}


def format_bytes(n: float) -> str:
    """A byte count as text with a decimal unit ('1.5 GB'); 'unbounded' for inf or NaN."""
    if not math.isfinite(n):
        return "unbounded"
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Fields every experiment has (the seed); presets `QUICK` and `TINY` (field → value)."""

    QUICK: ClassVar[dict[str, Any]] = {}
    TINY: ClassVar[dict[str, Any]] = {}

    seed: int = param(0, "seed of all randomness (jax.random.PRNGKey)", check=_checks.seed())

    # ------------------------------------------------------------------------------------------
    # checks

    def require(self, ok: bool, accepted: dict[str, str]) -> None:
        """A relation between fields: unless `ok`, raise `ConfigError` naming the first field of
        `accepted` that the user set (else its first field), with that field's accepted text."""
        if ok:
            return
        keys = _USER_KEYS.get()
        name = next((f for f in accepted if f in keys), next(iter(accepted)))
        raise ConfigError(name, shown(getattr(self, name)), accepted[name])

    def check_fields(self) -> None:
        """Every field's type, check and choices (no relations)."""
        for name, (f, annotation) in field_specs(type(self)).items():
            value = getattr(self, name)
            _check_type(name, value, annotation)
            if f.metadata.get("choices") is not None and value is not None:
                names = _checks.choices_of(f.metadata["choices"])
                for item in value if isinstance(value, tuple) else (value,):
                    if item not in names:
                        raise ConfigError(
                            name, shown(value), "one of " + ", ".join(repr(c) for c in names)
                        )
            if f.metadata.get("check") is not None:
                f.metadata["check"](name, value)
            if f.metadata.get("file") and value is not None:
                ok = isinstance(value, str) and value != "" and os.path.isfile(value)
                if ok and not os.access(value, os.R_OK):
                    ok = False
                if not ok:
                    raise ConfigError(name, shown(value), "the path of a readable file")

    def validate(self) -> None:
        """Raise `ConfigError` for any invalid field. Subclasses extend it with the relations
        between fields (`require`), after calling `super().validate()`."""
        self.check_fields()

    def complete(self) -> ExperimentConfig:
        """The config with derived defaults filled in (a field whose default `None` means 'derived
        from the others' gets its value), so that config.json records what runs. Default: as is."""
        return self

    def estimated_bytes(self) -> float | None:
        """A rough estimate (within a small factor) of the run's peak memory, or None (small)."""
        return None

    def check_memory(self, limit: int | None = None) -> None:
        """Refuse (ConfigError naming a size field) a config whose `estimated_bytes()` exceeds
        the machine's physical memory."""
        estimate = self.estimated_bytes()
        limit = physical_memory() if limit is None else limit
        if estimate is None or limit is None or estimate <= limit:
            return
        specs = field_specs(type(self))
        sizes = [n for n, (f, _) in specs.items() if f.metadata.get("size")]
        keys = _USER_KEYS.get()
        named = [n for n in sizes if n in keys] or sizes or ["seed"]

        def growth(n):  # how far the user moved the field beyond its default
            value, default = getattr(self, n), specs[n][0].default
            value = max(value) if isinstance(value, tuple) and value else value
            default = max(default) if isinstance(default, tuple) and default else default
            try:
                return float(value) / max(float(default), 1.0)
            except (TypeError, ValueError, OverflowError):
                return 0.0

        name = max(named, key=growth)
        listing = ", ".join(f"{n}={_short(getattr(self, n))}" for n in sizes)
        raise ConfigError(
            name,
            shown(getattr(self, name)),
            f"sizes whose estimated memory ({format_bytes(estimate)}) fits in this machine's "
            f"{format_bytes(limit)} (sizes: {listing})",
        )

    # ------------------------------------------------------------------------------------------
    # presets

    @classmethod
    def preset_values(cls, preset: str) -> dict[str, Any]:
        """The field values preset `preset` ('full', 'quick' or 'tiny') sets."""
        return {"full": {}, "quick": dict(cls.QUICK), "tiny": dict(cls.TINY)}[preset]

    def to_json(self) -> dict[str, Any]:
        """{field: value} with tuples as lists (JSON)."""
        return {
            name: list(v) if isinstance(v, tuple) else v
            for name in field_specs(type(self))
            for v in (getattr(self, name),)
        }


def shown(value: Any) -> Any:
    """A value as an error message shows it: a tuple as the list the user typed."""
    return list(value) if isinstance(value, tuple) else value


def _short(value) -> str:
    text = str(list(value)) if isinstance(value, tuple) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _scalar_ok(value: Any, typ) -> bool:
    if typ is bool:
        return isinstance(value, bool)
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if typ is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if typ is str:
        return isinstance(value, str)
    return True


def _finite(value: Any) -> bool:
    try:
        return not isinstance(value, float) or math.isfinite(value)
    except (TypeError, OverflowError):
        return False


def _check_type(name: str, value: Any, annotation) -> None:
    """`ConfigError` unless `value` has the field's type (lists as tuples, numbers finite)."""
    inner, optional = _optional_inner(annotation)
    if value is None:
        if not optional:
            raise ConfigError(name, value, accepted_form(annotation))
        return
    item = _item_type(inner)
    if item is None:
        if not _scalar_ok(value, inner):
            raise ConfigError(name, value, accepted_form(annotation))
        if not _finite(value):
            raise ConfigError(name, value, "a finite number")
        return
    if not isinstance(value, tuple) or not all(_scalar_ok(v, item) for v in value):
        raise ConfigError(name, shown(value), accepted_form(annotation))
    if not value:  # every list field needs at least one item
        raise ConfigError(name, [], "a non-empty " + accepted_form(annotation).removeprefix("a "))
    if not all(_finite(v) for v in value):
        raise ConfigError(name, shown(value), "a list of finite numbers")
