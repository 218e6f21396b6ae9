"""The configuration of `lojasiewicz`: sizes, the penalty λ, the horizon, saves and the solve.

The data are the tanh teacher (`gf.data.tanh_teacher`) and the model a tanh `MeanFieldResNet`
with state dimension q = d + d' + 1, as in `conditional-ot`.
"""

from __future__ import annotations

import dataclasses
import math

import gradflow as gf
from gradflow.experiments import ExperimentConfig, checks, param


@dataclasses.dataclass(frozen=True)
class LojasiewiczConfig(ExperimentConfig):
    """A long L2-regularised conditional-Wasserstein flow of a tanh mean-field ResNet."""

    QUICK = dict(layers=2, particles=4, l2=5e-2, t1=1e4, saves=150, extend=2.0)
    TINY = dict(
        n=6, layers=2, particles=2, l2=5e-2, t1=2e3, saves=40, extend=2.0, rtol=1e-9, atol=1e-12
    )

    n: int = param(12, "number of samples of the teacher data", check=checks.count(), size=True)
    in_dim: int = param(2, "input dimension d", check=checks.count(), size=True)
    out_dim: int = param(1, "output dimension d'", check=checks.count(), size=True)
    layers: int = param(
        4, "number of layers L of the mean-field ResNet", check=checks.count(), size=True
    )
    particles: int = param(8, "particles per layer M", check=checks.count(), size=True)
    init_scale: float = param(1.0, "spread of the Gaussian initial measure", check=checks.number())
    l2: float = param(
        1e-2, "L2 regularisation λ > 0 (the Łojasiewicz experiment needs it)", check=checks.number()
    )
    t1: float = param(1e5, "the horizon", check=checks.number())
    saves: int = param(400, "number of log-spaced saves (≥ 16)", check=checks.count(16), size=True)
    rtol: float = param(1e-10, "relative tolerance of the flow", check=checks.number())
    atol: float = param(1e-13, "absolute tolerance of the flow", check=checks.number())
    solver: str = param("tsit5", "the flow's solver", choices=lambda: list(gf.SOLVERS))
    controller: str = param("pid", "the step-size controller", choices=("integral", "pid"))
    extend: float = param(
        3.0,
        "F_inf from a solve to extend·t1 with tighter tolerances (> 1)",
        check=checks.number(1.0),
    )

    def estimated_bytes(self) -> float:
        # the flow's saves and the longer F_inf solve's, held together
        dim = self.in_dim + self.out_dim + 1
        plan = gf.models.flow_plan(
            self.n, self.layers, self.particles, dim, 2 * self.saves, memory=math.inf
        )
        return plan.estimated_bytes
