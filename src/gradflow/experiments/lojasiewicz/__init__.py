"""`lojasiewicz`: a long L2-regularised conditional-Wasserstein flow of a tanh mean-field ResNet,
measured against the Łojasiewicz–Simon theory (docs/mean-field.md)."""

from .config import LojasiewiczConfig as LojasiewiczConfig
from .run import run as run
