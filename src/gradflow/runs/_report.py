"""The HTML report of a run folder, built only from the files in it (so `gradflow report DIR`
rebuilds the same report at any time): config.json, summary.json, captions.json and the figures.

The status comes first and is prominent; then the notes, the figures in the experiment's order
(the first is the headline), the summary (numbers to 4 significant digits), the effective
configuration (which values the user set, which came from the preset) and the provenance. Only
regular files inside the folder are embedded (never a symlink, nothing outside it).
"""

from __future__ import annotations

import base64
import html
import os
import stat
from pathlib import Path
from typing import Any

from .. import _files
from .._errors import ConfigError, FileFormatError

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { text-align: left; padding: 3px 10px; border-bottom: 1px solid #eee; vertical-align: top; }
th { font-weight: 600; white-space: nowrap; }
figure { margin: 1.5em 0; } figcaption { color: #555; font-size: 0.9em; }
img { max-width: 100%; border: 1px solid #eee; }
.status { font-size: 1.3em; font-weight: 700; padding: 0.5em 0.8em; border-radius: 4px; }
.ok { background: #e6f4ea; color: #116329; }
.failed { background: #fdecea; color: #a00; }
.interrupted, .running, .unknown { background: #fff4e5; color: #8a5300; }
.set { font-weight: 700; } .preset { color: #1a5fb4; } .default { color: #666; }
"""

_MAX_ITEMS = 12


def fmt(value: Any) -> str:
    """A value as report text: floats to 4 significant digits, long lists shortened."""
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "none"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        shown = ", ".join(fmt(v) for v in value[:_MAX_ITEMS])
        more = f", … ({len(value)} values)" if len(value) > _MAX_ITEMS else ""
        return f"[{shown}{more}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def _table(mapping: dict, classes: dict | None = None) -> str:
    rows = []
    for key, value in mapping.items():
        cls = f" class='{classes[key]}'" if classes and key in classes else ""
        rows.append(
            f"<tr{cls}><th>{html.escape(str(key))}</th><td>{html.escape(fmt(value))}</td></tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


def _read_json(folder: Path, name: str, required: bool):
    path = folder / name
    if not path.exists() and not path.is_symlink():
        if required:
            raise ConfigError("DIR", str(folder), f"a run folder containing {name}")
        return None
    if path.is_symlink() or not path.is_file():
        raise FileFormatError(path, "not a regular file", f"{name} written by gradflow")
    value = _files.read_json(path, f"{name} written by gradflow (a JSON object)")
    if not isinstance(value, dict):
        raise FileFormatError(path, "not a JSON object", f"{name} written by gradflow")
    return value


def _regular_file_bytes(folder: Path, name: str) -> bytes | None:
    """The bytes of `folder/name` if it is a regular file directly inside `folder` (opened
    without following symlinks), else None."""
    if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
        return None
    try:
        fd = os.open(folder / name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    except OSError:
        return None
    finally:
        os.close(fd)


def _figures(folder: Path, captions: dict) -> list[tuple[str, str, bytes]]:
    """(stem, caption, png bytes) in the experiment's order: captions.json's `figures`, else its
    captions' order (reports of folders written before `figures` existed)."""
    texts = captions.get("captions") if isinstance(captions.get("captions"), dict) else {}
    order = captions.get("figures")
    if not isinstance(order, list):
        order = list(texts)
    out = []
    for stem in dict.fromkeys(s for s in order if isinstance(s, str)):
        data = _regular_file_bytes(folder, f"{stem}.png")
        if data is not None:
            out.append((stem, str(texts.get(stem, stem)), data))
    return out


def build_report(folder, summary: dict | None = None) -> str:
    """The report's HTML. `summary` replaces summary.json (the runner writes the report just
    before summary.json; both hold the same values)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError("DIR", str(folder), "a run folder containing config.json")
    record = _read_json(folder, "config.json", required=True)
    if summary is None:
        summary = _read_json(folder, "summary.json", required=False) or {
            "status": "unknown",
            "error": "no summary.json (the run did not start its work)",
        }
    captions = _read_json(folder, "captions.json", required=False) or {}
    config = record.get("config") if isinstance(record.get("config"), dict) else record
    name = str(record.get("experiment", folder.name))
    status = str(summary.get("status", "unknown"))
    css = status if status in ("ok", "failed", "interrupted", "running") else "unknown"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>gradflow: {html.escape(name)}"
        f"</title><style>{_STYLE}</style></head><body>",
        f"<h1>gradflow run: {html.escape(name)}</h1>",
        f"<p class='status {css}'>status: {html.escape(status)}</p>",
    ]
    for key in ("error", "incomplete"):
        if summary.get(key):
            text = (
                summary[key] if isinstance(summary[key], str) else "; ".join(map(str, summary[key]))
            )
            parts.append(f"<p class='{css}'>{html.escape(key)}: {html.escape(text)}</p>")
    if status in ("interrupted", "running"):
        parts.append(
            "<p>This run did not finish; continue it with "
            f"<code>gradflow run --resume --out {html.escape(str(folder))}</code>.</p>"
        )
    if isinstance(captions.get("notes"), str) and captions["notes"]:
        parts.append(f"<p>{html.escape(captions['notes'])}</p>")
    for stem, caption, data in _figures(folder, captions):
        parts.append(
            f"<figure><img src='data:image/png;base64,{base64.b64encode(data).decode()}' "
            f"alt='{html.escape(stem)}'><figcaption><b>{html.escape(stem)}.png</b>: "
            f"{html.escape(caption)}</figcaption></figure>"
        )
    parts.append("<h2>Summary</h2>" + _table(summary))
    user = record.get("set_by_user") if isinstance(record.get("set_by_user"), list) else []
    preset = record.get("preset", "full")
    parts.append(
        f"<h2>Configuration</h2><p>experiment {html.escape(name)}, preset "
        f"<b>{html.escape(str(preset))}</b>; values you set are in bold"
        + (": " + html.escape(", ".join(map(str, user))) if user else " (none)")
        + ".</p>"
        + _table(config, {k: "set" for k in user})
    )
    if isinstance(record.get("provenance"), dict):
        parts.append("<h2>Provenance</h2>" + _table(record["provenance"]))
    try:
        names = sorted(  # regular files only (not checkpoints/, which a success removes)
            p.name
            for p in folder.iterdir()
            if p.name != "report.html" and not p.name.startswith(".") and p.is_file()
        )
    except OSError:
        names = []
    parts.append(f"<h2>Files</h2><p>{html.escape(', '.join(names))}</p></body></html>")
    return "\n".join(parts)


def write_report(folder, summary: dict | None = None) -> Path:
    """Write `folder/report.html` (atomically) from the run folder's files; return its path.
    Raises `ConfigError` (one line) for a folder that is not a run folder or whose JSON files are
    damaged, `OSError` if it cannot be written."""
    folder = Path(folder)
    text = build_report(folder, summary)
    return _files.write_text(folder / "report.html", text)
