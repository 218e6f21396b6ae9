"""Critical points of deep linear networks (docs/deep-linear.md, docs/critical-points.md); the
saddles a trajectory visits are read off by `diagnostics.timeline`.

Whitened inputs, Σ_yx = U S Vᵀ with distinct s_1 > ... > s_r > 0, bottleneck k* = min_k n_k.
Every critical point of the half_mse risk has product W = U_J S_J V_Jᵀ for a subset J of the modes
with |J| ≤ k*, and value F_J = ½ Σ_{j∉J} s_j² + ½(tr Σ_yy − Σ_j s_j²)
(`gradflow.analytic.critical_value`). The 'mse' risk is (2/d_out) × half_mse: the same critical
points, values and Hessians × 2/d_out, the same kinds. Other losses are refused (cross-entropy and
logistic, which attain no minimum, with that reason).
`critical_points` builds, for each J with |J| ≤ min(k*, r), the balanced representative
W_k = R_k diag(s_J)^{1/H} R_{k−1}ᵀ (R_0 = V_J, R_H = U_J, intermediate R_k the first |J| coordinate
vectors; J = ∅ is the origin), checks that it is critical (`gradient_norm`), and classifies it from
its Hessian spectrum. Non-whitened data (Σ_xx invertible) are handled through the change of
variables W_1 ↦ W_1 Σ_xx^{1/2}: the points get W_1 ← W_1 Σ_xx^{−1/2}, values are unchanged, and the
Hessian is transformed by a congruence, so its inertia (the counts and the kind) is unchanged.

**Zero tolerance.** An eigenvalue λ counts as zero when |λ| ≤ tol · max_i |λ_i| (tol = 1e-8 by
default, relative to the largest |eigenvalue| at that point; all zero when the Hessian vanishes,
e.g. at the origin for H ≥ 3). The autodiff Hessian is exact to ~1e-15 relative, and the non-zero
eigenvalues at these points are O(s_j^{2(H−1)/H}) or gaps like s_i − s_j, far above tol.

**Beyond the Hessian** (docs/critical-points.md). Along a ray from the origin, F(εD) − F(0) =
−ε^H ⟨D_H⋯D_1, Σ_yx⟩ + O(ε^{2H}): the first non-vanishing term has order H, and the fastest
decrease among unit D is the balanced rank-one direction on the top mode (each D_k of norm H^{−1/2}).
The same holds at a balanced point that learned the top j modes, for mode j + 1. So each record
carries `escape_order` (2 at a strict saddle, H at a non-strict one, None at a global minimum),
`escape_direction` (flat θ-vector: the eigenvector of λ_min at a strict saddle, the balanced
rank-one direction D_k = H^{−1/2} r_k r_{k−1}ᵀ on the first unlearned mode m (r_0 = v_m,
r_H = u_m, r_k the first free hidden coordinate) at a non-strict one), `escape_mode` (that m),
`balanced_direction` (that balanced direction, at strict saddles too, where it escapes at order H
for H ≥ 3 while the eigenvector of λ_min escapes at order 2), and
`balanced_escape_time(ε)`: from the point moved by ε along the balanced direction of mode m, the
mode strength starts at u_0 = (ε/√H)^H and follows the exact balanced solution
u' = H u^{2−2/H}(s_m − u) while the learned modes stay put, so it reaches s_m/2 at
`analytic.learning_time(s_m, u_0, H)` (∝ log(1/ε) for H = 2, ∝ ε^{−(H−2)} for H ≥ 3); F is then
F_J − (3/8)s_m² (× 2/d_out for mse), the level a flow can stop at to measure it. (ε is measured in
whitened variables.) `orbit_dimension` is the rank of the infinitesimal rescaling action
(`diagnostics.orbit_dimension`); `unexplained_null_dimension` = n_zero − orbit_dimension counts
Hessian null directions the orbit does not explain (at the origin with H ≥ 3 all of them: every
(W_1, 0, …, 0) is critical). Ray signs are not a flow's fate: claims about escape are checked by
flowing (tests/diagnostics/test_critical_escape.py).

**Kinds.** `global_min` when the value equals the global minimum value (J = the top min(k*, r)
modes); otherwise `strict_saddle` when λ_min < −tol·max|λ| and `nonstrict_saddle` when not. For
the linearised flow θ' = −∇F the Jacobian is −∇²F: stable / unstable / centre dimensions are the
numbers of positive / negative / zero Hessian eigenvalues.
"""

from __future__ import annotations

import dataclasses
import itertools

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._errors import ConfigError
from .._loss_checks import require_minimum, squared_loss_factor
from .._problem import GradientFlowProblem
from .._result import Record, alias, not_json
from .._validation import check
from ..analytic import balanced_factorisation, critical_value, learning_time, teacher_modes
from ..losses import as_loss
from .escape import orbit_dimension
from .hessian import hessian_matrix

__all__ = ["CriticalPoint", "critical_points"]


@dataclasses.dataclass(frozen=True)
class CriticalPoint(Record):
    """One balanced representative critical point of a deep linear network (see module docs).

    `modes` (0-based, increasing), `value` (F at the point, measured), `critical_value` (the
    formula, for the loss used), `lambda_min`, `lambda_max`, the counts `n_negative`, `n_zero`,
    `n_positive` of Hessian eigenvalues, `kind`, `gradient_norm` (|∇F| at the point: ≈ 0
    certifies it is critical), `eigenvalues` (the sorted spectrum) and `model` (the `DeepLinear`
    at the point). The linearised flow θ' = −∇²F θ has the properties `unstable_dim`,
    `centre_dim`, `stable_dim`: the negative, zero and positive Hessian counts.
    """

    modes: tuple[int, ...]
    value: float
    critical_value: float
    lambda_min: float
    lambda_max: float
    n_negative: int
    n_zero: int
    n_positive: int
    kind: str
    gradient_norm: float
    eigenvalues: np.ndarray = dataclasses.field(repr=False)
    depth: int = 0
    escape_order: int | None = None
    escape_mode: int | None = None
    singular_value: float | None = None
    loss_factor: float = 1.0
    orbit_dimension: int = 0
    unexplained_null_dimension: int = 0
    escape_direction: np.ndarray | None = dataclasses.field(default=None, repr=False)
    balanced_direction: np.ndarray | None = dataclasses.field(default=None, repr=False)
    model: object = not_json(default=None, repr=False)

    # The linearised flow θ' = −∇²F θ: its unstable, centre and stable dimensions.
    unstable_dim = alias("n_negative", "Directions the linearised flow expands (λ < 0).")
    centre_dim = alias("n_zero", "Directions it leaves to higher order (λ = 0).")
    stable_dim = alias("n_positive", "Directions it contracts (λ > 0).")
    DERIVED = ("stable_dim", "unstable_dim", "centre_dim")

    def balanced_escape_time(self, eps, fraction: float = 0.5):
        """Closed-form time for mode `escape_mode` to reach `fraction`·s_m from the point moved
        by ε along its balanced direction (module docstring); None at a global minimum."""
        if self.escape_mode is None:
            return None
        u0 = (np.asarray(eps, float) / np.sqrt(self.depth)) ** self.depth
        return learning_time(self.singular_value, u0, self.depth, fraction)

    def escape_level(self, fraction: float = 0.5) -> float | None:
        """F where the escaping mode reaches `fraction`·s_m: F_J − κ s_m²(f − f²/2), κ = 1 for
        half_mse (2/d_out for mse)."""
        if self.escape_mode is None:
            return None
        s = self.singular_value
        return self.critical_value - self.loss_factor * s**2 * (fraction - fraction**2 / 2)


@eqx.filter_jit
def _value_and_grad_norm(problem, params):
    """(F, |∇F|) at `params`: the problem's own metrics (Euclidean here: |∇F|_G = |∇F|)."""
    return problem.metrics(params)


def critical_points(
    data, widths, tol: float | None = None, subsets=None, *, loss="half_mse"
) -> list:
    """One `CriticalPoint` per subset J of the modes with |J| ≤ min(k*, r), with its spectrum.

    The point for J is the balanced network W_k = R_k diag(s_J)^{1/H} R_{k−1}ᵀ (R_0 = V_J,
    R_H = U_J), whose product U_J diag(s_J) V_Jᵀ has learned exactly the modes J; its value is
    compared with F_J and its Hessian eigenvalues are counted (negative / zero / positive).

    **Arguments:**

    - `data`: a `Dataset` (whitened for the textbook picture; see the module docstring otherwise).
    - `widths`: [d_in, n_1, ..., d_out] of the network.
    - `tol`: relative zero tolerance for Hessian eigenvalues (default 1e-8, see module docstring).
    - `subsets`: only these sets J of modes (e.g. the saddles a trajectory visited); default: all
      with |J| ≤ min(k*, r).
    - `loss`: 'half_mse' (default) or 'mse' (values and eigenvalues × 2/d_out).

    **Returns:** a list of `CriticalPoint`, ordered by |J| then lexicographically (J = ∅ first).
    The Hessian is dense (exact inertia); networks with more than 4000 parameters are refused.
    """
    from ..models.deep_linear import DeepLinear, check_widths

    loss = as_loss(loss)
    require_minimum(loss, "critical_points", "classifies points against the global minimum")
    factor = 2.0 * squared_loss_factor(
        loss, data.out_dim, "critical_points builds the critical points of a squared loss"
    )  # 1 for half_mse
    widths = check_widths(widths, data)
    n_params = sum(widths[k] * widths[k + 1] for k in range(len(widths) - 1))
    if n_params > 4000:
        raise ConfigError(
            "widths",
            list(widths),
            "a network with at most 4000 parameters "
            "(dense Hessians; use hessian_spectrum(model, data, k) beyond)",
        )
    tol = 1e-8 if tol is None else float(tol)
    check(0 < tol < 1, "tol", tol, "a number in (0, 1)")
    u, s, v, inv_half = teacher_modes(data)
    whitened = np.array_equal(inv_half, np.eye(inv_half.shape[0]))
    r = s.size
    kstar = min(widths)
    top = min(kstar, r)
    global_value = factor * critical_value(data, tuple(range(top)))
    if subsets is None:
        subsets = [m for size in range(top + 1) for m in itertools.combinations(range(r), size)]
    else:
        subsets = [tuple(sorted(int(j) for j in m)) for m in subsets]
        check(
            all(
                len(m) <= top and len(set(m)) == len(m) and all(0 <= j < r for j in m)
                for m in subsets
            ),
            "subsets",
            subsets,
            f"sets of at most {top} distinct mode indices in 0..{r - 1}",
        )
    out = []
    for modes in subsets:
        idx = list(modes)
        weights = balanced_factorisation(
            u[:, idx], v[:, idx], s[idx], widths, None if whitened else inv_half
        )
        model = DeepLinear.from_weights([jnp.asarray(w) for w in weights])
        problem, params = GradientFlowProblem.from_model(model, data, loss=loss)
        value, gnorm = _value_and_grad_norm(problem, params)
        h = hessian_matrix(model, data, loss=loss)
        eig, vecs = np.linalg.eigh(0.5 * (h + h.T))
        scale = float(np.max(np.abs(eig))) if eig.size else 0.0
        zero = tol * scale
        n_neg = int(np.sum(eig < -zero))
        n_pos = int(np.sum(eig > zero))
        n_zero = int(eig.size - n_neg - n_pos)
        crit = factor * critical_value(data, modes)
        value = float(value)
        if abs(value - global_value) <= 1e-10 * max(1.0, abs(global_value)):
            kind = "global_min"
        elif n_neg > 0:
            kind = "strict_saddle"
        else:
            kind = "nonstrict_saddle"
        depth = len(widths) - 1
        free = [j for j in range(r) if j not in modes]
        mode = free[0] if free and len(modes) < kstar else None
        balanced = (
            None
            if mode is None
            else _balanced_direction(u, v, mode, len(modes), widths, inv_half, whitened)
        )
        if kind == "global_min":
            order, direction = None, None
        elif kind == "strict_saddle":
            order, direction = 2, vecs[:, 0]
        else:
            order, direction = depth, balanced
        orbit = orbit_dimension(model)
        out.append(
            CriticalPoint(
                depth=depth,
                escape_order=order,
                escape_mode=mode,
                singular_value=None if mode is None else float(s[mode]),
                loss_factor=factor,
                orbit_dimension=orbit,
                unexplained_null_dimension=n_zero - orbit,
                escape_direction=direction,
                balanced_direction=balanced,
                modes=tuple(modes),
                value=value,
                critical_value=crit,
                lambda_min=float(eig[0]),
                lambda_max=float(eig[-1]),
                n_negative=n_neg,
                n_zero=n_zero,
                n_positive=n_pos,
                kind=kind,
                gradient_norm=float(gnorm),
                eigenvalues=eig,
                model=model,
            )
        )
    return out


def _balanced_direction(u, v, mode, slot, widths, inv_half, whitened) -> np.ndarray:
    """The flat balanced rank-one direction D_k = H^{−1/2} r_k r_{k−1}ᵀ on `mode` (r_0 = v_m,
    r_H = u_m, r_k = the hidden coordinate vector e_slot), unit in whitened variables."""
    depth = len(widths) - 1
    frames = [v[:, mode]] + [np.eye(n)[:, slot] for n in widths[1:-1]] + [u[:, mode]]
    layers = [np.outer(frames[k], frames[k - 1]) / np.sqrt(depth) for k in range(1, depth + 1)]
    if not whitened:
        layers[0] = layers[0] @ inv_half
    return np.concatenate([w.ravel() for w in layers])


# ---------------------------------------------------------------------------------------------
# the saddle-to-saddle timeline of a trajectory
