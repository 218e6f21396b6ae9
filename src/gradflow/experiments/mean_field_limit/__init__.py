"""`mean-field-limit`: flows with M and 2M particles per layer (nested draws) compared at one time,
as M grows (docs/mean-field.md)."""

from .config import MeanFieldLimitConfig as MeanFieldLimitConfig
from .run import run as run
