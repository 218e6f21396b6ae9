"""The experiment contract: a config dataclass, a `run(config, progress) -> Result` function, and a
registry entry. The runner (`gradflow.experiments.run_experiment`) turns one into a run folder.

To add an experiment, write a module in `gradflow/experiments/` that defines

    @dataclasses.dataclass
    class MyConfig(ExperimentConfig):       # every field has a default; `seed` and `quick` inherited
        depth: int = 3

    @register("my-experiment", "one line saying what it shows", MyConfig)
    def run(config: MyConfig, progress: Progress) -> Result: ...

and import it in `gradflow/experiments/__init__.py`. `quick=True` must give a reduced
configuration that finishes in under a minute and writes the same files.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from .._errors import ConfigError


@dataclasses.dataclass
class ExperimentConfig:
    """Fields every experiment has: the seed of all randomness, and the quick (reduced) variant."""

    seed: int = 0
    quick: bool = False

    def validate(self) -> None:
        """Raise `ConfigError` for invalid fields. Subclasses extend (and call super)."""
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError("seed", self.seed, "a non-negative integer")


@dataclasses.dataclass
class Result:
    """What an experiment returns; the runner writes it to the run folder.

    - `summary`: every headline number, named (JSON-serialisable: numbers, strings, lists, dicts).
    - `metrics`: a pandas DataFrame of scalar series (written to metrics.parquet).
    - `trajectory`: the main `Trajectory` (written to trajectory.nc), or None.
    - `figures`: {file stem: matplotlib Figure}, written as PNG.
    - `captions`: {file stem: one sentence saying what the figure shows}, used in the report.
    - `notes`: a few sentences for the report (what to look at, what the theory predicts).
    """

    summary: dict[str, Any]
    metrics: Any = None
    trajectory: Any = None
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)
    captions: dict[str, str] = dataclasses.field(default_factory=dict)
    notes: str = ""


class Progress:
    """Progress reporting handed to experiments. The base class shows nothing (tests, library use);
    the CLI passes a rich-backed one.

    Use as `with progress.task("flows", total=n) as advance: ... advance()`.
    """

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        yield lambda n=1: None

    def log(self, message: str) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    config_cls: type
    run: Callable[[Any, Progress], Result]


REGISTRY: dict[str, Experiment] = {}


def register(name: str, description: str, config_cls: type):
    """Decorator registering `run(config, progress) -> Result` as the experiment `name`."""

    def decorator(run):
        REGISTRY[name] = Experiment(name, description, config_cls, run)
        return run

    return decorator
