"""The experiment contract: a config class, a `run(config, context) -> Result` function, and a
registry entry. The runner (`gradflow.runs`, re-exported as `gradflow.experiments.run_experiment`)
turns one into a run folder.

To add an experiment, write

    @dataclasses.dataclass(frozen=True)
    class MyConfig(ExperimentConfig):          # `seed` is inherited
        QUICK = dict(depth=2)                   # under a minute, the same files
        TINY = dict(depth=1)                    # a few seconds (fault injection, sweeps)
        depth: int = param(3, "number of layers", check=count(), size=True)

    @register("my-experiment", "one line saying what it shows", MyConfig)
    def run(config: MyConfig, context: RunContext) -> Result: ...

and import it in `gradflow/experiments/__init__.py`. An experiment whose seeds can be solved
together (one `gf.Ensemble` flow) may also pass `run_seeds=`: a function `(configs, context) ->
iterable of Result` given configs that differ only in `seed`, giving what `run` would return for
each (to the flow's tolerance), in order; a generator lets the sweep write each seed's folder
(and close its figures) before the next is made. `gradflow sweep` uses it for the seeds of a cell; without it the
seeds are separate runs in one warm worker process. The context (`gradflow.runs.RunContext`)
reports progress (`with context.task("flows", total=n) as advance: ... advance()`, which is
also where an interrupted run stops), logs, and gives checkpoint folders for long flows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from .._errors import ConfigError
from ._config import ExperimentConfig, field_specs

RESERVED_KEYS = ("preset", "quick")


@dataclasses.dataclass
class Result:
    """What an experiment returns; the runner writes it to the run folder.

    - `summary`: every headline number, named (JSON-serialisable: numbers, strings, lists, dicts).
    - `metrics`: a pandas DataFrame of scalar series (written to metrics.parquet).
    - `trajectory`: the main `Trajectory` (written to trajectory.nc), or None.
    - `figures`: {file stem: matplotlib Figure}, written as PNG; the first is the headline (the
      report keeps this order).
    - `captions`: {file stem: one sentence saying what the figure shows}, used in the report.
    - `notes`: a few sentences for the report (what to look at, what the theory predicts).
    - `incomplete`: one line per flow that did not reach its end (stopped at a step budget,
      diverged, ...). A run with any is marked `failed` with these reasons, its results still
      written.
    """

    summary: dict[str, Any]
    metrics: Any = None
    trajectory: Any = None
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)
    captions: dict[str, str] = dataclasses.field(default_factory=dict)
    notes: str = ""
    incomplete: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def with_figures(cls, drawn: tuple[dict[str, Any], dict[str, str]], **fields) -> Result:
        """A `Result` whose `figures` and `captions` are the pair `drawn` that an experiment's
        figures function returns (see `gradflow.plotting.figures_of`); `fields` are the others."""
        figures, captions = drawn
        return cls(figures=figures, captions=captions, **fields)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A registered experiment: its name, one-line description, config class and run function;
    `run_seeds` (optional) runs several seeds of one configuration together (see `register`)."""

    name: str
    description: str
    config_cls: type
    run: Callable[[Any, Any], Result]
    run_seeds: Callable[[list, Any], Iterable[Result]] | None = None


REGISTRY: dict[str, Experiment] = {}


def register(name: str, description: str, config_cls: type, *, run_seeds=None):
    """Decorator registering `run(config, context) -> Result` as the experiment `name`.

    `run_seeds(configs, context) -> iterable of Result` (optional): the seeds of one configuration
    run together, e.g. as one ensemble flow; `configs` differ only in `seed` and result i must be
    what `run(configs[i], ...)` gives (sweeps write each into its own run folder as it comes; a
    seed the hook does not reach, because it raised or stopped short, runs on its own)."""
    if run_seeds is not None and not callable(run_seeds):
        raise TypeError(f"run_seeds of {name} is not callable")
    if not (dataclasses.is_dataclass(config_cls) and issubclass(config_cls, ExperimentConfig)):
        raise TypeError(f"{config_cls} is not an ExperimentConfig dataclass")
    if not config_cls.__dataclass_params__.frozen:
        raise TypeError(f"{config_cls.__name__} must be a frozen dataclass")
    specs = field_specs(config_cls)
    for key in RESERVED_KEYS:
        if key in specs:
            raise TypeError(f"{config_cls.__name__}: '{key}' is a reserved --set key")
    for preset in ("QUICK", "TINY"):
        unknown = set(getattr(config_cls, preset)) - set(specs)
        if unknown:
            raise TypeError(f"{config_cls.__name__}.{preset} sets unknown fields {sorted(unknown)}")

    def decorator(run):
        REGISTRY[name] = Experiment(name, description, config_cls, run, run_seeds)
        return run

    return decorator


def get_experiment(name: str) -> Experiment:
    """The registered experiment `name`, or `ConfigError` listing the names."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ConfigError("experiment", name, "one of " + ", ".join(sorted(REGISTRY)))
    return REGISTRY[name]


def __getattr__(name: str):
    # `Progress` was the object handed to experiments before `RunContext` replaced it; a
    # `RunContext()` without a folder shows nothing, as `Progress()` did (benchmarks use it).
    if name == "Progress":
        from ..runs import RunContext

        return RunContext
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
