"""`resnet-depth`: ResNet weights stay smooth in depth and approach the neural ODE at rate 1/L
(Marion et al. 2024, Fig. 1). `config` holds `DepthConfig`, `run` the experiment, `figures` its
plots."""

from .config import DepthConfig as DepthConfig
from .run import run_depth as run_depth
