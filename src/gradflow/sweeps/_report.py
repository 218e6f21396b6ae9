"""DIR/report.html: each headline number of a sweep against each swept key.

The headline numbers are the summary's top-level numbers (not the nested ones) that vary across
the table, at most `MAX_NUMBERS` of them, in the summary's order. For a number y and a swept key
x, each line is one combination of the other swept keys; its points are the median of y over the
seeds of each cell (runs with status 'ok' only) and its band the quantiles `BAND` over them.
The figures are PNGs embedded in the one HTML file.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from .. import _files
from ._grid import Plan

REPORT = "report.html"
MAX_NUMBERS = 16
BAND = (0.1, 0.9)
_SKIP = ("seed", "resumed")


def headline_numbers(df, plan: Plan) -> list[str]:
    """The top-level numeric summary columns that vary over the runs that succeeded."""
    ok = df[df["status"] == "ok"]
    fixed = {*plan.grid, "seed", "status", "error", "folder", *_SKIP}
    names = []
    for column in df.columns:
        if column in fixed or "." in column or column.startswith("_"):
            continue
        values = ok[column]
        if values.dtype == bool or not np.issubdtype(values.dtype, np.number):
            continue
        if values.notna().any() and values.nunique(dropna=True) > 1:
            names.append(column)
    return names[:MAX_NUMBERS]


def _axis(values) -> tuple[np.ndarray, list[str] | None]:
    """x positions for the swept values: the values themselves when numeric, else 0, 1, ..."""
    try:
        return np.asarray(values, dtype=float), None
    except (TypeError, ValueError):
        return np.arange(len(values), dtype=float), [str(v) for v in values]


def _figure(df, plan: Plan, number: str, key: str) -> str:
    import matplotlib.pyplot as plt

    xs = list(dict.fromkeys(df[key]))
    positions, labels = _axis(xs)
    others = [k for k in plan.grid if k != key]
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    groups = df.groupby(others, sort=False) if others else [((), df)]
    for group, part in groups:
        med, low, high = [], [], []
        for x in xs:
            y = part.loc[(part[key] == x) & (part["status"] == "ok"), number].astype(float)
            y = y[np.isfinite(y)]
            med.append(np.median(y) if len(y) else np.nan)
            low.append(np.quantile(y, BAND[0]) if len(y) else np.nan)
            high.append(np.quantile(y, BAND[1]) if len(y) else np.nan)
        group = group if isinstance(group, tuple) else (group,)
        label = ", ".join(f"{k}={v}" for k, v in zip(others, group, strict=True)) or None
        (line,) = ax.plot(positions, med, marker="o", label=label)
        ax.fill_between(positions, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    if labels is not None:
        ax.set_xticks(positions, labels)
    elif np.all(positions > 0) and positions.max() / positions.min() >= 50:
        ax.set_xscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel(number)
    if others and len(groups) <= 8:
        ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def build(df, plan: Plan) -> str:
    """The report's HTML text."""
    import matplotlib

    matplotlib.use("Agg")
    esc = html.escape
    counts = df["status"].value_counts().to_dict()
    grid = "; ".join(f"{k} = {', '.join(v)}" for k, v in plan.grid.items())
    seeds = f"{plan.seeds[0]}..{plan.seeds[-1]}" if len(plan.seeds) > 1 else str(plan.seeds[0])
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>sweep of {esc(plan.experiment)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "img{margin:4px}td,th{padding:2px 8px;text-align:left}</style></head><body>",
        f"<h1>Sweep of {esc(plan.experiment)}</h1>",
        f"<p>grid: {esc(grid)}; seeds {esc(seeds)} ({len(plan.seeds)} per cell); "
        f"--set {esc(str(plan.sets) if plan.sets else 'none')}.</p>",
        "<p>runs: " + esc(", ".join(f"{n} {s}" for s, n in counts.items())) + ". "
        f"Points: the median over the seeds of a cell (runs with status ok); band: the "
        f"{BAND[0]:.0%}-{BAND[1]:.0%} quantiles. The full table is results.parquet.</p>",
    ]
    failed = df[df["status"] != "ok"]
    if len(failed):
        parts.append(
            "<h2>Runs that did not succeed</h2><table><tr><th>folder</th>"
            "<th>status</th><th>error</th></tr>"
        )
        for _, row in failed.iterrows():
            parts.append(
                f"<tr><td>{esc(row['folder'])}</td><td>{esc(str(row['status']))}</td>"
                f"<td>{esc(str(row['error']))}</td></tr>"
            )
        parts.append("</table>")
    numbers = headline_numbers(df, plan)
    if not numbers:
        parts.append("<p>No headline number varies across the successful runs.</p>")
    for number in numbers:
        parts.append(f"<h2>{esc(number)}</h2><div>")
        for key in plan.grid:
            image = _figure(df, plan, number, key)
            parts.append(
                f"<img alt='{esc(number)} against {esc(key)}' src='data:image/png;base64,{image}'>"
            )
        parts.append("</div>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write(out, df, plan: Plan) -> Path:
    """Write DIR/report.html atomically."""
    return _files.write_text(Path(out) / REPORT, build(df, plan))
