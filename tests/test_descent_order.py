"""`gf.descent` converges to `gf.flow` at first order in the step (issue 2 acceptance).

Gradient descent θ_{k+1} = θ_k − η∇F(θ_k) is the explicit Euler scheme of θ' = −∇F, so at a fixed
time t = kη its error against the exact flow is C(t)·η + O(η²). The test runs GD with
η = 2⁻⁴ … 2⁻⁸ from the same small random init of a depth-2 network, compares every saved
iterate with a flow integrated at rtol 1e-12 (error ~1e-11, far below the GD errors ≥ 1e-3) at the
same times, and fits the log-log slope of max error against η: it must be 1 within 0.1.
"""

import jax
import jax.tree_util as jtu
import numpy as np
import pytest

import gradflow as gf

T = 4.0  # horizon; saves every 0.5, i.e. every 2^(p-1) steps at η = 2^-p
LRS = [2.0**-p for p in range(4, 9)]


@pytest.fixture(scope="module")
def problem():
    data = gf.data.linear_teacher(jax.random.PRNGKey(0), 4, 4, 64, [3.0, 2.0, 1.0])
    model = gf.models.DeepLinear([4, 4, 4], jax.random.PRNGKey(1), 0.3)
    ts = np.linspace(0.0, T, 401)  # the same save count as the other depth-2 flows in the suite
    reference = gf.flow(model, data, T, rtol=1e-12, atol=1e-14, saveat=ts)
    return data, model, reference


def _max_error(traj, reference, idx):
    return max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b)[idx])))
        for a, b in zip(
            jtu.tree_leaves(traj.params), jtu.tree_leaves(reference.params), strict=True
        )
    )


def test_descent_is_first_order(problem):
    data, model, reference = problem
    idx = np.arange(0, 401, 50)  # t = 0, 0.5, ..., 4
    errors = []
    for lr in LRS:
        every = int(round(0.5 / lr))
        traj = gf.descent(model, data, every * (len(idx) - 1), lr, save_every=every)
        np.testing.assert_allclose(np.asarray(traj.ts), np.asarray(reference.ts)[idx], atol=1e-12)
        errors.append(_max_error(traj, reference, idx))
    slope = np.polyfit(np.log(LRS), np.log(errors), 1)[0]
    local = np.diff(np.log(errors)) / np.diff(np.log(LRS))
    print(f"GD max errors {errors} for lr {LRS}: fitted slope {slope:.4f}, local slopes {local}")
    assert abs(slope - 1.0) <= 0.1
    assert np.all(np.abs(local - 1.0) <= 0.1)
    # the flow really moved (the errors are not those of a trivial, static problem)
    assert float(reference.loss[-1]) < 0.5 * float(reference.loss[0])
