"""The quick variants of the mean-field experiments run and write their files (slow: each quick
run takes 20–40 s of CPU, mostly compilation)."""

import json

import pytest

import gradflow as gf
from gradflow.experiments import run_experiment

FILES = ("config.json", "summary.json", "metrics.parquet", "captions.json", "report.html")


@pytest.fixture(scope="module", params=["conditional-ot", "lojasiewicz", "mean-field-limit"])
def run(request, quick_experiment):
    key = f"test_experiments_mean_field-{request.param}-quick"
    folder, summary = quick_experiment(key, request.param, {"quick": "true"})
    return request.param, folder, summary


@pytest.mark.slow
def test_quick_run_writes_its_files(run):
    name, folder, summary = run
    for f in FILES:
        assert (folder / f).is_file(), f
    # conditional-ot's s = 8 flows are stiff: solver='auto' takes RKC for them, and they reach t1
    # within quick's step budget (Tsit5 stopped at t ≈ 30)
    assert summary["status"] == "ok" and not summary.get("incomplete")
    if name == "conditional-ot":
        assert {r["solver"] for r in summary["runs"] if r["init_scale"] == 8.0} == {"rkc"}
        assert {r["solver"] for r in summary["runs"] if r["init_scale"] == 0.5} == {"tsit5"}
    assert len(list(folder.glob("*.png"))) >= 2
    captions = json.loads((folder / "captions.json").read_text())["captions"]
    assert all(captions.get(p.stem) for p in folder.glob("*.png"))


@pytest.mark.slow
def test_quick_run_headline_numbers(run):
    name, folder, s = run
    if name == "conditional-ot":
        assert s["separating_particles_per_layer"]["0.5"] is not None
        big = [r for r in s["runs"] if r["particles"] == 16]
        assert all(r["final_risk"] < 1e-8 for r in big)
        assert s["min_pl_ratio_converged_small_init"] > 0
        assert (folder / "trajectory.nc").is_file()
    elif name == "lojasiewicz":
        assert s["grad_norm_below_1e-10"]
        assert s["path_length_converged"]
        assert s["decay_kind"] == "exponential" and s["rate_agrees"]
        assert s["energy_dissipation"]["residual_max"] < 1e-4
        assert s["second_moment_final"] <= s["second_moment_bound_F0_over_l2"]
    else:
        assert s["wc_decreasing"]
        assert s["wc_final_slope"] < 0


@pytest.mark.parametrize(
    "name, key, value",
    [
        ("conditional-ot", "particles", "0,4"),
        ("lojasiewicz", "l2", "-1"),
        ("lojasiewicz", "l2", "0"),
        ("mean-field-limit", "particles", "3,4"),
    ],
)
def test_bad_config(name, key, value, tmp_path):
    with pytest.raises(gf.ConfigError):
        if name == "mean-field-limit":
            run_experiment(name, {key: value, "quick": "false"}, out=tmp_path)
        else:
            gf.experiments.make_config(name, {key: value})
