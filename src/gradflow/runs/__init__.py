"""Run folders: the runner (`run_experiment`, `resume_experiment`), the `RunContext` handed to
experiments, the folder mechanics (lock, atomic writes, status), provenance and the report.

`RunContext` is imported eagerly (experiments use it); the rest on first use, because the runner
imports `gradflow.experiments`, which imports this package.
"""

from .._files import RunFolderError as RunFolderError
from ._context import RunContext as RunContext

_LAZY = {
    "run_experiment": "_runner",
    "resume_experiment": "_runner",
    "read_config": "_runner",
    "plan": "_runner",
    "default_folder": "_runner",
    "write_report": "_report",
    "build_report": "_report",
    "provenance": "_provenance",
    "RunFolder": "_folder",
    "SignalGuard": "_signals",
    "exit_code": "_signals",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
