"""The `saddles` experiment: deep-linear critical points beyond the Hessian (escape orders,
directions, orbit dimensions, escape times against the closed form, balanced starts that do not
escape) and `gf.critical_point` applied to the ends of a regularised mean-field flow and of a
ResNet flow (docs/critical-points.md)."""

from . import run as run  # noqa: F401  (registers the experiment)
