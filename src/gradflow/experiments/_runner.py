"""Turn an experiment into a run folder: config.json, summary.json, metrics.parquet,
trajectory.nc, *.png, report.html. Partial results are written even when a run fails."""

from __future__ import annotations

import dataclasses
import json
import math
import time
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ConfigError, DivergenceError, SolverError
from ._base import REGISTRY, ExperimentConfig, Progress, Result


def get_experiment(name: str):
    if name not in REGISTRY:
        raise ConfigError("experiment", name, "one of " + ", ".join(sorted(REGISTRY)))
    return REGISTRY[name]


def _parse_value(key: str, text: str, annotation) -> Any:
    """Parse a `--set key=value` string into the field's type."""
    origin = typing.get_origin(annotation)
    accepted = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        if text.strip().lower() in ("none", "null") and optional:
            return None
        try:
            return _parse_value(key, text, args[0])
        except ConfigError as err:
            or_none = " or none" if optional else ""
            raise ConfigError(key, text, err.accepted + or_none) from None
    try:
        if annotation is bool:
            low = text.strip().lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if annotation is int:
            return int(text)
        if annotation is float:
            return float(text)
        if annotation is str:
            return text
        if origin in (list, tuple):
            (inner,) = set(typing.get_args(annotation)) - {Ellipsis}
            text = text.strip()
            items = json.loads(text) if text.startswith("[") else [t for t in text.split(",") if t]
            return origin(_parse_value(key, str(v), inner) for v in items)
    except (ValueError, TypeError, json.JSONDecodeError):
        pass
    else:
        return text
    desc = accepted.get(annotation, f"a value of type {annotation}")
    if origin in (list, tuple):
        desc = "a comma-separated list, e.g. 1,2,3"
    raise ConfigError(key, text, desc)


def make_config(name: str, overrides: dict[str, str] | None = None) -> ExperimentConfig:
    """The experiment's config with `--set key=value` overrides applied and validated."""
    exp = get_experiment(name)
    cls = exp.config_cls
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, text in (overrides or {}).items():
        if key not in fields:
            raise ConfigError(
                "--set", key, f"a key of experiment '{name}': " + ", ".join(sorted(fields))
            )
        values[key] = text if not isinstance(text, str) else _parse_value(key, text, hints[key])
    config = cls(**values)
    config.validate()
    return config


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str):
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(_jsonable(value), indent=2, sort_keys=False) + "\n")


def run_experiment(
    name: str,
    overrides: dict[str, str] | None = None,
    out: str | Path | None = None,
    progress: Progress | None = None,
) -> tuple[Path, Result]:
    """Run experiment `name` and write its run folder (default `runs/NAME`). Returns (folder, result).

    On `DivergenceError`/`SolverError` the partial trajectory and a summary with the error are
    written before the error propagates.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..report import write_report

    exp = get_experiment(name)
    config = make_config(name, overrides)
    folder = Path(out) if out is not None else Path("runs") / name
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", {"experiment": name, **dataclasses.asdict(config)})
    progress = progress or Progress()
    start = time.perf_counter()
    try:
        result = exp.run(config, progress)
    except (DivergenceError, SolverError) as err:
        if err.trajectory is not None:
            err.trajectory.save(folder / "trajectory.nc")
            err.trajectory.save_metrics(folder / "metrics.parquet")
        write_json(
            folder / "summary.json",
            {
                "experiment": name,
                "status": "failed",
                "error": f"{type(err).__name__}: {err}",
                "wall_time_s": time.perf_counter() - start,
            },
        )
        write_report(folder)
        raise
    summary = {
        "experiment": name,
        "status": "ok",
        **result.summary,
        "wall_time_s": time.perf_counter() - start,
    }
    result.summary = summary
    write_json(folder / "summary.json", summary)
    if result.metrics is not None:
        result.metrics.to_parquet(folder / "metrics.parquet", index=False)
    elif result.trajectory is not None:
        result.trajectory.save_metrics(folder / "metrics.parquet")
    if result.trajectory is not None:
        result.trajectory.save(folder / "trajectory.nc")
    for stem, fig in result.figures.items():
        fig.savefig(folder / f"{stem}.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
    write_json(folder / "captions.json", {"captions": result.captions, "notes": result.notes})
    write_report(folder)
    return folder, result
