"""The HTML report of a run folder (moved to `gradflow.runs`; kept importable here)."""

from .runs._report import build_report as build_report
from .runs._report import write_report as write_report
