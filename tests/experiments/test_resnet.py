"""The quick variants of the ResNet experiments: each writes its files, and its summary.json
headline numbers say what the theory says (Marion, Wu, Sander, Biau, ICLR 2024; MODELS.md §2).

Each quick experiment runs at most once per test session, on first use, even across xdist
workers (slow: 15–60 s each, mostly compilation)."""

import json
import math

import jax
import numpy as np
import pandas as pd
import pytest

import gradflow as gf
from gradflow.experiments import make_config

NAMES = ("resnet-depth", "resnet-long", "resnet-relu", "resnet-pl", "resnet-digits")
PLOTS = {
    "resnet-depth": {"smoothness", "ode_gap", "distance_to_reference", "weights_in_depth"},
    "resnet-long": {"risk", "weights_in_depth"},
    "resnet-relu": {"weights", "differences"},
    "resnet-pl": {"risk_and_pl", "width_sweep"},
    "resnet-digits": {"table"},
}
WITH_TRAJECTORY = {"resnet-depth", "resnet-long"}


@pytest.fixture(scope="module")
def quick(quick_experiment):
    """quick(name) -> (run folder, summary): each quick variant runs once per session (even
    across xdist workers), when first needed."""
    runs = {}

    def get(name):
        if name not in runs:
            key = f"test_experiments_resnet-{name}-quick"
            runs[name] = quick_experiment(key, name, {"quick": "true"})
        return runs[name]

    return get


def slope(entry) -> float:
    assert entry["slope"] is not None, entry
    return entry["slope"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_quick_run_writes_its_files(quick, name):
    folder, summary = quick(name)
    for f in ("config.json", "summary.json", "metrics.parquet", "captions.json", "report.html"):
        assert (folder / f).is_file(), f
    assert summary["experiment"] == name and summary["status"] == "ok"
    assert summary["geometry"] == "conditional_wasserstein"
    config = json.loads((folder / "config.json").read_text())
    assert config["experiment"] == name and config["preset"] == "quick"
    pngs = {p.stem for p in folder.glob("*.png")}
    assert pngs == PLOTS[name]
    captions = json.loads((folder / "captions.json").read_text())
    assert set(captions["captions"]) == pngs and captions["notes"]
    assert (folder / "report.html").read_text().count("data:image/png;base64,") == len(pngs)
    assert len(pd.read_parquet(folder / "metrics.parquet")) > 0
    if name in WITH_TRAJECTORY:
        traj = gf.Trajectory.load(folder / "trajectory.nc")
        assert len(traj) >= 2 and np.all(np.isfinite(np.asarray(traj.loss)))
    else:
        assert not (folder / "trajectory.nc").exists()


# ---------------------------------------------------------------------------------------------
# resnet-depth (quick: depths 4, 8, 16; reference depth 128; T = 10)


@pytest.mark.slow
def test_depth_tied_init_is_smooth_in_depth_at_rate_one_over_L(quick):
    _, s = quick("resnet-depth")
    assert s["depths"] == [4, 8, 16] and s["fit_depths"] == [4, 8, 16]
    tied = s["per_depth"]["tied"]
    # tied: every layer starts equal (V = 0): no differences, and the network is its ODE limit
    assert tied["smoothness_init"] == [0.0, 0.0, 0.0]
    assert tied["ode_gap_init"] == [0.0, 0.0, 0.0]
    # Thm. 4: max_{k,t≤T}|Z_{k+1} − Z_k| ≤ K/L and the gap to the neural ODE is O(1/L), and
    # both are attained (the layers' gradients differ at first order in 1/L): slopes −1
    slopes = s["slopes"]["tied"]
    assert slope(slopes["smoothness_trained"]) == pytest.approx(-1, abs=0.15)
    assert slope(slopes["ode_gap_trained"]) == pytest.approx(-1, abs=0.15)
    assert slope(slopes["distance_to_reference_final"]) == pytest.approx(-1, abs=0.15)
    # ... with one constant K: L · max|ΔZ| is the same at every depth (to 10%)
    scaled = np.array(tied["smoothness_trained_scaled"])
    assert scaled.max() / scaled.min() < 1.1
    # the aggregate (Σ_k|ΔZ_k|²)^{1/2} of L terms of size K/L scales like L^{-1/2} only
    assert slope(slopes["aggregate_frobenius_trained"]) == pytest.approx(-0.5, abs=0.15)
    # the distance to the depth-128 reference: 0 at t = 0 (same continuous init), then shrinking
    # with L at every saved time
    dist = s["distance_to_reference_vs_t"]
    assert dist["t"] == [0.0, 5.0, 10.0]
    by_depth = np.array([dist["tied"][str(d)] for d in s["depths"]])
    assert np.all(by_depth[:, 0] == 0)
    assert np.all(np.diff(by_depth[:, 1:], axis=0) < 0)


@pytest.mark.slow
def test_depth_smooth_init_stays_smooth_and_iid_does_not(quick):
    _, s = quick("resnet-depth")
    smooth, iid = s["slopes"]["smooth"], s["slopes"]["iid"]
    # a smooth init is a discretisation of a smooth function: differences ~ 1/L, at init and
    # after training; the gap to the ODE decays at least like 1/L
    assert slope(smooth["smoothness_init"]) == pytest.approx(-1, abs=0.15)
    assert slope(smooth["smoothness_trained"]) == pytest.approx(-1, abs=0.15)
    assert slope(smooth["ode_gap_trained"]) < -0.85
    assert slope(smooth["distance_to_reference_final"]) == pytest.approx(-1, abs=0.15)
    # iid layers: Ω(1) differences at every depth, before and after training (slope 0)
    assert slope(iid["smoothness_trained"]) == pytest.approx(0, abs=0.15)
    per = s["per_depth"]
    assert min(per["iid"]["smoothness_trained"]) > 100 * max(per["tied"]["smoothness_trained"])
    # training decreases the loss from every init at every depth
    for init in ("tied", "smooth", "iid"):
        assert np.all(np.array(per[init]["loss_final"]) < np.array(per[init]["loss_init"]))
    acceptance = s["acceptance"]
    for key in (
        "tied_trained_smoothness_slope_within_-1±0.15",
        "tied_trained_ode_gap_slope_within_-1±0.15",
        "smooth_trained_smoothness_slope_within_-1±0.15",
        "tied_init_differences_exactly_zero",
        "iid_trained_smoothness_slope_within_0±0.15",
    ):
        assert acceptance[key] is True, key


# ---------------------------------------------------------------------------------------------
# resnet-long (quick: L = 32, m = 32, n = 10, target ℓ < 1e-4 by t = 2000)


@pytest.mark.slow
def test_long_risk_decreases_exponentially(quick):
    folder, s = quick("resnet-long")
    metrics = pd.read_parquet(folder / "metrics.parquet")
    risk = 2 * metrics.loss.to_numpy()
    assert risk[0] == pytest.approx(s["initial_risk"]) and risk[-1] == pytest.approx(
        s["final_risk"]
    )
    # a gradient flow: F never increases (up to the solver's tolerance)
    assert np.all(np.diff(risk) <= 1e-8 * risk[:-1])
    assert s["final_risk"] < 1e-4 * s["initial_risk"]
    # a positive exponential rate on the tail, and a PL ratio |∇F|²/F bounded away from 0 (the
    # decay of F is at least e^{-min PL · t})
    assert s["exponential_rate_tail"] > 0 and s["pl_ratio_min"] > 0
    assert s["final_time"] == 2000.0 or s["reached_target"]
    assert s["paper_gd_steps_equivalent_to_final_time"] == pytest.approx(
        s["final_time"] * 32 / (2 * 0.32)
    )


@pytest.mark.slow
def test_long_quick_reaches_its_target(quick):
    _, s = quick("resnet-long")
    # the flow stops where ℓ crosses the target (located by root finding on the dense output)
    assert s["reached_target"] and s["time_to_target"] == s["final_time"]
    assert s["final_risk"] == pytest.approx(s["target_risk"], rel=1e-6)


@pytest.mark.slow
def test_long_quick_weights_stay_smooth_in_depth(quick):
    # Trained from the tied init (zero differences), the largest successive difference over the
    # whole flow stays an order of magnitude below that of an iid init of the same network,
    # whose differences are O(1) whatever L.
    folder, s = quick("resnet-long")
    config = json.loads((folder / "config.json").read_text())
    traj = gf.Trajectory.load(folder / "trajectory.nc")
    depth = traj.final.depth
    iid = gf.models.ResNet(
        16, 16, traj.final.width, depth, 16, key=jax.random.PRNGKey(0), init="iid"
    )
    iid_diff = gf.diagnostics.depth_smoothness(iid).max_diff
    assert config["preset"] == "quick" and config["config"]["depth"] == depth == 32
    assert s["smoothness_max_over_t"] < 0.1 * iid_diff


# ---------------------------------------------------------------------------------------------
# resnet-relu (quick: L = 2, 8 — networks of depth 4 and 16; C = 2, x = 1)


@pytest.mark.slow
def test_relu_counter_example_differences_stay_order_one(quick):
    _, s = quick("resnet-relu")
    relu, C = s["relu"], s["C"]
    halves = np.array(relu["half_depths"])
    assert list(halves) == [2, 8] and C == 2.0
    # the flow interpolates the single sample
    assert max(relu["final_risk"]) < 1e-12
    # odd layers start at −1/(2L) with h > 0: σ(wh) = 0, their gradient is exactly 0, they
    # never move
    assert relu["odd_layers_max_displacement"] == [0.0, 0.0]
    # the L even layers all reach w* with (1 + w*/(2L))^L = C, so every successive difference
    # is w* + 1/(2L) (computed here independently)
    w_star = 2 * halves * (C ** (1.0 / halves) - 1.0)
    np.testing.assert_allclose(relu["w_star"], w_star, rtol=1e-14)
    np.testing.assert_allclose((1 + w_star / (2 * halves)) ** halves, C, rtol=1e-14)
    predicted = w_star + 1 / (2 * halves)
    np.testing.assert_allclose(relu["max_diff"], predicted, rtol=1e-6)
    np.testing.assert_allclose(relu["min_diff"], predicted, rtol=1e-6)
    assert max(relu["max_rel_error_vs_prediction"]) < 1e-6
    # Ω(1): w* decreases to 2 log C, so no depth brings the differences below it
    assert relu["w_star_limit_2_log_C"] == pytest.approx(2 * math.log(C))
    assert min(relu["min_diff"]) > 2 * math.log(C)
    assert s["acceptance"]["relu_differences_within_5%_of_w*+1/(2L)_for_every_L"] is True


@pytest.mark.slow
def test_relu_smooth_activation_differences_decay_like_one_over_L(quick):
    _, s = quick("resnet-relu")
    gelu = s["gelu"]
    assert max(gelu["final_risk"]) < 1e-12
    # with GELU every layer moves by nearly the same amount: differences O(1/L)
    assert slope(gelu["max_diff_slope"]) == pytest.approx(-1, abs=0.15)
    assert gelu["max_diff"][-1] < 0.25 * s["relu"]["max_diff"][-1]


# ---------------------------------------------------------------------------------------------
# resnet-pl (quick: n = 12, L = 8, widths 3 and 48, target ℓ < 1e-6 by t = 500)


@pytest.mark.slow
def test_pl_wide_network_keeps_the_pl_inequality(quick):
    _, s = quick("resnet-pl")
    per = s["per_width"]
    assert per["width"] == [3, 48] and s["n"] == 12
    np.testing.assert_allclose(per["m_over_n"], np.array(per["width"]) / s["n"])
    # every width decreases the risk; the PL ratio |∇F|²_G/F stays positive along every path
    assert all(r < 1e-4 for r in per["final_risk"])
    assert all(p > 0 for p in per["pl_ratio_min"])
    # Prop. 5: for m ≥ n the PL ratio is bounded away from 0 along the flow
    wide = per["width"].index(48)
    assert per["m_over_n"][wide] >= 1
    assert per["keeps_pl"][wide] is True
    assert per["pl_ratio_min"][wide] > s["pl_floor"]
    assert s["acceptance"]["some_width_reaches_target_with_pl_bounded_away_from_zero"] is True


@pytest.mark.slow
def test_pl_worst_case_constant_at_init_separates_m_below_and_above_n(quick):
    # At the tied init the tangent kernel is (1/m) ΦΦᵀ ⊗ I_16 with Φ the n×m feature matrix:
    # rank min(m, n)·16, so the PL constant valid for every target is 0 for m = 3 < n = 12 and
    # positive for m = 48.
    _, s = quick("resnet-pl")
    per = s["per_width"]
    assert per["kernel_size"] == [12 * 16, 12 * 16]
    assert per["kernel_rank_init"] == [3 * 16, 12 * 16]
    assert abs(per["kernel_pl_bound_init"][0]) < 1e-12 and per["kernel_pl_bound_init"][1] > 0
    kernel = s["separation"]["tangent_kernel_at_init"]
    assert kernel["separating_m_over_n"] == [0.25, 4.0] and kernel["monotone"] is True
    assert "0 for m/n ≤ 0.25 and positive for m/n ≥ 4" in s["separation"]["statement"]


# ---------------------------------------------------------------------------------------------
# resnet-digits (quick: depth 8, GELU and ReLU × tied and iid, 60 momentum steps)


@pytest.mark.slow
def test_digits_tied_init_is_smooth_in_depth_iid_is_not(quick):
    _, s = quick("resnet-digits")
    table = s["table"]
    assert set(table) == {"gelu", "relu"} and s["depth"] == 8
    for activation, entry in table.items():
        tied, iid = entry["tied"], entry["iid"]
        for row in (tied, iid):
            # ten balanced classes: chance is 0.1; a trained network is far above it
            assert row["train_accuracy"] > 0.9 and row["test_accuracy"] > 0.9, activation
            assert 0 < row["train_risk"] < 1
        # the tied init starts with equal layers; after training its weights are smooth in depth
        # (relative Lipschitz constant in s = k/L below 1), iid layers are not (~L)
        assert tied["smoothness_init"] == 0.0
        assert tied["smooth_in_depth"] is True and tied["lipschitz_in_depth_relative"] < 1
        assert iid["smooth_in_depth"] is False and iid["lipschitz_in_depth_relative"] > 5
        assert entry["smoothness_ratio_tied_over_iid"] == pytest.approx(
            tied["smoothness"] / iid["smoothness"]
        )
        assert entry["smoothness_ratio_tied_over_iid"] < 0.1


# ---------------------------------------------------------------------------------------------
# invalid configurations


@pytest.mark.parametrize(
    "name, overrides, field",
    [
        ("resnet-depth", {"depths": "0,4"}, "depths"),
        ("resnet-depth", {"depths": "8"}, "depths"),
        ("resnet-depth", {"depths": "4,4"}, "depths"),
        ("resnet-depth", {"inits": "tied,orthogonal"}, "inits"),
        ("resnet-depth", {"inits": "tied", "reference_inits": "smooth"}, "reference_inits"),
        ("resnet-depth", {"activation": "sigmoidal"}, "activation"),
        ("resnet-depth", {"width": "0"}, "width"),
        ("resnet-depth", {"horizon": "-1"}, "horizon"),
        ("resnet-long", {"depth": "0"}, "depth"),
        ("resnet-long", {"width": "0"}, "width"),
        ("resnet-long", {"init": "orthogonal"}, "init"),
        ("resnet-long", {"init_scheme": "orthogonal"}, "init_scheme"),
        ("resnet-long", {"activation": "sigmoidal"}, "activation"),
        ("resnet-long", {"t_max": "0.5"}, "t_max"),
        ("resnet-long", {"piece": "7"}, "piece"),
        ("resnet-relu", {"halves": "0,2"}, "halves"),
        ("resnet-relu", {"C": "1"}, "C"),
        ("resnet-relu", {"activations": "relu,sigmoidal"}, "activations"),
        ("resnet-pl", {"widths": "0,8"}, "widths"),
        ("resnet-pl", {"depth": "0"}, "depth"),
        ("resnet-pl", {"activation": "sigmoidal"}, "activation"),
        ("resnet-pl", {"quick": "true", "piece": "32"}, "piece"),  # quick has 16 saves
        ("resnet-digits", {"depth": "0"}, "depth"),
        ("resnet-digits", {"width": "0"}, "width"),
        ("resnet-digits", {"inits": "orthogonal"}, "inits"),
        ("resnet-digits", {"activations": "sigmoidal"}, "activations"),
        ("resnet-digits", {"dim": "8"}, "dim"),
        ("resnet-digits", {"optimizer": "sgd"}, "optimizer"),
        ("resnet-digits", {"train_fraction": "1"}, "train_fraction"),
    ],
)
def test_bad_config(name, overrides, field):
    with pytest.raises(gf.ConfigError) as info:
        make_config(name, overrides)
    assert info.value.field == field
    assert f"invalid {field}=" in str(info.value) and info.value.accepted


@pytest.mark.parametrize("name", NAMES)
def test_quick_and_full_configs_are_valid(name):
    quick = gf.experiments.effective_config(name, {"quick": "true"})
    assert quick.preset == "quick" and quick.config == make_config(name, {"preset": "quick"})
    assert gf.experiments.effective_config(name).preset == "full"
    # explicit values are kept under quick, and still validated against the quick values
    assert make_config(name, {"quick": "true", "seed": "3"}).seed == 3


def test_long_takes_your_data_and_initial_weights_from_npz_files(tmp_path):
    # issue 13: --set data=FILE.npz (x, y) and init=FILE.npz (arrays by parameter path); the
    # tiny preset's network has q = 4, m = 8, L = 4; d_in = 3 and d_out = 2 are embedded in q
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    V, W = rng.normal(size=(4, 4, 8)), rng.normal(size=(4, 8, 4))
    np.savez(tmp_path / "data.npz", x=x, y=y)
    np.savez(tmp_path / "init.npz", V=V, W=W)
    files = {"data": str(tmp_path / "data.npz"), "init": str(tmp_path / "init.npz")}
    config = make_config("resnet-long", {"preset": "tiny", **files})
    model, data = gf.experiments.resnet_long.long_problem(config)
    np.testing.assert_array_equal(data.x, x)
    np.testing.assert_array_equal(data.y, y)
    np.testing.assert_array_equal(model.V, V)
    np.testing.assert_array_equal(model.W, W)
    assert (model.in_dim, model.dim, model.out_dim) == (3, 4, 2)
    # refused before any work, in one line naming the field
    np.savez(tmp_path / "short.npz", V=V[:2], W=W)
    np.savez(tmp_path / "wide.npz", x=np.ones((3, 5)), y=np.ones((3, 2)))
    for field, name in (("init", "short.npz"), ("data", "wide.npz")):
        overrides = {"preset": "tiny", **files, field: str(tmp_path / name)}
        with pytest.raises(gf.ConfigError) as info:
            make_config("resnet-long", overrides)
        assert info.value.field == field and "\n" not in str(info.value)
