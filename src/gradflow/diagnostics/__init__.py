"""Diagnostics: read a model or a `Trajectory` and return named numbers (see MODELS.md).

Each submodule holds one idea; the public names are re-exported here.
"""

from .conservation import adjacency_invariants as adjacency_invariants
from .conservation import conservation_drift as conservation_drift
from .convergence import KernelPL as KernelPL
from .convergence import PLRatio as PLRatio
from .convergence import Slope as Slope
from .convergence import exponential_rate as exponential_rate
from .convergence import loglog_slope as loglog_slope
from .convergence import pl_ratio as pl_ratio
from .convergence import tangent_kernel_pl as tangent_kernel_pl
from .critical_points import CriticalPoint as CriticalPoint
from .critical_points import SaddleTimeline as SaddleTimeline
from .critical_points import critical_points as critical_points
from .critical_points import saddle_timeline as saddle_timeline
from .depth import DepthSmoothness as DepthSmoothness
from .depth import depth_distance as depth_distance
from .depth import depth_smoothness as depth_smoothness
from .depth import ode_gap as ode_gap
from .depth import ode_gaps as ode_gaps
from .hessian import hessian_matrix as hessian_matrix
from .hessian import hessian_spectrum as hessian_spectrum
from .lojasiewicz import LojasiewiczFit as LojasiewiczFit
from .lojasiewicz import energy_dissipation as energy_dissipation
from .lojasiewicz import lojasiewicz_fit as lojasiewicz_fit
from .transport import TransportResult as TransportResult
from .transport import conditional_wasserstein as conditional_wasserstein
from .transport import cumulative_path_length as cumulative_path_length
from .transport import distance_travelled as distance_travelled
from .transport import wasserstein as wasserstein
