"""Experiment `implicit-bias`: logistic regression on separable data converges in direction to
the max-margin separator, like 1/log t (docs/implicit-bias.md). See `run.py`."""

from . import run as run  # noqa: F401  (registers the experiment)
