"""The mathematics of the `deep-linear` experiment, read from its quick runs' summary.json.

Quick: a whitened linear teacher with s = 3, 1.8, 1, 0.6 (dim 4, n 64) and a deep linear network
from a per-layer init scale ε = 1e-3. With F = (1/2n)Σ|Wx − y|² and whitened inputs,
F(W) = ½|W − Σ|² + const, so the critical point that has learned the modes J has the value
F_J = ½ Σ_{j∉J} s_j² + F* (F* = 0 here: the teacher has rank dim and is realisable).

One depth-3 run (the default depth) and one depth-2 run, each once per test session even across
xdist workers (slow: ~25 s each with compilation)."""

import numpy as np
import pytest
from typer.testing import CliRunner

import gradflow as gf
from gradflow.cli import app
from gradflow.experiments import make_config
from gradflow.experiments.deep_linear.config import init_scale, teacher_singular_values

S = np.array([3.0, 1.8, 1.0, 0.6])  # the quick teacher's singular values


@pytest.fixture(scope="module")
def depth3(quick_experiment):
    key = "test_experiments_deep_linear-quick"
    return quick_experiment(key, "deep-linear", {"quick": "true"})[1]


@pytest.fixture(scope="module")
def depth2(quick_experiment):
    key = "test_experiments_deep_linear-quick-depth2"
    overrides = {"quick": "true", "depth": "2"}
    return quick_experiment(key, "deep-linear", overrides)[1]


def critical_value(learned: int, global_min: float) -> float:
    """½ Σ_{j ≥ learned} s_j² + F*: the value of the saddle that has learned the top modes."""
    return 0.5 * float(np.sum(S[learned:] ** 2)) + global_min


# ---------------------------------------------------------------------------------------------
# depth 3 (the default): non-strict saddles, polynomial escapes


@pytest.mark.slow
def test_quick_configuration(depth3):
    assert depth3["status"] == "ok"
    assert depth3["depth"] == 3 and depth3["dim"] == 4 and depth3["init_scale"] == 1e-3
    np.testing.assert_array_equal(depth3["singular_values"], S)
    assert depth3["t1_automatic"] and depth3["solver"] == "tsit5"


@pytest.mark.slow
def test_modes_learned_one_by_one_in_decreasing_order_of_s(depth3):
    assert depth3["modes_learned"] == 4
    assert depth3["learn_order"] == [0, 1, 2, 3]
    assert depth3["learned_in_decreasing_order_of_s"] is True
    times = np.array(depth3["learn_times_measured"])
    assert np.all(np.isfinite(times)) and np.all(np.diff(times) > 0)
    # H ≥ 3: from u0 = ε^H the balanced plateau lasts ε^{-(H-2)}/((H-2) s_j) = 1e3/s_j (the
    # scaling law), far longer than an escape (~1/(H s_j^{4/3}) ≲ 1). Every learning time is at
    # least of that order (weak modes start smaller than ε^H: their components along the hidden
    # directions of modes learned earlier decay).
    nominal = np.array(depth3["learn_times_nominal"])
    np.testing.assert_allclose(nominal, 1e3 / S, rtol=0.01)
    assert np.all(times > 0.5 * nominal)


@pytest.mark.slow
def test_escapes_follow_the_balanced_solution(depth3):
    # Aligned where u_j = s_j/100, the balanced solution u' = H u^{2-2/H}(s − u) predicts the
    # time u_j reaches s_j/2. It is exact for a balanced, decoupled mode; the flow deviates from
    # it only through the O(ε²) imbalance of the init and the O(u) cross-talk with other modes
    # through the shared hidden layers, both tiny: a relative error of 1e-4 would already be a
    # real discrepancy (measured: ~6e-7).
    assert depth3["learn_time_prediction_method"].startswith("depth ≥ 3")
    deviations = np.array(depth3["learn_time_relative_deviations"])
    assert deviations.shape == (4,) and np.all(np.isfinite(deviations))
    assert depth3["learn_time_max_relative_deviation"] == pytest.approx(deviations.max())
    assert depth3["learn_time_max_relative_deviation"] < 1e-4
    np.testing.assert_allclose(
        depth3["learn_times_measured"], depth3["learn_times_predicted"], rtol=1e-4
    )


@pytest.mark.slow
def test_plateaus_sit_at_the_critical_values(depth3):
    f_star = depth3["global_min_value"]
    assert abs(f_star) < 1e-12  # realisable teacher
    visited = [sd["modes_learned"] for sd in depth3["saddles_visited"]]
    assert visited == [[], [0], [0, 1], [0, 1, 2], [0, 1, 2, 3]]
    expected = [critical_value(k, f_star) for k in range(5)]  # 6.8, 2.3, 0.68, 0.18, 0
    np.testing.assert_allclose(depth3["critical_values_visited"], expected, rtol=0, atol=1e-12)
    # non-strict saddles are approached polynomially slowly: the flow rests on each plateau
    np.testing.assert_allclose(depth3["plateau_losses"], expected, rtol=0, atol=1e-6)
    assert depth3["plateau_loss_max_abs_deviation"] < 1e-6


@pytest.mark.slow
def test_saddles_are_non_strict_then_the_global_minimum(depth3):
    assert depth3["saddle_kinds_visited"] == ["nonstrict_saddle"] * 4 + ["global_min"]
    for saddle in depth3["saddles_visited"]:
        # H ≥ 3: at a critical point every second-order term of the residual's pairing
        # vanishes along the unlearned directions: no negative curvature (unstable dimension 0),
        # a zero eigenvalue (λ_min = 0 up to round-off) — the escape is third order.
        assert saddle["atlas_unstable_dim"] == 0
        assert abs(saddle["atlas_lambda_min"]) < 1e-10
        assert saddle["atlas_centre_dim"] > 0
    # the number of flat directions decreases as modes are learned
    centre = [sd["atlas_centre_dim"] for sd in depth3["saddles_visited"]]
    assert centre == sorted(centre, reverse=True) and centre[0] > centre[-1]


@pytest.mark.slow
def test_conservation_laws_certify_the_integration(depth3):
    # C_k = W_{k+1}ᵀW_{k+1} − W_kW_kᵀ is exactly constant along the flow: its drift is the
    # integrator's error, certified below 100·rtol (relative).
    assert depth3["certified"] is True
    assert depth3["conservation_drift_relative"] <= 100 * depth3["rtol"]
    assert len(depth3["conservation_drift_per_layer"]) == 2  # H − 1 laws
    assert max(depth3["conservation_drift_per_layer"]) == depth3["conservation_drift_abs"]


@pytest.mark.slow
def test_converges_to_the_global_minimum(depth3):
    assert abs(depth3["final_gap_to_global_min"]) < 1e-12
    assert depth3["final_loss"] == pytest.approx(
        depth3["global_min_value"] + depth3["final_gap_to_global_min"], abs=1e-15
    )
    assert depth3["final_grad_norm"] < 1e-8


# ---------------------------------------------------------------------------------------------
# depth 2: strict saddles, exponential escapes, a genuine prediction


@pytest.mark.slow
def test_depth2_learning_times_are_predicted(depth2):
    assert depth2["status"] == "ok" and depth2["depth"] == 2
    assert depth2["learn_order"] == [0, 1, 2, 3]
    # H = 2: near the origin the mode coordinates obey a' = s b, b' = s a, so each mode follows the
    # balanced solution from its projected effective init |a_j + b_j|²/4 — a prediction from the
    # init alone (no alignment). Off by only O(ε²) imbalance and the cross-talk during earlier
    # escapes: a relative error of 1e-3 (much tighter than 5%) is a real discrepancy (measured
    # ~4e-5).
    assert depth2["learn_time_prediction_method"].startswith("depth 2")
    measured = np.array(depth2["learn_times_measured"])
    predicted = np.array(depth2["learn_times_predicted"])
    np.testing.assert_allclose(measured, predicted, rtol=1e-3)
    assert depth2["learn_time_max_relative_deviation"] < 1e-3
    # and the scaling law log(1/u0)/(2s) from the nominal u0 = ε² is right up to the O(1) factor
    # between the effective and the nominal init, a shift of O(1)/log(1/ε²) ≈ 10%: within 20%.
    np.testing.assert_allclose(depth2["learn_time_nominal_ratios"], 1.0, atol=0.2)


@pytest.mark.slow
def test_depth2_saddles_are_strict(depth2):
    assert depth2["saddle_kinds_visited"] == ["strict_saddle"] * 4 + ["global_min"]
    saddles = depth2["saddles_visited"]
    assert [sd["modes_learned"] for sd in saddles] == [[], [0], [0, 1], [0, 1, 2], [0, 1, 2, 3]]
    for k, saddle in enumerate(saddles[:-1]):
        # With the top k modes learned, Hess F[δ] = |δW₂W₁ + W₂δW₁|² − 2⟨Σ_unlearned, δW₂δW₁⟩
        # ≥ −s_{k+1}|δ|², with equality along the next mode through an unused hidden unit:
        # λ_min = −s_{k+1} exactly.
        assert saddle["atlas_lambda_min"] == pytest.approx(-S[k], rel=1e-8)
        assert saddle["atlas_unstable_dim"] > 0
        # the flow passes close to it: negative curvature is seen on the trajectory too
        assert saddle["n_negative_on_trajectory"] > 0
        assert saddle["lambda_min_on_trajectory"] == pytest.approx(-S[k], rel=0.1)
    assert abs(saddles[-1]["atlas_lambda_min"]) < 1e-10
    assert saddles[-1]["atlas_unstable_dim"] == 0


@pytest.mark.slow
def test_depth2_plateaus_and_global_minimum(depth2):
    f_star = depth2["global_min_value"]
    expected = [critical_value(k, f_star) for k in range(5)]
    np.testing.assert_allclose(depth2["critical_values_visited"], expected, rtol=0, atol=1e-12)
    plateaus = np.array(depth2["plateau_losses"])
    # The first plateau is the origin, where the flow starts (F(0) + O(ε²)); strict saddles are
    # left exponentially fast, so the later closest approaches lie between the saddle's value
    # and the previous one, in order.
    assert plateaus[0] == pytest.approx(expected[0], abs=1e-5)
    for k in range(1, 4):
        assert expected[k + 1] < plateaus[k] < expected[k - 1]
    assert np.all(np.diff(plateaus) < 0)
    assert abs(depth2["final_gap_to_global_min"]) < 1e-12
    assert depth2["certified"] is True and len(depth2["conservation_drift_per_layer"]) == 1


# ---------------------------------------------------------------------------------------------
# invalid configurations


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"depth": "0"}, "depth"),
        ({"depth": "1"}, "depth"),
        ({"depth": "two"}, "depth"),
        ({"dim": "0"}, "dim"),
        ({"n": "2", "dim": "4"}, "n"),
        ({"singular_values": "3,2,1", "dim": "2"}, "singular_values"),
        ({"singular_values": "5,4,3,2,1", "quick": "true"}, "singular_values"),  # quick dim 4
        ({"singular_values": "3,3"}, "singular_values"),
        ({"singular_values": "3,-1"}, "singular_values"),
        ({"singular_values": "3,x"}, "singular_values"),
        ({"init_scale": "0"}, "init_scale"),
        ({"init_scale": "nan"}, "init_scale"),
        ({"solver": "rk4"}, "solver"),
        ({"rtol": "0"}, "rtol"),
        ({"saves": "5"}, "saves"),
        ({"gd_lr": "0"}, "gd_lr"),
        ({"gd_lr": "fast"}, "gd_lr"),
        ({"t1": "-1"}, "t1"),
        ({"seed": "-1"}, "seed"),
        ({"quick": "maybe"}, "quick"),
        ({"widths": "4,4"}, "--set"),
    ],
)
def test_bad_config(overrides, field):
    with pytest.raises(gf.ConfigError) as info:
        make_config("deep-linear", overrides)
    assert info.value.field == field
    assert info.value.accepted and f"invalid {field}=" in str(info.value)


def test_config_parsing():
    config = make_config(
        "deep-linear",
        {"quick": "true", "singular_values": "3,2", "gd_lr": "none", "t1": "50", "depth": "4"},
    )
    # the effective config: quick's dim, n and saves under the values set
    assert config.depth == 4 and config.t1 == 50.0 and config.gd_lr is None
    assert config.singular_values == (3.0, 2.0)
    assert config.dim == 4 and config.n == 64 and config.saves == 300
    default = make_config("deep-linear")
    assert default.dim == 8 and len(default.singular_values) == 8
    # values set explicitly win over the preset (quick used to shrink dim=8 back to 4)
    assert make_config("deep-linear", {"quick": "true", "dim": "8"}).dim == 8


# ---------------------------------------------------------------------------------------------
# your data and weights (--set data=FILE.npz, --set init=FILE.npz)


def test_data_and_init_files_round_trip(tmp_path):
    # Whitened data (Σ_xx = I) with teacher diag(2, 1) and the tiny preset's init, written to
    # files and read back through data= and init= (with another seed, whose own draws the files
    # replace): exactly the same problem.
    x = np.sqrt(8.0) * np.eye(8, 2)
    data = gf.Dataset(x, x @ np.diag([2.0, 1.0]))
    model = make_config("deep-linear", {"preset": "tiny"}).initial_model()
    gf.data.save_npz(tmp_path / "d.npz", data)
    gf.models.save_parameters(tmp_path / "w.npz", model)
    files = {"data": str(tmp_path / "d.npz"), "init": str(tmp_path / "w.npz")}
    config = make_config("deep-linear", {"preset": "tiny", "seed": "7", **files})
    assert config.singular_values is None  # the data's, not the preset's
    back, back_model = config.dataset(), config.initial_model()
    np.testing.assert_array_equal(np.asarray(back.x), x)
    np.testing.assert_array_equal(np.asarray(back.y), np.asarray(data.y))
    for w, v in zip(back_model.weights, model.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(w), np.asarray(v))
    np.testing.assert_allclose(teacher_singular_values(back), [2.0, 1.0], rtol=1e-14)
    # ε of weights from a file: the geometric mean of |W_k|_F/√n_k, exact for W_k = c_k I
    gf.models.save_parameters(
        tmp_path / "scaled.npz",
        gf.models.DeepLinear.from_weights([0.1 * np.eye(2), 0.4 * np.eye(2)]),
    )
    scaled = make_config("deep-linear", {"preset": "tiny", "init": str(tmp_path / "scaled.npz")})
    assert init_scale(scaled.initial_model(), scaled) == pytest.approx(0.2, rel=1e-14)


@pytest.mark.parametrize(
    "field, arrays, words",
    [
        ("data", {"x": np.ones((8, 3)), "y": np.ones((8, 2))}, "d_in = 2"),
        ("data", {"x": np.eye(8, 2), "y": np.full((8, 2), np.nan)}, "non-finite"),
        ("data", {"x": np.eye(8, 2), "y": np.eye(8, 2)}, "distinct nonzero singular values"),
        ("init", {"weights.0": np.eye(2)}, "missing ['weights.1']"),
        ("init", {"weights.0": np.eye(2), "weights.1": np.eye(3)}, "shape (2, 2)"),
        ("init", {"weights.0": np.zeros((2, 2)), "weights.1": np.eye(2)}, "ε^depth in [1e-300"),
    ],
)
def test_bad_data_or_init_file_exits_2_naming_the_field(tmp_path, field, arrays, words):
    np.savez(tmp_path / "f.npz", **arrays)
    out = tmp_path / "run"
    args = ["run", "deep-linear", "--set", "preset=tiny", "--set", f"{field}={tmp_path / 'f.npz'}"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: invalid {field}=") and words in line, line
    assert not out.exists()  # refused before anything is written


# ---------------------------------------------------------------------------------------------
# seeds as one ensemble (the sweep's run_seeds hook)


def test_seeds_as_one_ensemble_equal_their_own_runs():
    # Each seed draws its own data and init: the hook flows them as one ensemble with a dataset
    # per member, each with its own steps, and every number of every summary is its own run's.
    from gradflow.experiments import get_experiment
    from gradflow.runs import RunContext
    from gradflow.sweeps import flatten

    experiment = get_experiment("deep-linear")
    configs = [make_config("deep-linear", {"preset": "tiny", "seed": str(k)}) for k in (3, 4)]
    together = list(experiment.run_seeds(configs, RunContext()))
    for config, result in zip(configs, together, strict=True):
        alone = flatten(experiment.run(config, RunContext()).summary)
        flat = flatten(result.summary)
        assert flat.keys() == alone.keys()
        for key, value in alone.items():
            if isinstance(value, float):
                assert flat[key] == pytest.approx(value, rel=1e-12, abs=1e-300), key
            else:
                assert flat[key] == value, key
    assert flatten(together[0].summary) != flatten(together[1].summary)  # two different seeds
