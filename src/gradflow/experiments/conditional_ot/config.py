"""The configuration of `conditional-ot`: the sizes, the sweep, the flow's tolerances and budget.

The data are the tanh teacher (`gf.data.tanh_teacher`): x_i ~ N(0, I_d), y_i = (1/√K) V tanh(W x_i
+ c), K = 16. The model is a `MeanFieldResNet` with state dimension q = d + d' + 1 (the readout
coordinate starts at zero). Sizes up to 10⁶–10⁷ particles per run are accepted where
`gf.models.flow_plan` finds they fit: fewer saved states are kept and their metrics computed in
pieces.
"""

from __future__ import annotations

import dataclasses

import gradflow as gf
from gradflow.experiments import checks, param, params
from gradflow.experiments.mean_field_config import MeanFieldConfig


def solver_names() -> list[str]:
    """'auto' (see `run.choose`) and gradflow's solvers."""
    return ["auto", *gf.SOLVERS]


@dataclasses.dataclass(frozen=True)
class ConditionalOTConfig(MeanFieldConfig):
    """Features (particles per layer) × initial scale sweep of the conditional-OT flow."""

    QUICK = dict(particles=(1, 16), t1=3000.0, max_steps=10_000)
    TINY = dict(n=6, layers=2, particles=(1, 2), init_scales=(0.5,), t1=20.0)

    particles: tuple[int, ...] = param(
        (1, 2, 4, 8, 16, 32, 64),
        "the particles per layer M swept",
        check=checks.items(checks.count(), what="positive integers"),
        size=True,
    )
    init_scales: tuple[float, ...] = param(
        (0.5, 8.0),
        "spreads s of the Gaussian initial measure swept",
        check=checks.items(checks.number(), what="positive numbers"),
    )
    t1: float = param(3000.0, "the horizon of every flow", check=checks.number())
    threshold: float = param(
        1e-8,
        "a run converged when its final risk is below this",
        check=checks.open_interval(0.0, 1.0),
    )
    rtol: float = params.rtol(1e-8)
    atol: float = params.atol(1e-12)
    max_steps: int = param(40_000, "the solver's step budget per flow", check=checks.count())
    solver: str = param(
        "auto",
        "the flow's solver ('auto': Tsit5 unless its stability limit exceeds max_steps, then RKC)",
        choices=solver_names,
    )
    saves: int = params.flow_saves(200, "log-spaced")
    wc_max_particles: int = params.wc_max_particles(
        "W_C(start, end) is computed for M up to this (its cost grows like M² to M³)"
    )

    def plan(self, memory: float | None = None) -> gf.models.FlowPlan:
        """Saves kept and metric pieces of the largest flow (`gf.models.flow_plan`)."""
        dim = self.state_dim
        return gf.models.flow_plan(
            self.samples(), self.layers, max(self.particles), dim, self.saves + 1, memory=memory
        )

    def estimated_bytes(self) -> float:
        # one flow at a time; the best run's trajectory is kept beside it
        plan = self.plan()
        return plan.estimated_bytes + plan.saves * plan.state_bytes
