"""`resnet-long`: one deep ResNet flowed to an interpolating minimum (Marion et al. 2024, Fig. 2).
`long_problem(config)` builds its network and data (benchmarks/resnet.py uses it)."""

from .config import LongConfig as LongConfig
from .problem import long_problem as long_problem
from .run import run_long as run_long
