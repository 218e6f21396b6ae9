"""Deprecated location of the objective's pieces (kept while the experiments move to the public
API); use `gradflow.GradientFlowProblem`."""

from ._problem import l2_penalty as l2_penalty
from ._problem import trainable_masses as trainable_masses
