"""The configuration of `lojasiewicz`: sizes, the penalty λ, the horizon, saves and the solve.

The data are the tanh teacher (`gf.data.tanh_teacher`) and the model a tanh `MeanFieldResNet`
with state dimension q = d + d' + 1, as in `conditional-ot`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

import gradflow as gf
from gradflow.experiments import checks, param, params
from gradflow.experiments.mean_field_config import MeanFieldConfig


def init_shape(path) -> tuple[int, ...] | None:
    """The shape of the array u in the .npz file `path` (None if it cannot be read: the loader
    then says why)."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return tuple(arrays["u"].shape) if "u" in arrays.files else None
    except (OSError, ValueError):
        return None


@dataclasses.dataclass(frozen=True)
class LojasiewiczConfig(MeanFieldConfig):
    """A long L2-regularised conditional-Wasserstein flow of a tanh mean-field ResNet."""

    QUICK = dict(layers=2, particles=4, l2=5e-2, t1=1e4, saves=150, extend=2.0)
    TINY = dict(
        n=6, layers=2, particles=2, l2=5e-2, t1=2e3, saves=40, extend=2.0, rtol=1e-9, atol=1e-12
    )

    particles: int = param(8, "particles per layer M", check=checks.count(), size=True)
    init_scale: float = param(1.0, "spread of the Gaussian initial measure", check=checks.number())
    l2: float = param(
        1e-2, "L2 regularisation λ > 0 (the Łojasiewicz experiment needs it)", check=checks.number()
    )
    t1: float = param(1e5, "the horizon", check=checks.number())
    saves: int = param(400, "number of log-spaced saves (≥ 16)", check=checks.count(16), size=True)
    rtol: float = params.rtol(1e-10)
    atol: float = params.atol(1e-13)
    solver: str = param("tsit5", "the flow's solver", choices=lambda: list(gf.SOLVERS))
    controller: str = param("pid", "the step-size controller", choices=("integral", "pid"))
    piece: int = param(
        50,
        "save intervals per piece of the flow, checkpointed after each (≥ saves: one solve)",
        check=checks.count(),
    )
    init: str | None = param(
        None,
        "an .npz file of the initial particles u (L, M, q), w (L, M, q), b (L, M) (q = d + d' + 1)",
        file=True,
    )
    extend: float = param(
        3.0,
        "F_inf from a solve to extend·t1 with tighter tolerances (> 1)",
        check=checks.number(1.0),
    )

    def validate(self) -> None:
        super().validate()  # reads and checks the data file
        checks.require_loss(self, minimum="the PL and Łojasiewicz fits")
        if self.init is not None:  # read and checked here, before any run
            expected = (self.layers, self.particles, self.state_dim)
            shape = init_shape(self.init)
            if shape is not None and shape != expected:  # before a skeleton of that size is made
                raise gf.ConfigError("init", f"u of shape {shape}", f"shape {expected}")
            self.model(None)

    def model(self, key) -> gf.models.MeanFieldResNet:
        """The tanh mean-field ResNet at the start: drawn with `key` from the Gaussian measure of
        spread init_scale, or the particles of the file `init` (arrays u, w, b)."""
        shape, q = (self.layers, self.particles), self.state_dim
        positions = None
        if key is None or self.init is not None:  # a skeleton to load into (or to check a file)
            positions = (np.zeros((*shape, q)), np.zeros((*shape, q)), np.zeros(shape))
        model = gf.models.MeanFieldResNet(
            self.in_dim,
            q,
            self.layers,
            self.particles,
            self.out_dim,
            key=key,
            activation="tanh",
            init_scale=self.init_scale,
            positions=positions,
        )
        if self.init is None:
            return model
        return gf.models.load_parameters(model, self.init, field="init")

    def estimated_bytes(self) -> float:
        # the flow's saves and the longer F_inf solve's, held together
        dim = self.state_dim
        plan = gf.models.flow_plan(
            self.samples(), self.layers, self.particles, dim, 2 * self.saves, memory=math.inf
        )
        return plan.estimated_bytes
