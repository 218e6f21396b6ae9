"""Closed forms for the ResNets of Marion, Wu, Sander & Biau (ICLR 2024; docs/resnets.md): the
ReLU counter-example's fixed point, and the conversion between gradflow's flow time and the
paper's gradient-descent steps.

**Units.** The paper's risk is ℓ = (1/n) Σ_i |f(x_i) − y_i|²; gradflow's default risk is
F = (1/2n) Σ_i |f(x_i) − y_i|² = ℓ/2. The residual weights Z_k = (V_k, W_k) of a depth-L network
are flowed in the conditional-Wasserstein geometry (mass 1/L per layer), Z_k' = −L ∂F/∂Z_k
= −(L/2) ∂ℓ/∂Z_k. The paper's gradient descent Z_k ← Z_k − lr ∂ℓ/∂Z_k (Euclidean, on ℓ) is the
explicit Euler scheme of Z_k' = −(L/2) ∂ℓ/∂Z_k with time step 2·lr/L, so N steps reach gradflow
time t = 2·N·lr/L (`resnet_flow_time`) and a gradflow time t is N = t·L/(2·lr) steps
(`resnet_gd_steps`). E.g. the paper's Fig. 1 (lr = L·10⁻², 500 steps) is t = 10 at every depth.

**ReLU counter-example.** Depth 2L, d = q = m = 1, V_k = 1 fixed, one sample (x, Cx) with x > 0
and C > 1, w_k(0) = (−1)^k/(2L). The hidden state stays positive; the odd layers start at
w = −1/(2L) < 0, so σ(w h) = 0 for ReLU: they are dead, their gradient vanishes and they never
move. Each even layer multiplies h by 1 + w_k/(2L); they start equal and stay equal, so the
network fits Cx when (1 + w*/(2L))^L = C: w* = 2L(C^{1/L} − 1) (`relu_fixed_point`), which
decreases to 2 log C as L → ∞ (w* = 2 log C + (log C)²/L + O(1/L²)). The successive differences
|w_{k+1} − w_k| then all equal w* + 1/(2L) (`relu_successive_difference`): Ω(1), not the O(1/L)
of a smooth activation, so the trained network is not close to a neural ODE.
"""

from __future__ import annotations

import numpy as np

from .._validation import check, positive, positive_int, real

__all__ = [
    "relu_fixed_point",
    "relu_successive_difference",
    "resnet_flow_time",
    "resnet_gd_steps",
]


def _check_c(C) -> float:
    return real("C", C, minimum=1.0, strict_minimum=True, accepted="a number C > 1")


def relu_fixed_point(half_depth: int, C: float) -> float:
    """w* = 2L(C^{1/L} − 1), the solution of (1 + w*/(2L))^L = C (L = `half_depth`): the common
    limit of the even layers of the ReLU counter-example of depth 2L (module docstring)."""
    half_depth = positive_int("half_depth", half_depth)
    C = _check_c(C)
    return float(2 * half_depth * np.expm1(np.log(C) / half_depth))


def relu_successive_difference(half_depth: int, C: float) -> float:
    """w* + 1/(2L): the limit of every |w_{k+1} − w_k| in the ReLU counter-example (the odd
    layers stay at −1/(2L), the even ones go to w* = `relu_fixed_point(half_depth, C)`)."""
    return relu_fixed_point(half_depth, C) + 1.0 / (2 * positive_int("half_depth", half_depth))


def resnet_flow_time(steps, lr: float, depth: int, *, loss_ratio: float = 2.0):
    """t = c·N·lr/L: the gradflow time reached by N = `steps` steps of gradient descent with step
    `lr` on a loss ℓ = c·F, for a ResNet of depth L flowed in the conditional-Wasserstein geometry
    (module docstring). `steps` may be an array.

    `loss_ratio` c = (the descent's loss)/(the flow's F): 2 (default) for the paper's
    ℓ = (1/n)Σ|f − y|² against gradflow's default 'half_mse'; 1 when both use the same loss (e.g.
    the official script's `MSELoss` flowed with `loss="mse"`); 2/d_out for `MSELoss` against
    'half_mse'."""
    lr, depth = positive("lr", lr), positive_int("depth", depth)
    c = positive("loss_ratio", loss_ratio)
    steps = np.asarray(steps, dtype=float)
    check(bool(np.all(steps >= 0)), "steps", steps.tolist(), "non-negative step counts")
    return c * steps * lr / depth if steps.ndim else float(c * steps * lr / depth)


def resnet_gd_steps(t, lr: float, depth: int, *, loss_ratio: float = 2.0):
    """N = t·L/(c·lr): the number of gradient-descent steps (step `lr` on a loss ℓ = c·F, c =
    `loss_ratio` as in `resnet_flow_time`: 2 for the paper's ℓ against 'half_mse') that gradflow
    time `t` of the conditional-Wasserstein flow of F corresponds to for a ResNet of depth L (not
    rounded)."""
    lr, depth = positive("lr", lr), positive_int("depth", depth)
    c = positive("loss_ratio", loss_ratio)
    t = np.asarray(t, dtype=float)
    check(bool(np.all(t >= 0)), "t", t.tolist(), "non-negative times")
    return t * depth / (c * lr) if t.ndim else float(t * depth / (c * lr))
