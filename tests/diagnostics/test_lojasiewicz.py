"""Łojasiewicz fits on problems with known exponents, F_∞ estimation, and the energy-dissipation
certificate. F(θ) = |θ|^p has |∇F| = p F^{(p−1)/p}: ϑ = 1/p and c = p exactly; p = 2 decays like
exp(−4t), p > 2 like t^{−1/(1−2/p)} = t^{−p/(p−2)}."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradflow as gf


class Power(gf.models.AbstractModel):
    """F(θ) = |θ|^p + offset, a risk with a known Łojasiewicz exponent."""

    theta: jax.Array
    p: float = eqx.field(static=True)
    offset: float = eqx.field(static=True, default=0.0)

    def __call__(self, x):
        value = jnp.sum(self.theta**2) ** (self.p / 2) + self.offset
        return jnp.full((x.shape[0], 1), value)

    @property
    def in_dim(self):
        return 1

    @property
    def out_dim(self):
        return 1


def _output(outputs, targets):
    return jnp.mean(outputs)


# The risk is the model's output itself: F(θ) = |θ|^p + offset.
VALUE = gf.losses.CustomLoss(_output, "value")
DATA = gf.Dataset(jnp.zeros((1, 1)), jnp.zeros((1, 1)))


def _solve(p, t1, offset=0.0):
    ts = np.concatenate([[0.0], np.geomspace(1e-3, t1, 300)])
    return gf.flow(
        Power(jnp.array([0.6, -0.3]), p, offset),
        DATA,
        t1,
        saveat=ts,
        rtol=1e-10,
        atol=1e-14,
        controller="pid",
        loss=VALUE,
    )


@pytest.fixture(scope="module")
def trajs():
    return {2: _solve(2, 8.0), 4: _solve(4, 1e5), "offset": _solve(4, 1e5, offset=0.3)}


def test_exponential_case(trajs):
    fit = gf.diagnostics.lojasiewicz_fit(trajs[2], f_inf=0.0)
    assert fit.theta == pytest.approx(0.5, abs=1e-6)
    assert fit.c == pytest.approx(2.0, rel=1e-5)
    assert fit.kind == "exponential"
    assert fit.predicted_rate == pytest.approx(4.0, rel=1e-5)  # c² = the PL constant
    assert fit.measured_rate == pytest.approx(4.0, rel=1e-4)
    assert fit.curve_log10_error < 1e-3


def test_power_case(trajs):
    fit = gf.diagnostics.lojasiewicz_fit(trajs[4], f_inf=0.0)
    assert fit.theta == pytest.approx(0.25, abs=1e-6)
    assert fit.c == pytest.approx(4.0, rel=1e-5)
    assert fit.kind == "power"
    assert fit.predicted_rate == pytest.approx(-2.0, rel=1e-5)
    assert fit.measured_rate == pytest.approx(-2.0, rel=0.01)
    assert fit.curve_log10_error < 1e-3
    # the predicted curve e' = −c² e^{2−2ϑ} follows the measured gap
    t = np.asarray(trajs[4].ts)[-50:]
    e = np.asarray(trajs[4].loss)[-50:]
    np.testing.assert_allclose(fit.predicted_gap(t, t[0], e[0]), e, rtol=1e-3)


def test_f_inf_estimates(trajs):
    traj = trajs["offset"]
    selfc = gf.diagnostics.lojasiewicz_fit(traj)
    assert selfc.f_inf_source == "self_consistent"
    assert selfc.f_inf == pytest.approx(0.3, abs=1e-13)
    assert selfc.theta == pytest.approx(0.25, abs=1e-3)
    # a longer, tighter solve from the last state (implicit solver for the tail)
    longer = gf.diagnostics.lojasiewicz_fit(
        traj, data=DATA, loss=VALUE, extend=10.0, solver="kvaerno5"
    )
    assert longer.f_inf_source == "longer_solve"
    assert longer.f_inf_solve["num_steps"] > 0 and longer.f_inf_solve["solver"] == "kvaerno5"
    assert longer.f_inf == pytest.approx(0.3, abs=1e-9)
    assert gf.diagnostics.lojasiewicz_fit(traj, f_inf=lambda tr: 0.3).f_inf == 0.3


def test_energy_dissipation_certificate(trajs):
    for traj in trajs.values():
        cert = gf.diagnostics.energy_dissipation(traj)
        assert cert.residual_max < 1e-6
        assert cert.speed_ratio_median == pytest.approx(1.0, abs=1e-6)
        assert cert.dissipated == pytest.approx(cert.loss_drop, rel=1e-6)


def test_bad_window(trajs):
    with pytest.raises(gf.ConfigError):
        gf.diagnostics.lojasiewicz_fit(trajs[2], f_inf=0.0, window=(1.0, 2.0))


def test_losses_without_a_minimum_are_refused(trajs):
    t = trajs[2]
    logistic = gf.Trajectory(
        t.ts,
        t.params,
        t.static,
        t.loss,
        t.grad_norm,
        t.masses,
        t.stats,
        {**t.info, "loss": "logistic"},
    )
    with pytest.raises(gf.ConfigError, match="attains its minimum") as err:
        gf.diagnostics.lojasiewicz_fit(logistic, f_inf=0.0)
    assert "logistic" in str(err.value) and "\n" not in str(err.value)
    unbounded = gf.losses.CustomLoss(_output, "value", minimum_attained=False)
    with pytest.raises(gf.ConfigError, match="attains its minimum"):
        gf.diagnostics.lojasiewicz_fit(t, f_inf=0.0, loss=unbounded)
