"""The `implicit-bias` experiment's tiny run: logistic regression's flow direction converges to the
certified max-margin direction like a/(log t + b), with no divergence alarm, and the diagnostics
that assume a minimum refuse the loss."""

import numpy as np
import pytest

import gradflow as gf
from gradflow.experiments import make_config


@pytest.fixture(scope="module")
def summary(quick_experiment):
    return quick_experiment("test_implicit_bias-tiny", "implicit-bias", {"preset": "tiny"})[1]


def test_direction_converges_to_the_max_margin_one_like_inverse_log_t(summary):
    s = summary
    assert s["status"] == "ok" and s["flow_result"] == "successful"
    assert max(s["max_margin"]["kkt"].values()) < 1e-12  # certified
    assert s["angle_decreasing_over_fit_window"]
    assert s["a"] > 0 and s["fit_points"] >= 10
    assert s["fit_max_relative_residual"] < 1e-3  # the law a/(log t + b) holds
    # the fit extrapolates to the final save: angle(t1) = a/(log t1 + b)
    assert s["final_angle"] == pytest.approx(s["a"] / (np.log(s["t1"]) + s["b"]), rel=1e-3)
    assert 0 < s["final_angle"] < 0.02
    # fixed-step descent on the same loss: no alarm, |w| and the direction grow the same way
    assert s["descent"]["result"] == "successful" and s["descent"]["final_angle"] < 0.1


def test_minimum_assuming_diagnostics_refuse_the_logistic_loss(summary):
    for name, message in summary["refusals"].items():
        assert message is not None and "attains its minimum" in message, name


def test_a_fit_window_without_two_decades_is_refused():
    with pytest.raises(gf.ConfigError, match="fit_from"):
        make_config("implicit-bias", {"preset": "tiny", "fit_from": "1e15"})
