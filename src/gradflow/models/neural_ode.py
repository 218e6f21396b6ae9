"""The neural-ODE limit of a ResNet (Marion, Wu, Sander, Biau, ICLR 2024; docs/resnets.md):

    H(0) = A x,   H'(s) = (1/√m) V(s) σ(W(s) H(s)/√q),  s ∈ [0, 1],   f(x) = B H(1),

with the same scalings as `ResNet` (whose step 1/L supplies the 1/L; `normalise=False` drops
the 1/√m and 1/√q), and the weights V(s), W(s) interpolating L nodes V_1..V_L, W_1..W_L:

- `interpolation="constant"`: V(s) = V_{k+1} on [k/L, (k+1)/L). The ResNet is exactly the explicit
  Euler scheme (step 1/L) of this ODE.
- `interpolation="linear"`: the node V_k sits at s = k/L; V is linear between nodes and constant
  (= V_1) on [0, 1/L]. For weights sampled from a smooth function this recovers it to O(1/L²).

The ODE is solved by diffrax (Tsit5 with a PID step-size controller at the stated `rtol`, `atol`)
interval by interval: one solve on each [k/L, (k+1)/L], inside a `jax.lax.scan`, so that the
vector field is smooth within every solve (the interpolated weights have a kink or a jump at each
node). The global error is then a few times the tolerance. Gradients go through the solver steps
(diffrax's `RecursiveCheckpointAdjoint`: the exact derivative of the computed solution).
"""

from __future__ import annotations

from typing import final

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, Inputs, Outputs
from .._validation import check_choice, positive, positive_int
from ._residual import AbstractResidualNetwork

INTERPOLATIONS = ("linear", "constant")


@final
class NeuralODE(AbstractResidualNetwork):
    """A neural ODE with depth-dependent weights given at L nodes (see the module docstring).

    **Arguments:**

    - `V` (L, q, m), `W` (L, m, q): the weights at the nodes; `A` (q, d), `B` (d', q): embedding
      and readout, or None for the fixed [I; 0] and [0, I] of sizes `io_dims` = (d, d')
      (default (q, q)).
    - `activation`: as for `ResNet`.
    - `interpolation`: 'linear' (default) or 'constant'.
    - `rtol`, `atol`: the solver's tolerances (default 1e-10 each).
    - `max_steps`: step budget of each interval's solve.
    - `train_embedding`, `frozen`, `normalise`: as for `ResNet`.

    Build one from a network with `resnet.ode_limit(interpolation=...)`. Masses are 1/L per node,
    as for the ResNet, so the two flows can be compared in the same geometry.
    """

    interpolation: str = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)

    def __init__(
        self,
        V,
        W,
        A=None,
        B=None,
        io_dims=None,
        activation="gelu",
        interpolation="linear",
        rtol=1e-10,
        atol=1e-10,
        max_steps=4096,
        train_embedding=False,
        frozen=(),
        normalise=True,
    ):
        self.V, self.W = jnp.asarray(V, dtype=float), jnp.asarray(W, dtype=float)
        self.A = None if A is None else jnp.asarray(A, dtype=float)
        self.B = None if B is None else jnp.asarray(B, dtype=float)
        if io_dims is None:
            dim = self.V.shape[-2]
            io_dims = (dim if A is None else A.shape[-1], dim if B is None else B.shape[-2])
        self.io_dims = tuple(int(d) for d in io_dims)
        self.activation = activation
        self.interpolation = interpolation
        self.rtol, self.atol = positive("rtol", rtol), positive("atol", atol)
        self.max_steps = max_steps
        self.train_embedding = bool(train_embedding)
        self.frozen = tuple(frozen) if isinstance(frozen, tuple | list) else frozen
        self.normalise = normalise

    def __check_init__(self):
        check_choice("interpolation", self.interpolation, INTERPOLATIONS)
        positive("rtol", self.rtol)
        positive("atol", self.atol)
        positive_int("max_steps", self.max_steps)

    def _segments(self):
        """(start, end) node weights of each interval [k/L, (k+1)/L], k = 0..L−1."""
        if self.interpolation == "constant":
            return (self.V, self.V), (self.W, self.W)

        def shift(a):  # a_{k}, with the first interval held at a_1
            return jnp.concatenate([a[:1], a[:-1]])

        return (shift(self.V), self.V), (shift(self.W), self.W)

    def weights_at(self, s) -> tuple[Array, Array]:
        """V(s), W(s) for a scalar s ∈ [0, 1]."""
        depth = self.depth
        k = jnp.clip(jnp.floor(s * depth).astype(int), 0, depth - 1)
        (v0, v1), (w0, w1) = self._segments()
        a = jnp.clip(s * depth - k, 0.0, 1.0)
        return (1 - a) * v0[k] + a * v1[k], (1 - a) * w0[k] + a * w1[k]

    def _solve_interval(self, h, segment):
        (v0, v1, w0, w1, k) = segment
        depth = self.depth
        sigma = self.sigma()
        root_m, root_q = self.root_sizes()
        c_out, c_in = 1.0 / root_m, 1.0 / root_q
        t0 = k / depth
        t1 = (k + 1) / depth

        def field(s, y, args):
            a = (s - t0) * depth
            v = (1 - a) * v0 + a * v1
            w = (1 - a) * w0 + a * w1
            return c_out * sigma(c_in * y @ w.T) @ v.T

        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            diffrax.Tsit5(),
            t0,
            t1,
            1.0 / depth,
            h,
            stepsize_controller=diffrax.PIDController(rtol=self.rtol, atol=self.atol),
            max_steps=self.max_steps,
        )
        return sol.ys[-1], None

    def flow_map(self, h0: Float[Array, "n q"]) -> Float[Array, "n q"]:
        """H(1) from H(0) = h0."""
        (v0, v1), (w0, w1) = self._segments()
        ks = jnp.arange(self.depth, dtype=float)
        h1, _ = jax.lax.scan(lambda h, seg: self._solve_interval(h, seg), h0, (v0, v1, w0, w1, ks))
        return h1

    def __call__(self, x: Inputs) -> Outputs:
        a, b = self.embedding_matrices()
        return self.flow_map(x @ a.T) @ b.T
