"""The configuration of `mean-field-limit`: sizes, the particle counts compared, the horizon.

The data are the tanh teacher (`gf.data.tanh_teacher`) and the model a `MeanFieldResNet` with
state dimension q = d + d' + 1. Every size M and its double 2M are flowed with the array shapes
of the largest 2M (one compiled solve), so the doubles must all divide the largest. Sizes up to
10⁶–10⁷ particles are accepted where `gf.models.flow_plan` finds they fit (fewer saves kept,
metrics in pieces).
"""

from __future__ import annotations

import dataclasses

import gradflow as gf
from gradflow.experiments import checks, param, params
from gradflow.experiments.mean_field_config import MeanFieldConfig

NESTED = "sizes whose doubles all divide the largest (e.g. powers of two)"


@dataclasses.dataclass(frozen=True)
class MeanFieldLimitConfig(MeanFieldConfig):
    """Runs with M and 2M particles per layer (nested i.i.d. draws) compared at time t1."""

    QUICK = dict(particles=(4, 8), seeds=1, t1=5.0)
    TINY = dict(n=6, layers=2, particles=(2, 4), seeds=1, t1=1.0)

    particles: tuple[int, ...] = param(
        (4, 8, 16, 32, 64, 128),
        "the sizes M compared with 2M (at least two; doubles dividing the largest)",
        check=checks.items(checks.count(), min_length=2, what="positive integers"),
        size=True,
    )
    init_scale: float = param(1.0, "spread of the Gaussian initial measure", check=checks.number())
    t1: float = param(20.0, "the time at which the flows are compared", check=checks.number())
    seeds: int = param(3, "number of independent draws", check=checks.count(), size=True)
    rtol: float = params.rtol(1e-8)
    atol: float = params.atol(1e-10)
    saves: int = params.flow_saves(41, "evenly spaced")
    wc_max_particles: int = params.wc_max_particles(
        "W_C(μ^M, μ^2M) is computed while 2M is at most this (exact: cost ~ (2M)³ per layer)"
    )

    def validate(self) -> None:
        super().validate()
        sizes = self.sizes()
        self.require(all(sizes[-1] % m == 0 for m in sizes), {"particles": NESTED})

    def sizes(self) -> list[int]:
        """Every M and 2M, increasing."""
        return sorted(set(self.particles) | {2 * m for m in self.particles})

    def plan(self, memory: float | None = None) -> gf.models.FlowPlan:
        """Saves kept and metric pieces of a flow at the largest size (`gf.models.flow_plan`)."""
        dim = self.state_dim
        return gf.models.flow_plan(
            self.samples(), self.layers, max(self.sizes()), dim, self.saves, memory=memory
        )

    def estimated_bytes(self) -> float:
        # one flow at a time, plus the start and end measures of every size and seed
        plan = self.plan()
        kept = 2 * self.seeds * sum(self.sizes()) / max(self.sizes())
        return plan.estimated_bytes + kept * plan.state_bytes
