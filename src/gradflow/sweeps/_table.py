"""A sweep's table: one row per (cell, seed), read from the run folders' summary.json files.

Columns: one per grid key (its typed value), `seed`, `status` ('ok', 'failed', ... or 'missing'
for a run with no summary), `error` (why a run failed, else None), `folder` (relative to the
sweep folder), then every numeric summary value flattened to a column named by its key path
joined with dots: {"slopes": {"tied": {"slope": 1.0}}} gives `slopes.tied.slope`; list entries
are indexed, {"learn_times": [1.6, 3.3]} gives `learn_times.0`, `learn_times.1`. Booleans are
kept (as booleans); text is left out. A value absent from a row is missing (NaN / None).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .. import _files
from ._grid import Plan, seed_folder

RESULTS = "results.parquet"
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
BOOKKEEPING = ("experiment", "status", "error")


def flatten(summary: Any, prefix: str = "") -> dict[str, Any]:
    """The numeric (and boolean) leaves of a summary as {dotted key path: value}."""
    out: dict[str, Any] = {}
    if isinstance(summary, dict):
        items = summary.items()
    elif isinstance(summary, list | tuple):
        items = ((str(i), v) for i, v in enumerate(summary))
    else:
        value = _number(summary)
        if value is not None and prefix:
            out[prefix] = value
        return out
    for key, value in items:
        if not prefix and key in BOOKKEEPING:
            continue
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _number(value: Any):
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str) and value.lower() in _NON_FINITE:  # how summary.json writes NaN
        return _NON_FINITE[value.lower()]
    return None


def rows(out, plan: Plan, errors: dict | None = None) -> list[dict[str, Any]]:
    """The table's rows, in cell order then seed order. `errors` {(cell index, seed): text} are
    the driver's records of runs that left no summary (a worker that died)."""
    errors = errors or {}
    out = Path(out)
    table = []
    for cell in plan.cells:
        for seed in plan.seeds:
            folder = seed_folder(out, cell, seed)
            try:
                summary = _files.read_json(folder / "summary.json")
            except Exception:  # noqa: BLE001  (no summary: the row says 'missing')
                summary = None
            if not isinstance(summary, dict):
                summary = {"status": "missing", "error": errors.get((cell.index, seed))}
            row = {**cell.values, "seed": seed, "status": summary.get("status", "unknown")}
            row["error"] = summary.get("error") or errors.get((cell.index, seed))
            row["folder"] = str(folder.relative_to(out))
            row.update(flatten(summary))
            table.append(row)
    return table


def frame(table: list[dict[str, Any]], plan: Plan):
    """The rows as a pandas DataFrame with the grid keys, seed, status, error, folder first."""
    import pandas as pd

    df = pd.DataFrame(table)
    first = [*plan.grid, "seed", "status", "error", "folder"]
    rest = [c for c in df.columns if c not in first]
    df = df[first + rest]
    for key in plan.grid:  # tuples (e.g. a swept list value) are stored as their text
        if df[key].map(lambda v: isinstance(v, tuple | list)).any():
            df[key] = df[key].map(
                lambda v: ",".join(map(str, v)) if isinstance(v, tuple | list) else v
            )
    df["error"] = df["error"].astype(object).where(df["error"].notna(), None)
    return df


def write(out, df) -> Path:
    """Write `df` to DIR/results.parquet atomically."""
    return _files.atomic_write(Path(out) / RESULTS, lambda tmp: df.to_parquet(tmp, index=False))


def read(out):
    """The table of a sweep folder (DIR/results.parquet) as a DataFrame."""
    import pandas as pd

    return pd.read_parquet(Path(out) / RESULTS)
