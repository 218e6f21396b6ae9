"""`RungeKuttaChebyshev` (solver='rkc'): stability polynomial, order, spectral-radius estimate,
and its use on a stiff gradient flow, each against an exact answer."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from problems import deep_linear as _deep_problem

import gradflow as gf
from gradflow._chebyshev import DAMPING, RungeKuttaChebyshev, _rkc_stages

# A linear gradient flow y' = −Λy (F = ½ yᵀΛy) with curvatures from 1e-2 to 1e4: stiff, with the
# exact solution e^{−Λt} y₀.
LAMBDA = jnp.geomspace(1e-2, 1e4, 64)


def _linear_term(lam):
    return diffrax.ODETerm(lambda t, y, args: -lam * y)


def _stability_polynomial(z, stages):
    """R_s(z): one RKC step of y' = λy from y = 1 with hλ = z."""
    term = diffrax.ODETerm(lambda t, y, args: z * y)
    return _rkc_stages(term, 0.0, jnp.asarray(1.0), jnp.ones(()), None, z, jnp.asarray(stages))


@pytest.mark.parametrize("stages", [2, 3, 7, 20, 60])
def test_stability_interval_grows_as_stages_squared(stages):
    # β(s) ≈ (2 − 4ε/3)s²: |R_s| ≤ 1 on [−β, 0], where the solver's stage rule puts hρ.
    beta = (stages**2 - 1) / 1.54
    z = jnp.linspace(-beta, 0.0, 2001)
    r = jax.vmap(lambda zi: _stability_polynomial(zi, stages))(z)
    assert float(jnp.max(jnp.abs(r))) <= 1.0 + 1e-12
    # Damping: away from z = 0 the stiff components are damped, not merely kept bounded
    # (|R| ≤ 1 − ε/… at the interval's far half; ε = 2/13 gives ≈ 0.95).
    far = z < -beta / 2
    assert float(jnp.max(jnp.abs(r[far]))) < 1.0 - DAMPING / 4


def test_two_stage_polynomial_is_the_taylor_polynomial():
    # s = 2: R is a quadratic with R(0) = 1, R'(0) = 1, R''(0) = 1, i.e. exactly 1 + z + z²/2.
    for z in (-0.3, -1.0, -2.5):
        r = float(_stability_polynomial(jnp.asarray(z), 2))
        assert abs(r - (1 + z + z**2 / 2)) < 1e-14


@pytest.mark.parametrize("stages", [3, 5, 30])
def test_stability_polynomial_is_second_order(stages):
    # R_s(z) = 1 + z + z²/2 + O(z³): the method is consistent to second order for every s.
    zs = np.array([1e-2, 5e-3, 2.5e-3])
    errs = [
        abs(float(_stability_polynomial(jnp.asarray(-z), stages)) - (1 - z + z**2 / 2)) for z in zs
    ]
    slopes = np.diff(np.log(errs)) / np.diff(np.log(zs))
    np.testing.assert_allclose(slopes, 3.0, atol=0.1)


def test_second_order_at_fixed_step_on_a_nonlinear_problem():
    # y' = −y³ + sin t has no closed form; the error against a Dopri8 reference at rtol 1e-13
    # falls as h² with h (the stage count fixed by the step and ρ; here ρ small, s = 2 or 3).
    term = diffrax.ODETerm(lambda t, y, args: -(y**3) + jnp.sin(t))
    y0 = jnp.array([1.5, -0.5])
    ref = diffrax.diffeqsolve(
        term,
        diffrax.Dopri8(),
        0.0,
        2.0,
        None,
        y0,
        stepsize_controller=diffrax.PIDController(rtol=1e-13, atol=1e-13),
        max_steps=100_000,
    ).ys[-1]
    hs = [0.1, 0.05, 0.025, 0.0125]
    errs = []
    for h in hs:
        y = diffrax.diffeqsolve(
            term,
            RungeKuttaChebyshev(),
            0.0,
            2.0,
            h,
            y0,
            stepsize_controller=diffrax.ConstantStepSize(),
            max_steps=1000,
        ).ys[-1]
        errs.append(float(jnp.max(jnp.abs(y - ref))))
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert abs(slope - 2.0) < 0.15, (slope, errs)


def test_error_estimate_tracks_the_local_error():
    # One step from y0: the estimate (12(y0 − y1) + 6h(f0 + f1))/15 is O(h³), like the true local
    # error y1 − y(h) (against Dopri8 at 1e-14), and of the same size (within a factor 2) — so the
    # controller's tolerance means what it says.
    term = diffrax.ODETerm(lambda t, y, args: -(y**3) + jnp.sin(t) - 5 * y)
    y0 = jnp.array([1.5, -0.5])
    solver = RungeKuttaChebyshev()
    hs = [0.02, 0.01, 0.005, 0.0025]
    estimated, true = [], []
    for h in hs:
        state = solver.init(term, 0.0, h, y0, None)
        y1, err, _, _, _ = solver.step(term, 0.0, h, y0, None, state, False)
        ref = diffrax.diffeqsolve(
            term,
            diffrax.Dopri8(),
            0.0,
            h,
            None,
            y0,
            stepsize_controller=diffrax.PIDController(rtol=1e-14, atol=1e-16),
        ).ys[-1]
        estimated.append(float(jnp.linalg.norm(err)))
        true.append(float(jnp.linalg.norm(y1 - ref)))
    assert abs(np.polyfit(np.log(hs), np.log(estimated), 1)[0] - 3.0) < 0.15
    ratio = np.array(estimated) / np.array(true)
    assert np.all((ratio > 0.5) & (ratio < 2.0)), ratio


def _solve_linear(solver, rtol, t1=100.0):
    ts = jnp.array([1.0, 10.0, t1])
    sol = diffrax.diffeqsolve(
        _linear_term(LAMBDA),
        solver,
        0.0,
        t1,
        None,
        jnp.ones_like(LAMBDA),
        saveat=diffrax.SaveAt(ts=ts, solver_state=isinstance(solver, RungeKuttaChebyshev)),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=rtol * 1e-3),
        max_steps=200_000,
    )
    exact = jnp.exp(-LAMBDA[None] * ts[:, None])
    return sol, float(jnp.max(jnp.abs(sol.ys - exact)))


@pytest.mark.parametrize("rtol", [1e-4, 1e-7])
def test_stiff_linear_flow_accuracy_and_cost(rtol):
    sol, err = _solve_linear(RungeKuttaChebyshev(), rtol)
    # Global error of the order of the tolerance.
    assert err < 30 * rtol, err
    # Far beyond Tsit5's stability: it needs h ≤ 3.5/ρ, i.e. ≥ ρT/3.5 ≈ 2.9e5 steps of 6
    # evaluations here, whatever the tolerance; RKC takes ≥ 10× fewer steps and evaluations.
    floor = float(LAMBDA.max()) * 100.0 / 3.5
    steps, evals = int(sol.stats["num_steps"]), int(sol.solver_state[3])
    assert steps < floor / 10, steps
    assert evals < 6 * floor / 10, evals
    # The power iteration finds the spectral radius ρ = max Λ (to 1%: the top two curvatures
    # differ by 20%, so the iteration converges fast).
    rho = float(sol.solver_state[2])
    assert abs(rho / float(LAMBDA.max()) - 1) < 1e-2, rho


def test_error_decreases_with_tolerance():
    errs = [_solve_linear(RungeKuttaChebyshev(), rtol)[1] for rtol in (1e-4, 1e-6, 1e-8)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 1e-6


def test_flow_with_rkc_matches_tsit5_and_conserves():
    # A depth-2 linear network: nonlinear flow with conserved W₂ᵀW₂ − W₁W₁ᵀ.
    model, data = _deep_problem()
    ts = np.linspace(0.0, 20.0, 21)
    ref = gf.flow(model, data, 20.0, saveat=ts, rtol=1e-11, atol=1e-13)
    got = gf.flow(model, data, 20.0, saveat=ts, rtol=1e-9, atol=1e-11, solver="rkc")
    assert got.info["solver"] == "rkc"
    for a, b in zip(got.params.weights, ref.params.weights, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    drift = gf.diagnostics.conservation_drift(got)
    assert drift.relative < 1e-6, drift.relative
    st = got.stats
    # The evaluation count: at least one per step plus the start-up power iterations.
    assert st["function_evaluations"] >= 3 * st["num_steps"] + 30
