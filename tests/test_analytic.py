"""gradflow.analytic: the exact balanced solutions are right, and the integrator reproduces them;
the aligned balanced prediction returns an exact solution's own learning time; the ResNet closed
forms (ReLU fixed point → 2 log C, GD steps ↔ flow time, checked against the paper's GD).

Acceptance (issue 2): from a balanced aligned init, depths 2 and 3, every mode strength of
`gf.flow` at rtol 1e-10 matches `balanced_mode_strength` to relative 1e-6 over the whole flow.
"""

import equinox as eqx
import jax
import mpmath
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import gradflow as gf
from gradflow import analytic as an
from gradflow.analytic._balanced import _invert

SINGULAR_VALUES = [3.0, 2.0, 1.0]


@pytest.fixture(scope="module")
def data():
    return gf.data.linear_teacher(jax.random.PRNGKey(0), 4, 4, 64, SINGULAR_VALUES)


# --------------------------------------------------------------------------------------------
# the scalar solution


@pytest.mark.parametrize("s,u0", [(1.0, 1e-6), (3.0, 1e-10), (0.5, 2.0), (2.0, 0.3)])
def test_depth2_closed_form_equals_general_inversion(s, u0):
    # The general route (closed form (2) inverted by bisection) reproduces the explicit H = 2
    # formula.
    t = np.linspace(0.0, 20.0, 201)
    explicit = an.balanced_mode_strength(t, s, u0, 2)
    general = _invert(t, np.full_like(t, s), np.full_like(t, u0), 2)
    np.testing.assert_allclose(general, explicit, rtol=1e-13, atol=0)
    # and the explicit formula is the one in MODELS.md: s e^{2st}/(e^{2st} − 1 + s/u0)
    e = np.exp(2 * s * t[:50])
    np.testing.assert_allclose(explicit[:50], s * e / (e - 1 + s / u0), rtol=1e-13)


@pytest.mark.parametrize("depth", [3, 4, 5])
@pytest.mark.parametrize("s,u0", [(1.0, 1e-4), (3.0, 1e-3), (0.5, 2.0), (2.0, 0.3)])
def test_inversion_matches_high_precision_quadrature(depth, s, u0):
    # Ground truth: t(u) = ∫_{u0}^{u} dv / (H v^{2−2/H}(s − v)) by 30-digit quadrature, then
    # u(t(u)) must return u.
    mpmath.mp.dps = 30
    fr = [0.1, 0.5, 0.9, 0.999]
    us = [u0 * (s / u0) ** f for f in fr] if u0 < s else [u0 + (s - u0) * f for f in fr]
    p = 2 - mpmath.mpf(2) / depth
    ts = [float(mpmath.quad(lambda v: 1 / (depth * v**p * (s - v)), [u0, u])) for u in us]
    back = an.balanced_mode_strength(np.array(ts), s, u0, depth)
    np.testing.assert_allclose(back, us, rtol=1e-12, atol=0)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_solution_solves_the_ode(depth):
    # An independent integrator (scipy DOP853 in log u, rtol 1e-13) agrees with the exact solution.
    s, u0 = 2.0, 1e-3
    ts = np.linspace(0.0, 12.0 if depth > 1 else 30.0, 61)
    sol = solve_ivp(
        lambda t, y: [depth * np.exp(y[0]) ** (1 - 2 / depth) * (s - np.exp(y[0]))],
        (0.0, ts[-1]),
        [np.log(u0)],
        method="DOP853",
        rtol=1e-13,
        atol=1e-14,
        t_eval=ts,
    )
    exact = an.balanced_mode_strength(ts, s, u0, depth)
    np.testing.assert_allclose(np.exp(sol.y[0]), exact, rtol=1e-10)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_learning_time_inverts_the_solution(depth, fraction):
    s = np.array([3.0, 2.0, 1.0])
    u0 = 1e-5
    t = an.learning_time(s, u0, depth, fraction)
    np.testing.assert_allclose(an.balanced_mode_strength(t, s, u0, depth), fraction * s, rtol=1e-12)
    if depth == 2:
        expected = np.log((s / u0 - 1) / (1 / fraction - 1)) / (2 * s)
        np.testing.assert_allclose(t, expected, rtol=1e-14)
    # plateau lengths: ~ (1/s) log(1/ε) for H = 2, ~ ε^{−(H−2)}/((H−2)s) for H ≥ 3 (ε = u0^{1/H})
    if depth >= 3:
        eps = u0 ** (1 / depth)
        np.testing.assert_allclose(t, eps ** -(depth - 2) / ((depth - 2) * s), rtol=0.15)


def test_broadcasting_and_limits():
    t = np.linspace(0, 5, 7)
    s = np.array([3.0, 2.0, 1.0])
    u = an.balanced_mode_strength(t[:, None], s, 1e-3, 3)
    assert u.shape == (7, 3)
    np.testing.assert_allclose(u[0], 1e-3, rtol=1e-15)
    np.testing.assert_allclose(an.balanced_mode_strength(1e3, s, 1e-3, 3), s, rtol=1e-15)
    np.testing.assert_allclose(an.balanced_mode_strength(t, 2.0, 2.0, 4), 2.0)
    assert np.all(np.diff(u, axis=0) > 0)  # increasing from below s
    with pytest.raises(gf.ConfigError):
        an.balanced_mode_strength(-1.0, 1.0, 0.1, 3)
    with pytest.raises(gf.ConfigError):
        an.balanced_mode_strength(1.0, 1.0, 0.0, 3)
    with pytest.raises(gf.ConfigError):
        an.balanced_mode_strength(1.0, 1.0, 0.1, 0)


# --------------------------------------------------------------------------------------------
# balanced aligned networks and critical values


def test_balanced_aligned_init_structure(data):
    m = an.balanced_aligned_init(data, [4, 5, 4, 4], [0.1, 0.02, 0.003])
    u, s, v, _ = an.teacher_modes(data)
    np.testing.assert_allclose(s, SINGULAR_VALUES, rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(m.product()), u @ np.diag([0.1, 0.02, 0.003]) @ v.T, atol=1e-14
    )
    for c in m.conserved():  # balanced: C_k = 0
        np.testing.assert_allclose(np.asarray(c), 0.0, atol=1e-15)
    with pytest.raises(gf.ConfigError):
        an.balanced_aligned_init(data, [4, 2, 4], 0.1)  # hidden width 2 < 3 modes
    with pytest.raises(gf.ConfigError):
        an.balanced_aligned_init(data, [4, 4, 4], [0.1, 0.2])  # wrong number of strengths
    with pytest.raises(gf.ConfigError):
        an.balanced_aligned_init(data, [4, 4, 4], -0.1)
    with pytest.raises(gf.ConfigError):
        an.balanced_aligned_init(data, [5, 4, 4], 0.1)  # widths do not match the data


def test_critical_value(data):
    tr_syy = float(data.moments().tr_syy)
    s2 = np.array(SINGULAR_VALUES) ** 2
    assert an.critical_value(data, ()) == pytest.approx(0.5 * tr_syy, rel=1e-13)
    assert an.critical_value(data, (0, 2)) == pytest.approx(
        0.5 * s2[1] + 0.5 * (tr_syy - s2.sum()), rel=1e-13
    )
    with pytest.raises(gf.ConfigError):
        an.critical_value(data, (3,))


def test_critical_value_non_whitened():
    # Σ_xx ≠ I: the value at W = U_J S_J V_Jᵀ Σ_xx^{−1/2} (M = Σ_yx Σ_xx^{−1/2} = U S Vᵀ) is F_J.
    d = gf.data.linear_teacher(jax.random.PRNGKey(5), 3, 3, 40, [2.0, 1.0], whiten=False)
    u, s, v, inv_half = an.teacher_modes(d)
    for modes in [(), (0,), (1,), (0, 1)]:
        j = list(modes)
        w = u[:, j] @ np.diag(s[j]) @ v[:, j].T @ inv_half
        model = gf.models.DeepLinear.from_weights([w])
        assert float(gf.losses.HalfMSE().risk(model, d.moments())) == pytest.approx(
            an.critical_value(d, modes), rel=1e-10, abs=1e-12
        )


# --------------------------------------------------------------------------------------------
# acceptance: the integrator against the exact solution


@pytest.fixture(scope="module", params=[(2, 1e-4, 12.0), (3, 1e-3, 12.0)], ids=["H2", "H3"])
def balanced_flow(request, data):
    depth, u0, t1 = request.param
    widths = [4] + [4] * (depth - 1) + [4]
    model = an.balanced_aligned_init(data, widths, u0)
    ts = np.linspace(0.0, t1, 401)
    traj = gf.flow(model, data, t1, rtol=1e-10, atol=1e-14, saveat=ts)
    return depth, u0, traj


def test_flow_matches_balanced_solution(balanced_flow, data):
    depth, u0, traj = balanced_flow
    tl = gf.diagnostics.saddle_timeline(traj, data)
    exact = an.balanced_mode_strength(tl.ts[:, None], tl.singular_values, u0, depth)
    rel = np.abs(tl.mode_strengths - exact) / exact
    print(f"H={depth}: max relative error of mode strengths over the flow = {rel.max():.2e}")
    assert rel.max() <= 1e-6
    # every mode went from u0 to (nearly) s: the comparison covers the whole sigmoid
    assert np.all(tl.mode_strengths[-1] > 0.99 * tl.singular_values)
    # learning times agree with the closed form (interpolated between saves, Δt = 0.03)
    np.testing.assert_allclose(
        tl.learn_times, an.learning_time(tl.singular_values, u0, depth), rtol=1e-3
    )
    # the flow stays balanced: C_k(t) = C_k(0) = 0
    assert gf.diagnostics.conservation_drift(traj).relative <= 1e-12


# --------------------------------------------------------------------------------------------
# the balanced solution aligned on a measured escape


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_aligned_prediction_of_an_exact_balanced_solution(depth):
    s, u0 = 1.5, 1e-6
    t_align = float(an.learning_time(s, u0, depth, 0.01))  # u(t_align) = s/100
    t_learn = float(an.learning_time(s, u0, depth, 0.5))
    # samples on a grid through t_align (the alignment is then exact; off the grid it is
    # log-interpolated, see below)
    ts = np.unique(np.concatenate([np.linspace(0.0, 2 * t_learn, 301), [t_align]]))
    u = an.balanced_mode_strength(ts, s, u0, depth)
    pred = an.aligned_balanced_prediction(ts, u, s, depth)
    assert pred.t_align == pytest.approx(t_align, rel=1e-12)
    assert pred.t_predicted == pytest.approx(t_learn, rel=1e-10)
    # the aligned curve is the solution itself after t_align, NaN before
    curve = pred.curve(ts)
    after = ts >= pred.t_align
    np.testing.assert_allclose(curve[after], u[after], rtol=1e-9)
    assert np.all(np.isnan(curve[~after]))
    # off the grid, t_align is log-interpolated: linear interpolation of y = log u over a save
    # interval Δt errs by at most Δt²/8 · max|y''|, i.e. by that over y' in time, with
    # y' = H u^{1−2/H}(s − u) and y'' = H[(1 − 2/H)u^{−2/H}(s − u) − u^{1−2/H}] u'
    grid = np.linspace(0.0, 2 * t_learn, 301)
    coarse = an.aligned_balanced_prediction(
        grid, an.balanced_mode_strength(grid, s, u0, depth), s, depth
    )
    dt = grid[1]
    h = depth
    near = np.linspace(*an.balanced_mode_strength(np.array([t_align - dt, t_align + dt]), s, u0, h))
    dy = h * near ** (1 - 2 / h) * (s - near)
    ddy = h * ((1 - 2 / h) * near ** (-2 / h) * (s - near) - near ** (1 - 2 / h)) * near * dy
    bound = dt**2 / 8 * np.max(np.abs(ddy)) / np.min(dy)
    assert abs(coarse.t_predicted - t_learn) <= bound
    assert abs(coarse.t_measured - t_learn) <= dt  # linear within the bracketing interval


def test_aligned_prediction_uses_the_last_rise_and_says_when_undetermined():
    s, depth, u0 = 1.0, 3, 1e-3
    t_learn = float(an.learning_time(s, u0, depth, 0.5))
    t_align = float(an.learning_time(s, u0, depth, 0.01))
    ts = np.unique(np.concatenate([np.linspace(0.0, 2 * t_learn, 201), [t_align]]))
    u = an.balanced_mode_strength(ts, s, u0, depth)
    # a transient spike through s/100 early on (cross-talk) that falls back: ignored
    spiked = u.copy()
    spiked[3:6] = [0.02, 0.05, 0.02]
    pred = an.aligned_balanced_prediction(ts, spiked, s, depth)
    assert pred.t_predicted == pytest.approx(t_learn, rel=1e-10)
    # never learned, or above s/100 from the start: undetermined
    early = ts < 0.5 * t_learn
    never = an.aligned_balanced_prediction(ts[early], u[early], s, depth)
    assert np.isnan(never.t_align) and np.isnan(never.t_predicted) and np.isnan(never.t_measured)
    assert np.all(np.isnan(never.curve(ts)))
    late = ts > t_align
    assert np.isnan(an.aligned_balanced_prediction(ts[late], u[late], s, depth).t_align)
    with pytest.raises(gf.ConfigError):
        an.aligned_balanced_prediction(ts, u, s, depth, align=0.6)  # align ≥ fraction
    with pytest.raises(gf.ConfigError):
        an.aligned_balanced_prediction(ts, u, -1.0, depth)


# --------------------------------------------------------------------------------------------
# ResNets (Marion et al.): the ReLU counter-example, and GD steps against flow time


def test_relu_fixed_point_closed_form():
    for half, c in [(1, 2.0), (4, 2.0), (16, 5.0), (1000, 1.3)]:
        w = an.relu_fixed_point(half, c)
        assert (1 + w / (2 * half)) ** half == pytest.approx(c, rel=1e-13)
        assert an.relu_successive_difference(half, c) == pytest.approx(w + 1 / (2 * half))
    assert an.relu_fixed_point(1, 2.0) == pytest.approx(2.0)  # (1 + w/2) = 2
    # w* → 2 log C as L → ∞, with w* = 2 log C + (log C)²/L + O(1/L²)
    c = 3.0
    for half in (10, 100, 1000, 10_000):
        w = an.relu_fixed_point(half, c)
        assert abs(w - 2 * np.log(c) - np.log(c) ** 2 / half) <= 2 * np.log(c) ** 3 / half**2
    assert an.relu_fixed_point(10**9, c) == pytest.approx(2 * np.log(c), rel=1e-9)
    for bad in [(0, 2.0), (4, 1.0), (4, 0.5), (4, float("nan")), (2.5, 2.0)]:
        with pytest.raises(gf.ConfigError):
            an.relu_fixed_point(*bad)


def test_resnet_time_conversion():
    # the paper's Fig. 1: lr = L·1e-2 for 500 steps is gradflow time 10 at every depth
    for depth in (2, 64, 1024):
        assert an.resnet_flow_time(500, depth * 1e-2, depth) == pytest.approx(10.0, rel=1e-14)
    assert an.resnet_gd_steps(10.0, 0.32, 64) == pytest.approx(1000.0, rel=1e-14)
    steps = np.array([0, 10, 80_000])
    np.testing.assert_allclose(
        an.resnet_gd_steps(an.resnet_flow_time(steps, 0.32, 64), 0.32, 64), steps, rtol=1e-14
    )
    with pytest.raises(gf.ConfigError):
        an.resnet_flow_time(-1, 0.1, 4)
    with pytest.raises(gf.ConfigError):
        an.resnet_gd_steps(1.0, 0.0, 4)
    # the official script: SGD lr = L·η on MSELoss, flowed with loss="mse" (loss_ratio 1):
    # step k is t = k·lr/L; against half_mse on d' = 16 outputs, MSELoss = (2/16)·F
    assert an.resnet_gd_steps(5.0, 0.32, 64, loss_ratio=1.0) == pytest.approx(1000.0, rel=1e-14)
    assert an.resnet_flow_time(1000, 0.32, 64, loss_ratio=2 / 16) == pytest.approx(0.625)
    with pytest.raises(gf.ConfigError, match="loss_ratio"):
        an.resnet_gd_steps(1.0, 0.32, 4, loss_ratio=0.0)


def test_paper_gradient_descent_reaches_the_converted_flow_time():
    # The paper's GD, Z ← Z − lr ∂ℓ/∂Z on ℓ = 2F (Euclidean, residual weights), N steps, against
    # gradflow's conditional-Wasserstein flow at t = 2·N·lr/L: they agree up to GD's O(step) error.
    import jax.tree_util as jtu

    key = jax.random.PRNGKey(0)
    depth = 4
    model = gf.models.ResNet(2, 3, 4, depth, 2, key=key, init="smooth")
    data = gf.data.gaussian(key, 6, 2, 2)
    problem, params = gf.GradientFlowProblem.from_model(model, data)
    lr, steps = depth * 1e-3, 250
    grad_ell = jax.jit(jax.grad(lambda p: 2.0 * problem.objective(p)))
    gd = params
    for _ in range(steps):
        gd = jtu.tree_map(lambda p, g: p - lr * g, gd, grad_ell(gd))
    t = an.resnet_flow_time(steps, lr, depth)
    assert t == pytest.approx(0.5)
    traj = gf.flow(model, data, t, geometry="conditional_wasserstein", rtol=1e-10, atol=1e-12)
    flowed, _ = eqx.partition(traj.final, traj.final.trainable())
    moved = lambda p: np.concatenate(
        [np.ravel(a - b) for a, b in zip(jtu.tree_leaves(p), jtu.tree_leaves(params), strict=True)]
    )
    err = np.linalg.norm(moved(gd) - moved(flowed)) / np.linalg.norm(moved(flowed))
    print(f"GD against the flow at t = 2·N·lr/L: relative difference {err:.2e}")
    assert err < 1e-2  # a factor 2 wrong in the conversion would give ~0.5
