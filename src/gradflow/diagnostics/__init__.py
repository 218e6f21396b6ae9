"""Diagnostics: read a model or a `Trajectory` and return named numbers (see MODELS.md).

Each submodule holds one idea; the public names are re-exported here.
"""

from .transport import TransportResult as TransportResult
from .transport import conditional_wasserstein as conditional_wasserstein
from .transport import cumulative_path_length as cumulative_path_length
from .transport import distance_travelled as distance_travelled
from .transport import wasserstein as wasserstein

from .lojasiewicz import LojasiewiczFit as LojasiewiczFit
from .lojasiewicz import energy_dissipation as energy_dissipation
from .lojasiewicz import lojasiewicz_fit as lojasiewicz_fit
