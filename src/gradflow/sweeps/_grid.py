"""A sweep's plan: the grid parsed and checked, its cells (the product of the grids), their
folders, and `DIR/manifest.json`, which fixes what a sweep folder holds.

    DIR/manifest.json                 experiment, grid, seeds, --set values (written first)
    DIR/cells/003_depth=3_init_scale=0.01/seed-7/   one run folder per (cell, seed)
    DIR/results.parquet, DIR/report.html

Every cell's effective configuration is validated before anything is written, so an invalid
value anywhere in the grid is one `ConfigError` naming it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from pathlib import Path
from typing import Any

from .. import _files
from .._errors import ConfigError
from ..experiments import coerce, effective_config, field_specs, get_experiment, to_text
from ..runs import RunFolderError

MANIFEST = "manifest.json"
CELLS = "cells"
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One point of the grid: its index, {key: typed value}, {key: text} and folder name."""

    index: int
    values: dict[str, Any]
    texts: dict[str, str]

    @property
    def name(self) -> str:
        parts = "_".join(f"{k}={v}" for k, v in self.texts.items())
        return _UNSAFE.sub("-", f"{self.index:03d}_{parts}")[:120]


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a sweep runs: experiment, grid {key: [texts]}, seeds, base --set values, cells."""

    experiment: str
    grid: dict[str, list[str]]
    seeds: list[int]
    sets: dict[str, str]
    cells: list[Cell]

    def manifest(self) -> dict[str, Any]:
        return {
            "format": "gradflow-sweep/1",
            "experiment": self.experiment,
            "grid": self.grid,
            "seeds": self.seeds,
            "set": self.sets,
        }

    def overrides(self, cell: Cell, seed: int) -> dict[str, str]:
        """The `--set` values of one run: the base values, the cell's, then the seed."""
        return {**self.sets, **cell.texts, "seed": str(seed)}


def parse_grid_options(items: list[str]) -> dict[str, list[str]]:
    """`--grid key=v1,v2,...` options as {key: [texts]} (in the order given)."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        texts = [v.strip() for v in values.split(",")]
        if not sep or not key or not all(texts):
            raise ConfigError("--grid", item, "key=v1,v2,... (comma-separated values)")
        if key in grid:
            raise ConfigError("--grid", item, f"one --grid option per key ({key} given twice)")
        grid[key] = texts
    return grid


def _grid_texts(name: str, grid: dict[str, Any]) -> dict[str, list[str]]:
    """{key: [texts]}, each value checked against the key's type."""
    if not isinstance(grid, dict) or not grid:
        raise ConfigError("grid", grid, "a non-empty mapping {key: [values]}")
    specs = field_specs(get_experiment(name).config_cls)
    out = {}
    for key, values in grid.items():
        if key == "seed":
            raise ConfigError(
                "--grid", key, "a key other than seed (seeds: --seeds K, --set seed=S)"
            )
        if key not in specs:
            keys = ", ".join(sorted(k for k in specs if k != "seed"))
            raise ConfigError("--grid", key, f"a key of experiment '{name}': {keys}")
        if isinstance(values, str) or not hasattr(values, "__iter__"):
            values = [values]
        texts = [v if isinstance(v, str) else to_text(v) for v in values]
        if not texts:
            raise ConfigError("--grid", key, "at least one value")
        typed = [coerce(key, t, specs[key][1]) for t in texts]
        if len({to_text(v) for v in typed}) != len(typed):
            raise ConfigError("--grid", f"{key}={','.join(texts)}", "distinct values")
        out[key] = texts
    return out


def make_plan(name: str, grid: dict, seeds: int = 1, sets: dict | None = None) -> Plan:
    """The checked plan of a sweep: `grid` {key: [values or texts]}, `seeds` K ≥ 1 (the seeds are
    S, S+1, ..., S+K−1 with S the configuration's seed), `sets` the base `--set` values. Every
    cell's configuration is validated (`ConfigError` naming the key at fault)."""
    get_experiment(name)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError("--seeds", seeds, "an integer >= 1")
    sets = {str(k): v if isinstance(v, str) else to_text(v) for k, v in (sets or {}).items()}
    texts = _grid_texts(name, grid)
    clash = sorted(set(texts) & set(sets))
    if clash:
        raise ConfigError("--set", clash[0], "a key not also swept with --grid")
    base = effective_config(name, dict(sets)).config.seed
    cells = []
    for index, combo in enumerate(itertools.product(*texts.values())):
        cell_texts = dict(zip(texts, combo, strict=True))
        config = effective_config(name, {**sets, **cell_texts}).config
        values = {k: getattr(config, k) for k in cell_texts}
        cells.append(Cell(index, values, cell_texts))
    return Plan(name, texts, list(range(base, base + seeds)), sets, cells)


def cell_folder(out: Path, cell: Cell) -> Path:
    return Path(out) / CELLS / cell.name


def seed_folder(out: Path, cell: Cell, seed: int) -> Path:
    return cell_folder(out, cell) / f"seed-{seed}"


def claim(out, plan: Plan) -> Path:
    """Create `out` and write its manifest, or check the manifest already there: a folder holding
    another sweep (another experiment, grid, seeds or --set values) is refused in one line."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunFolderError(out, "exists and is not a folder")
    wanted = plan.manifest()
    path = out / MANIFEST
    if path.exists():
        held = _files.read_json(path, "a sweep manifest written by gradflow")
        if held != wanted:
            diff = [k for k in wanted if not isinstance(held, dict) or held.get(k) != wanted[k]]
            what = ", ".join(f"{k} {_short(held, k)}" for k in diff)
            raise RunFolderError(
                out,
                f"holds another sweep ({what}; this one: "
                + ", ".join(f"{k} {_short(wanted, k)}" for k in diff)
                + "): use another --out",
            )
        return out
    if out.is_dir() and any(out.iterdir()):
        raise RunFolderError(out, "is not empty and holds no sweep (no manifest.json)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        _files.write_json(path, wanted)
    except OSError as err:
        raise RunFolderError(out, f"cannot be written ({err.strerror})") from None
    return out


def _short(record, key: str) -> str:
    value = record.get(key) if isinstance(record, dict) else None
    return json.dumps(value, separators=(",", ":"))
