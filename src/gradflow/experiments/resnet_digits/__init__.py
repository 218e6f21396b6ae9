"""`resnet-digits`: activation × init on scikit-learn's digits (the paper's CIFAR table)."""

from .config import DigitsConfig as DigitsConfig
from .run import run_digits as run_digits
