"""Deprecated location of `flow`, `descent` and `Ensemble` (kept while the experiments move to the
public API); use `gradflow.flow`, `gradflow.descent`, `gradflow.Ensemble`."""

from ._descent import OPTIMIZERS as OPTIMIZERS
from ._descent import descent as descent
from ._ensemble import Ensemble as Ensemble
from ._ensemble import ensemble as ensemble
from ._flow import flow as flow
from ._solvers import SOLVERS as SOLVERS
