"""The reduced form of benchmarks/marion_reproduction.py (depth 8, the script's lr per layer):
gf.descent on the official script's exported numbers gives the official PyTorch loop's weights and
first step below the level, and the flow predicts that step. Needs PyTorch (the bench
environment); skipped where it is absent."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "marion_reproduction.py"


def test_quick_reproduction_matches_the_official_loop(capsys):
    spec = importlib.util.spec_from_file_location("marion_reproduction", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--quick"])
    assert out["weights_relative_difference"] < 1e-12
    official, ours = out["first_step_official"]["1.0"], out["first_step_gradflow"]["1.0"]
    assert official is not None and ours == official
    assert abs(out["flow"]["1.0"]["relative_difference"]) < 0.01
    assert "gf.descent" in capsys.readouterr().out
