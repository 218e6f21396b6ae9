"""Diagnostics: read a model or a `Trajectory` and return named numbers.

Each submodule holds one idea (its docstring gives the equations and the `docs/` page with the
mathematics); the public names are re-exported here. Every diagnostic that returns more than one
number returns a record: a frozen dataclass whose fields are read as attributes, with `as_dict()`
for a JSON summary. Diagnostics that evaluate the objective take `loss=` (default: the loss a
trajectory names in its `info`, 'half_mse' for a model). The fits (`loglog_slope`,
`exponential_rate`, `Slope`) live in `gradflow.fits` and are re-exported here.
"""

from ..fits import Slope as Slope
from ..fits import exponential_rate as exponential_rate
from ..fits import loglog_slope as loglog_slope
from .conservation import AdjacencyInvariants as AdjacencyInvariants
from .conservation import ConservationDrift as ConservationDrift
from .conservation import adjacency_invariants as adjacency_invariants
from .conservation import conservation_drift as conservation_drift
from .convergence import KernelPL as KernelPL
from .convergence import PLRatio as PLRatio
from .convergence import pl_ratio as pl_ratio
from .convergence import tangent_kernel_pl as tangent_kernel_pl
from .critical_points import CriticalPoint as CriticalPoint
from .critical_points import critical_points as critical_points
from .depth import DepthSmoothness as DepthSmoothness
from .depth import depth_distance as depth_distance
from .depth import depth_smoothness as depth_smoothness
from .depth import ode_gap as ode_gap
from .depth import ode_gaps as ode_gaps
from .escape import EscapeEstimate as EscapeEstimate
from .escape import escape_probe as escape_probe
from .escape import orbit_dimension as orbit_dimension
from .escape import rescaling_tangents as rescaling_tangents
from .hessian import hessian_matrix as hessian_matrix
from .hessian import hessian_spectrum as hessian_spectrum
from .hessian import lanczos_eigenvalues as lanczos_eigenvalues
from .lojasiewicz import EnergyDissipation as EnergyDissipation
from .lojasiewicz import LojasiewiczFit as LojasiewiczFit
from .lojasiewicz import energy_dissipation as energy_dissipation
from .lojasiewicz import lojasiewicz_fit as lojasiewicz_fit
from .particles import particle_gradients as particle_gradients
from .paths import cumulative_path_length as cumulative_path_length
from .paths import distance_travelled as distance_travelled
from .timeline import SaddleTimeline as SaddleTimeline
from .timeline import saddle_timeline as saddle_timeline
from .transport import ConditionalTransport as ConditionalTransport
from .transport import TransportResult as TransportResult
from .transport import conditional_wasserstein as conditional_wasserstein
from .transport import conditional_wasserstein_details as conditional_wasserstein_details
from .transport import wasserstein as wasserstein
from .transport import wasserstein_details as wasserstein_details
