"""`resnet-pl`: width against sample size, the PL constant at init and along the flow."""

from .config import PLConfig as PLConfig
from .run import run_pl as run_pl
