"""gradflow: gradient flows of deep networks in their continuous limits, simulated and measured.

float64 is switched on at import: analysis needs it, and mixing precisions silently is worse.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from . import analytic as analytic  # noqa: E402
from . import data as data  # noqa: E402
from . import diagnostics as diagnostics  # noqa: E402
from . import fits as fits  # noqa: E402
from . import geometry as geometry  # noqa: E402
from . import losses as losses  # noqa: E402
from . import models as models  # noqa: E402
from . import plotting as plotting  # noqa: E402
from ._chebyshev import RungeKuttaChebyshev as RungeKuttaChebyshev  # noqa: E402
from ._critical import CriticalPointResult as CriticalPointResult  # noqa: E402
from ._critical import critical_point as critical_point  # noqa: E402
from ._descent import OPTIMIZERS as OPTIMIZERS  # noqa: E402
from ._descent import descent as descent  # noqa: E402
from ._ensemble import Ensemble as Ensemble  # noqa: E402
from ._ensemble import ensemble as ensemble  # noqa: E402
from ._errors import ConfigError as ConfigError  # noqa: E402
from ._errors import DivergenceError as DivergenceError  # noqa: E402
from ._errors import FileFormatError as FileFormatError  # noqa: E402
from ._errors import RunInterrupted as RunInterrupted  # noqa: E402
from ._errors import SolverError as SolverError  # noqa: E402
from ._flow import flow as flow  # noqa: E402
from ._pieces import flow_in_pieces as flow_in_pieces  # noqa: E402
from ._problem import GradientFlowProblem as GradientFlowProblem  # noqa: E402
from ._solvers import SOLVERS as SOLVERS  # noqa: E402
from ._solvers import SolverChoice as SolverChoice  # noqa: E402
from ._solvers import choose_solver as choose_solver  # noqa: E402
from ._solvers import largest_curvature as largest_curvature  # noqa: E402
from ._trajectory import Trajectory as Trajectory  # noqa: E402
from ._trajectory_io import convert_legacy_trajectory as convert_legacy_trajectory  # noqa: E402
from .data import Dataset as Dataset  # noqa: E402

__version__ = "0.1.0"


def __getattr__(name: str):
    # `gf.sweep` lives in `gradflow.sweeps`, which imports the experiments (which import
    # gradflow): loaded on first use.
    if name == "sweep":
        from .sweeps import sweep

        return sweep
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
