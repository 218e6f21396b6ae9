"""gradflow.fits against exact answers: lines through exact lines, power laws and exponentials;
crossing times of piecewise-linear, exponential and sigmoid series whose crossings are known; NaN
and empty series; one-line `ConfigError`s for invalid input."""

import dataclasses
import json

import numpy as np
import pytest
import scipy.stats

import gradflow as gf
from gradflow import fits

# --------------------------------------------------------------------------------------------
# lines


def test_linear_fit_of_an_exact_line():
    x = np.array([-1.0, 0.5, 2.0, 3.0, 7.5])
    fit = fits.linear_fit(x, 2.0 - 3.0 * x)
    assert fit.slope == pytest.approx(-3.0, abs=1e-14)
    assert fit.intercept == pytest.approx(2.0, abs=1e-14)
    assert fit.stderr < 1e-14 and fit.r2 == pytest.approx(1.0, abs=1e-14) and fit.n == 5


def test_linear_fit_matches_scipy_linregress():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, 30)
    y = 1.5 * x - 4 + rng.normal(size=30)
    fit, ref = fits.linear_fit(x, y), scipy.stats.linregress(x, y)
    assert fit.slope == pytest.approx(ref.slope, rel=1e-12)
    assert fit.intercept == pytest.approx(ref.intercept, rel=1e-12)
    assert fit.stderr == pytest.approx(ref.stderr, rel=1e-10)
    assert fit.r2 == pytest.approx(ref.rvalue**2, rel=1e-12)
    # two points: the line through them, no standard error
    two = fits.linear_fit([1.0, 3.0], [2.0, 6.0])
    assert (two.slope, two.intercept, two.n) == (2.0, 0.0, 2) and np.isnan(two.stderr)


@pytest.mark.parametrize("p, c", [(-1.0, 3.0), (0.5, 0.2), (-2.5, 7.0), (0.0, 1.0)])
def test_loglog_slope_of_power_laws(p, c):
    xs = np.geomspace(1.0, 1e4, 9)
    fit = gf.fits.loglog_slope(xs, c * xs**p)
    assert fit.slope == pytest.approx(p, abs=1e-13)
    assert fit.intercept == pytest.approx(np.log(c), abs=1e-12)
    assert fit.stderr < 1e-13 and fit.n == 9
    # the diagnostics re-export the same function and record
    assert gf.diagnostics.loglog_slope is fits.loglog_slope and gf.diagnostics.Slope is fits.Slope


def test_exponential_rate_and_fit():
    t = np.linspace(0.0, 5.0, 21)
    v = 3.0 * np.exp(-2.0 * t)
    assert fits.exponential_rate(t, v) == pytest.approx(2.0, rel=1e-13)
    fit = fits.exponential_fit(t, v)
    assert fit.slope == pytest.approx(-2.0, rel=1e-13)
    assert np.exp(fit.intercept) == pytest.approx(3.0, rel=1e-12)
    # a transient before t_from, and exact zeros / round-off below `floor`, are left out
    v2 = np.where(t < 1.0, 5.0, 3.0 * np.exp(-2.0 * t))
    v2[-3:] = [1e-25, 0.0, -1e-30]
    assert fits.exponential_rate(t, v2, t_from=1.0) == pytest.approx(2.0, rel=1e-12)
    assert fits.exponential_fit(t, v2, t_from=1.0).n == int(np.sum(t >= 1.0)) - 3
    assert gf.diagnostics.exponential_rate is fits.exponential_rate


def test_nan_points_are_left_out_of_fits():
    xs = np.array([1.0, 2.0, np.nan, 4.0, 8.0])
    ys = np.array([2.0, 1.0, 5.0, np.nan, 0.25])
    fit = fits.loglog_slope(xs, ys)  # points (1, 2), (2, 1), (8, 0.25): y = 2/x
    assert fit.n == 3 and fit.slope == pytest.approx(-1.0, abs=1e-14)
    line = fits.linear_fit([0.0, np.nan, 1.0, 2.0], [1.0, 0.0, 3.0, 5.0])
    assert line.n == 3 and line.slope == pytest.approx(2.0, abs=1e-14)
    assert fits.exponential_fit([0.0, 1.0, 2.0], [1.0, np.nan, np.exp(-4.0)]).n == 2


def _one_line_error(fn, *args, **kwargs):
    with pytest.raises(gf.ConfigError) as err:
        fn(*args, **kwargs)
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize(
    "fn, args",
    [
        (fits.loglog_slope, ([1, 2], [1, -1])),  # non-positive for a logarithm
        (fits.loglog_slope, ([0, 2], [1, 1])),
        (fits.loglog_slope, ([2, 2], [1, 3])),  # a single distinct x
        (fits.loglog_slope, ([1, 2, 3], [1, 2])),  # unequal lengths
        (fits.loglog_slope, ([], [])),  # empty
        (fits.loglog_slope, ([1.0, np.nan], [1.0, 2.0])),  # one usable point
        (fits.loglog_slope, ([1, np.inf], [1, 2])),
        (fits.linear_fit, ([[1, 2], [3, 4]], [[1, 2], [3, 4]])),  # not one-dimensional
        (fits.linear_fit, ([1, 2], [1, np.inf])),
        (fits.linear_fit, ([np.nan, np.nan], [1, 2])),
        (fits.linear_fit, ("ab", [1, 2])),
        (fits.exponential_rate, ([0, 1, 2], [1e-30, 0.0, -1.0])),  # nothing above floor
        (fits.exponential_rate, ([0, np.nan], [1.0, 0.5])),
        (fits.exponential_rate, ([0, 1, 2], [1.0, 0.5, 0.25], 5.0)),  # nothing after t_from
    ],
)
def test_fits_refuse_invalid_input_in_one_line(fn, args):
    _one_line_error(fn, *args)


# --------------------------------------------------------------------------------------------
# crossings

# piecewise linear: 0 → 2 → 0 → 2 → 0 on t = 0..4; crosses 1 upwards at 0.5 and 2.5, downwards
# at 1.5 and 3.5
TS = np.arange(5.0)
ZIGZAG = np.array([0.0, 2.0, 0.0, 2.0, 0.0])


def test_crossings_of_a_piecewise_linear_series():
    np.testing.assert_allclose(fits.crossing_times(TS, ZIGZAG, 1.0), [0.5, 2.5], atol=1e-15)
    down = fits.crossing_times(TS, ZIGZAG, 1.0, direction="down")
    np.testing.assert_allclose(down, [1.5, 3.5], atol=1e-15)
    assert fits.crossing_time(TS, ZIGZAG, 1.0) == 0.5
    assert fits.crossing_time(TS, ZIGZAG, 0.5) == 0.25
    assert fits.crossing_time(TS, ZIGZAG, 1.5, direction="down") == 0.0  # starts below 1.5
    assert fits.crossing_time(TS, 2.0 - ZIGZAG, 1.5, direction="down") == 0.25
    # reaching the level exactly at a sample is reaching it there
    assert fits.crossing_time(TS, ZIGZAG, 2.0) == 1.0
    np.testing.assert_array_equal(fits.crossing_times(TS, ZIGZAG, 2.0), [1.0, 3.0])
    # a series that starts at the level has reached it at t_0, but not crossed it there
    assert fits.crossing_time(TS + 10, ZIGZAG, 0.0) == 10.0
    np.testing.assert_array_equal(fits.crossing_times(TS, ZIGZAG, 0.0, direction="down"), [2, 4])
    # never reached: NaN; empty series: NaN and no crossings
    assert np.isnan(fits.crossing_time(TS, ZIGZAG, 3.0))
    assert np.isnan(fits.crossing_time([], [], 1.0))
    assert fits.crossing_times([], [], 1.0).shape == (0,)
    assert fits.crossing_times([0.0], [5.0], 1.0).shape == (0,)


def test_log_and_logit_interpolation_are_exact_for_their_curves():
    t = np.linspace(0.0, 4.0, 5)  # coarse samples
    v = 0.01 * np.exp(1.7 * t)
    level = 0.01 * np.exp(1.7 * 2.3)
    assert fits.crossing_time(t, v, level, interpolation="log") == pytest.approx(2.3, abs=1e-14)
    assert abs(fits.crossing_time(t, v, level) - 2.3) > 0.1  # linear is not
    # the balanced depth-2 mode strength u = s/(1 + c e^{−2st}): linear in its logit
    s, c = 2.0, 1e4
    u = s / (1 + c * np.exp(-2 * s * t))
    t_half = np.log(c) / (2 * s)  # u = s/2
    got = fits.crossing_time(t, u, s / 2, interpolation="logit", upper=s)
    assert got == pytest.approx(t_half, abs=1e-14)
    np.testing.assert_allclose(
        gf.analytic.balanced_mode_strength(t, s, u[0], 2), u, rtol=1e-14
    )  # the same curve
    # where the transform is undefined (a sample ≤ 0 for 'log') the segment is linear
    assert fits.crossing_time([0, 1], [-1.0, 1.0], 0.5, interpolation="log") == 0.75
    assert fits.crossing_time([0, 1], [1.0, 3.0], 2.0, interpolation="logit", upper=3) == 0.5


def test_missing_samples_are_skipped():
    # the NaN sample is left out: the crossing of 1 is interpolated between t = 0 and t = 2
    assert fits.crossing_time([0, 1, 2], [0.0, np.nan, 2.0], 1.0) == 1.0
    assert fits.crossing_time([0, 1, 2], [np.nan, 0.0, 2.0], 1.0) == 1.5
    np.testing.assert_array_equal(fits.crossing_times([0, 1, 2], [0, np.inf, 2], 1.0), [1.0])
    assert np.isnan(fits.crossing_time([0, 1], [np.nan, np.nan], 1.0))


def test_first_below():
    ts, v = [0.0, 1.0, 2.0, 3.0], [5.0, 3.0, 1.0, 0.5]
    assert fits.first_below(ts, v, 1.0) == 3.0  # strictly below, no interpolation
    assert fits.first_below(ts, v, 4.0) == 1.0
    assert np.isnan(fits.first_below(ts, v, 0.1))
    assert fits.first_below(ts, [np.nan, np.nan, 0.0, 0.0], 1.0) == 2.0  # NaN never counts
    assert np.isnan(fits.first_below([], [], 1.0))


@pytest.mark.parametrize(
    "args, kwargs",
    [
        (([1, 0], [0, 1], 0.5), {}),  # decreasing times
        (([0, np.nan], [0, 1], 0.5), {}),
        (([0, 1], [0, 1], np.nan), {}),
        (([0, 1], [0, 1, 2], 0.5), {}),
        (([0, 1], [0, 1], 0.5), {"direction": "sideways"}),
        (([0, 1], [0, 1], 0.5), {"interpolation": "cubic"}),
        (([0, 1], [0, 1], 0.5), {"interpolation": "logit"}),  # no upper asymptote
    ],
)
def test_crossings_refuse_invalid_input_in_one_line(args, kwargs):
    _one_line_error(fits.crossing_time, *args, **kwargs)
    _one_line_error(fits.crossing_times, *args, **kwargs)


def test_slope_is_a_frozen_json_record():
    fit = fits.linear_fit([1.0, 2.0], [1.0, 3.0])
    out = fit.as_dict()
    assert out == {"slope": 2.0, "stderr": None, "intercept": -1.0, "n": 2, "r2": 1.0}
    json.dumps(out, allow_nan=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.slope = 0.0


def test_loglog_summary_leaves_out_zeros_and_says_why_it_cannot_fit():
    # y = 3 x^{-1} exactly, with an exact zero (tied layers' differences) and a NaN left out
    xs = np.array([2.0, 4.0, 8.0, 16.0, 32.0])
    ys = 3.0 / xs
    ys[1], ys[3] = 0.0, np.nan
    entry = fits.loglog_summary(xs, ys)
    assert entry["points"] == 3 and set(entry) == {"slope", "stderr", "points"}
    assert entry["slope"] == pytest.approx(-1.0, abs=1e-14)
    assert entry["stderr"] == pytest.approx(0.0, abs=1e-14)
    zeros = fits.loglog_summary(xs, np.r_[0.0, 0.0, 0.0, 1.0, np.inf])
    assert zeros["slope"] is None and zeros["stderr"] is None and zeros["points"] == 1
    assert "fewer than two positive" in zeros["reason"]
    json.dumps(zeros)
    with pytest.raises(gf.ConfigError, match="xs"):
        fits.loglog_summary([1.0, -2.0, 3.0], [1.0, 2.0, 3.0])
