"""The experiments' `loss` field: refused where a diagnostic assumes a minimum, passed to the
objective and named in the summary."""

import pytest
from cli_helpers import exited, invoke, one_error_line

from gradflow import ConfigError
from gradflow.experiments import run_experiment


@pytest.mark.parametrize(
    ("name", "loss"),
    [("lojasiewicz", "logistic"), ("resnet-pl", "cross_entropy"), ("deep-linear", "mse")],
)
def test_refused_loss_is_one_line_naming_loss(name, loss):
    # lojasiewicz and resnet-pl fit PL/Łojasiewicz inequalities (a minimum is assumed);
    # deep-linear's closed forms are half_mse's
    result = invoke("run", name, "--dry-run", "--set", f"loss={loss}")
    exited(result, 2)
    line = one_error_line(result.stderr)
    assert f"loss='{loss}'" in line and "'half_mse'" in line, line
    assert f"'{loss}'" not in line.split("accepted", 1)[1]  # not among the accepted


def test_mse_is_named_and_scales_the_initial_risk(tmp_path):
    """resnet-long TINY (dim = d_out = 4): the same initial parameters, so the initial risk with
    loss=mse is exactly 2/d_out = 1/2 times half_mse's."""
    summaries = {}
    for loss in ("half_mse", "mse"):
        # a horizon of t = 1 only: the initial value is what is compared
        overrides = {"preset": "tiny", "loss": loss, "t_first": "0.5", "t_max": "1.0", "saves": "4", "piece": "4"}
        _, result = run_experiment("resnet-long", overrides, tmp_path / loss)
        summaries[loss] = result.summary
    assert summaries["mse"]["loss"] == "mse" and summaries["half_mse"]["loss"] == "half_mse"
    half, mse = summaries["half_mse"]["initial_risk"], summaries["mse"]["initial_risk"]
    assert mse == pytest.approx(0.5 * half, rel=1e-12)


def test_generated_targets_refused_at_the_start_of_the_run(tmp_path):
    # mean-field-limit's tanh teacher has real targets: logistic cannot read them
    with pytest.raises(ConfigError, match=r"loss='logistic'.*'half_mse', 'mse'"):
        run_experiment("mean-field-limit", {"preset": "tiny", "loss": "logistic"}, tmp_path / "r")
