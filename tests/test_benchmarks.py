"""The accelerator benchmark's reduced CPU form runs and reports sane numbers (issue 11: the
script is tested here; the full run is for a GPU, see benchmarks/results.md)."""

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_accelerator_quick_runs(capsys):
    out = _load("accelerator").main(["--quick", "--no-torch", "--repeat", "1"])
    assert out["backend"] == "cpu"
    assert out["ceilings"]["copy_bytes_per_s"] > 0 and out["ceilings"]["matmul_flops_per_s"] > 0
    (row,) = out["mean_field"]
    assert row["particles"] == 1000 and row["gradflow_s"] > 0
    assert 0 < row["of_floor"] < 2  # a floor is a floor (up to timing noise)
    assert [r["seeds"] for r in out["ensembles"]] == [1, 2]
    assert out["ensembles"][0]["ratio_to_one_seed"] == 1.0
    long = out["resnet_long"]
    assert long["flow_time"] is not None and long["gd_steps_predicted"] > 0
    printed = capsys.readouterr().out
    assert "backend cpu" in printed and "% of floor" in printed
