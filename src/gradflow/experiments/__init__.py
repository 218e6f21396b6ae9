"""Named experiments. Each module registers itself; `REGISTRY` maps names to experiments."""

# Experiment modules (each registers itself on import).
from . import deep_linear as deep_linear  # noqa: E402,F401
from . import mean_field as mean_field  # noqa: E402,F401
from . import resnet as resnet  # noqa: E402,F401
from ._base import REGISTRY as REGISTRY
from ._base import Experiment as Experiment
from ._base import ExperimentConfig as ExperimentConfig
from ._base import Progress as Progress
from ._base import Result as Result
from ._base import register as register
from ._runner import get_experiment as get_experiment
from ._runner import make_config as make_config
from ._runner import run_experiment as run_experiment
