"""`conditional-ot`: the conditional-OT (conditional-Wasserstein) flow of a mean-field ResNet,
particles per layer swept against the spread of the initial measure (docs/mean-field.md)."""

from .config import ConditionalOTConfig as ConditionalOTConfig
from .run import run as run
