"""Named experiments. Each experiment package registers itself; `REGISTRY` maps names to them.

The public API: `get_experiment(name)`, `make_config(name, overrides)` (the validated effective
config), `effective_config` (with its preset and the keys set), `run_experiment(name, overrides,
out)` (a run folder; from `gradflow.runs`); and what an experiment is written with:
`ExperimentConfig`, `param`, `checks` (field checks), `Result`, `register`, `RunContext`.
An experiment is a package `experiments/<name>/` (config, run, figures) importing only these and
the public names of `gradflow`. For the command line, the runner and sweeps: `field_specs`,
`coerce` and `to_text` (a field's value from and to `--set` text), `from_record` (a config.json's
effective config), `physical_memory` and `format_bytes`.
"""

from .._memory import physical_memory as physical_memory
from . import _checks as checks  # noqa: F401  (public: the field checks of `param`)
from ._base import REGISTRY as REGISTRY
from ._base import Experiment as Experiment
from ._base import Result as Result
from ._base import get_experiment as get_experiment
from ._base import register as register
from ._config import ExperimentConfig as ExperimentConfig
from ._config import field_specs as field_specs
from ._config import format_bytes as format_bytes
from ._config import param as param
from ._effective import PRESETS as PRESETS
from ._effective import EffectiveConfig as EffectiveConfig
from ._effective import describe as describe
from ._effective import effective_config as effective_config
from ._effective import from_record as from_record
from ._effective import make_config as make_config
from ._parse import coerce as coerce
from ._parse import to_text as to_text

# Experiment packages (each registers itself on import), after the names they import from here.
# isort: split
from . import conditional_ot as conditional_ot  # noqa: E402,F401
from . import deep_linear as deep_linear  # noqa: E402,F401
from . import implicit_bias as implicit_bias  # noqa: E402,F401
from . import lojasiewicz as lojasiewicz  # noqa: E402,F401
from . import mean_field_limit as mean_field_limit  # noqa: E402,F401
from . import resnet_depth as resnet_depth  # noqa: E402,F401
from . import resnet_digits as resnet_digits  # noqa: E402,F401
from . import resnet_long as resnet_long  # noqa: E402,F401
from . import resnet_pl as resnet_pl  # noqa: E402,F401
from . import resnet_relu as resnet_relu  # noqa: E402,F401
from . import saddles as saddles  # noqa: E402,F401

_FROM_RUNS = ("run_experiment", "resume_experiment", "RunContext", "Progress")


def __getattr__(name: str):
    # The runner lives in `gradflow.runs`, which imports this package: loaded on first use.
    if name in _FROM_RUNS:
        from .. import runs

        return runs.RunContext if name == "Progress" else getattr(runs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
