"""`gf.analytic.max_margin` and `gf.fits.inverse_log_fit` against exact answers."""

import numpy as np
import pytest

import gradflow as gf


def test_max_margin_of_a_hand_solved_set():
    # z = (1, 1), (1, −1) are the support vectors, (3, 0) and the negative (−2, 5) are not:
    # ŵ = (1, 0) with α = (½, ½, 0, 0), margin 1
    x = np.array([[1.0, 1.0], [1.0, -1.0], [3.0, 0.0], [-2.0, 5.0]])
    y = np.array([1.0, 1.0, 1.0, -1.0])
    mm = gf.analytic.max_margin(x, y)
    np.testing.assert_allclose(mm.w, [1.0, 0.0], atol=1e-14)
    np.testing.assert_allclose(mm.alpha, [0.5, 0.5, 0.0, 0.0], atol=1e-14)
    assert mm.support == (0, 1) and mm.margin == pytest.approx(1.0, rel=1e-14)


def test_max_margin_of_random_planar_data_beats_every_direction():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 2))
    y = np.sign(x @ np.array([0.6, -0.8]))
    mm = gf.analytic.max_margin(x, y)
    assert max(mm.stationarity, mm.feasibility, mm.slackness, mm.duality_gap) < 1e-12
    # independent check: the margin min_i y_i x_iᵀu over a fine grid of unit directions u
    theta = np.linspace(0, 2 * np.pi, 200_001)
    u = np.stack([np.cos(theta), np.sin(theta)])
    margins = np.min((y[:, None] * x) @ u, axis=0)
    assert margins.max() <= mm.margin + 1e-12
    assert margins.max() == pytest.approx(mm.margin, rel=1e-5)  # grid step 3e-5 rad
    best = u[:, np.argmax(margins)]
    assert np.linalg.norm(best - mm.direction) < 1e-4


def test_inseparable_data_and_bad_labels_are_refused():
    x = np.array([[1.0, 0.0], [2.0, 0.0]])
    with pytest.raises(gf.ConfigError, match="separable"):
        gf.analytic.max_margin(x, np.array([1.0, -1.0]))
    with pytest.raises(gf.ConfigError, match="y"):
        gf.analytic.max_margin(x, np.array([1.0, 0.0]))


def test_inverse_log_fit_recovers_the_law():
    t = np.geomspace(1e3, 1e30, 20)
    fit = gf.fits.inverse_log_fit(t, 2.5 / (np.log(t) + 4.0))
    assert fit.a == pytest.approx(2.5, rel=1e-12) and fit.b == pytest.approx(4.0, rel=1e-12)
    assert fit.max_relative_residual < 1e-12
    with pytest.raises(gf.ConfigError, match="values"):
        gf.fits.inverse_log_fit(t, np.log(t))  # growing: no such law
