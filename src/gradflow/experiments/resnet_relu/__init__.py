"""`resnet-relu`: the ReLU counter-example, whose trained successive differences stay Ω(1)."""

from .config import ReluConfig as ReluConfig
from .run import run_relu as run_relu
