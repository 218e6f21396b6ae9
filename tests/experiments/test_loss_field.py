"""The experiments' `loss` field: refused where a diagnostic assumes a minimum, passed to the
objective and named in the summary."""

import numpy as np
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
    """mean-field-limit TINY, cut to two flows of t = 0.01: the same initial parameters, so the
    risk at t = 0 with loss=mse is exactly 2/d_out = 2 times half_mse's (d_out = 1)."""
    first = {}
    for loss in ("half_mse", "mse"):
        cut = {"t1": "0.01", "particles": "1,1", "saves": "2", "layers": "1"}
        _, result = run_experiment(
            "mean-field-limit", {"preset": "tiny", "loss": loss, **cut}, tmp_path / loss
        )
        assert result.summary["loss"] == loss
        first[loss] = result.metrics.query("t == 0").loss.to_numpy()
    assert first["mse"] == pytest.approx(2.0 * first["half_mse"], rel=1e-12)


def test_generated_targets_refused_at_the_start_of_the_run(tmp_path):
    # mean-field-limit's tanh teacher has real targets: logistic cannot read them
    with pytest.raises(ConfigError, match=r"loss='logistic'.*'half_mse', 'mse'"):
        run_experiment("mean-field-limit", {"preset": "tiny", "loss": "logistic"}, tmp_path / "r")


def test_data_file_targets_checked_at_validation(tmp_path):
    """A data file's targets are read when the config is validated: real y refuse logistic (one
    line naming loss and the losses that read them), ±1 labels accept it."""
    x = np.linspace(-1.0, 1.0, 12).reshape(6, 2)
    for y, code in ((x[:, :1] * 0.3, 2), (np.sign(x[:, :1] + 0.1), 0)):
        path = tmp_path / f"data{code}.npz"
        np.savez(path, x=x, y=y)
        args = ("--set", f"data={path}", "--set", "loss=logistic")
        result = invoke("run", "mean-field-limit", "--dry-run", *args)
        exited(result, code)
        if code == 2:
            line = one_error_line(result.stderr)
            assert "loss='logistic'" in line and "'half_mse', 'mse' for these targets" in line
