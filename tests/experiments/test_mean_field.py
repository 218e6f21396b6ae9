"""The quick variants of the mean-field experiments run and write their files (slow: each quick
run takes 20–40 s of CPU, mostly compilation)."""

import json

import jax
import numpy as np
import pytest

import gradflow as gf
from gradflow.experiments import run_experiment

FILES = ("config.json", "summary.json", "metrics.parquet", "captions.json", "report.html")


@pytest.fixture(scope="module", params=["conditional-ot", "lojasiewicz", "mean-field-limit"])
def run(request, quick_experiment):
    key = f"test_experiments_mean_field-{request.param}-quick"
    overrides = {"quick": "true"}
    if request.param == "conditional-ot":
        # M = 16 only: its s = 8 flow is the stiff one (RKC); the M = 1, s = 8 flow (3,300 RKC
        # steps) would double the test's time. scripts/compare_baseline.py runs the whole preset.
        overrides["particles"] = "16"
    folder, summary = quick_experiment(key, request.param, overrides)
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


def test_data_and_init_files(tmp_path):
    # --set data=FILE.npz replaces the teacher (checked against in_dim/out_dim), --set
    # init=FILE.npz the initial particles (arrays u, w, b), each refused in one line naming it
    data = gf.data.tanh_teacher(jax.random.PRNGKey(9), 7, 2, 1)
    model = gf.models.MeanFieldResNet(2, 4, 2, 2, 1, key=jax.random.PRNGKey(3))
    gf.data.save_npz(tmp_path / "data.npz", data)
    gf.models.save_parameters(tmp_path / "init.npz", model)
    files = {"data": str(tmp_path / "data.npz"), "init": str(tmp_path / "init.npz")}
    cfg = gf.experiments.make_config("lojasiewicz", {"preset": "tiny", **files})
    np.testing.assert_array_equal(np.asarray(cfg.dataset(None).y), np.asarray(data.y))
    np.testing.assert_array_equal(np.asarray(cfg.model(None).w), np.asarray(model.w))
    assert cfg.samples() == 7
    for name in ("conditional-ot", "mean-field-limit"):
        assert gf.experiments.make_config(name, {"data": files["data"]}).samples() == 7
    with pytest.raises(gf.ConfigError, match="^invalid init=.u of shape"):
        gf.experiments.make_config("lojasiewicz", {"init": files["init"]})  # 8 particles, not 2
    with pytest.raises(gf.ConfigError, match="^invalid data="):
        gf.experiments.make_config("mean-field-limit", {"data": files["data"], "out_dim": 2})
