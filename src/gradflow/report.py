"""The HTML report of a run folder, built only from the files in it (so `gradflow report DIR`
can rebuild it at any time): config.json, summary.json, captions.json and the PNG plots."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from ._errors import ConfigError


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list) and len(value) > 12:
        return html.escape(json.dumps(value[:12])[:-1] + f", … ({len(value)} values)]")
    if isinstance(value, dict | list):
        return html.escape(json.dumps(value, default=str))
    return html.escape(str(value))


def _table(mapping: dict) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(v)}</td></tr>" for k, v in mapping.items()
    )
    return f"<table>{rows}</table>"


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { text-align: left; padding: 3px 10px; border-bottom: 1px solid #eee; vertical-align: top; }
th { font-weight: 600; white-space: nowrap; }
figure { margin: 1.5em 0; } figcaption { color: #555; font-size: 0.9em; }
img { max-width: 100%; border: 1px solid #eee; }
.failed { color: #a00; font-weight: 600; }
"""


def write_report(folder) -> Path:
    """Write `folder/report.html` from the run folder's files and return its path."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ConfigError("DIR", str(folder), "a run folder containing config.json")
    config = json.loads((folder / "config.json").read_text())
    summary = (
        json.loads((folder / "summary.json").read_text())
        if (folder / "summary.json").is_file()
        else {"status": "no summary.json (the run did not finish)"}
    )
    captions = (
        json.loads((folder / "captions.json").read_text())
        if (folder / "captions.json").is_file()
        else {"captions": {}, "notes": ""}
    )
    name = config.get("experiment", folder.name)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>gradflow: {html.escape(name)}"
        f"</title><style>{_STYLE}</style></head><body>",
        f"<h1>gradflow run: {html.escape(name)}</h1>",
    ]
    if summary.get("status") == "failed":
        parts.append(f"<p class='failed'>{html.escape(str(summary.get('error')))}</p>")
    if captions.get("notes"):
        parts.append(f"<p>{html.escape(captions['notes'])}</p>")
    parts.append("<h2>Summary</h2>" + _table(summary))
    for png in sorted(folder.glob("*.png")):
        data = base64.b64encode(png.read_bytes()).decode()
        caption = captions.get("captions", {}).get(png.stem, png.stem)
        parts.append(
            f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(png.stem)}'>"
            f"<figcaption><b>{html.escape(png.name)}</b>: {html.escape(caption)}</figcaption></figure>"
        )
    parts.append("<h2>Configuration</h2>" + _table(config))
    files = ", ".join(sorted(p.name for p in folder.iterdir() if p.name != "report.html"))
    parts.append(f"<h2>Files</h2><p>{html.escape(files)}</p></body></html>")
    path = folder / "report.html"
    path.write_text("\n".join(parts))
    return path
