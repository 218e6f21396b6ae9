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
from gradflow.experiments import ExperimentConfig, checks, param


def solver_names() -> list[str]:
    """'auto' (see `run.choose`) and gradflow's solvers."""
    return ["auto", *gf.SOLVERS]


@dataclasses.dataclass(frozen=True)
class ConditionalOTConfig(ExperimentConfig):
    """Features (particles per layer) × initial scale sweep of the conditional-OT flow."""

    QUICK = dict(particles=(1, 16), t1=3000.0, max_steps=10_000)
    TINY = dict(n=6, layers=2, particles=(1, 2), init_scales=(0.5,), t1=20.0)

    n: int = param(12, "number of samples of the teacher data", check=checks.count(), size=True)
    in_dim: int = param(2, "input dimension d", check=checks.count(), size=True)
    out_dim: int = param(1, "output dimension d'", check=checks.count(), size=True)
    data: str | None = param(
        None,
        "an .npz file of arrays x (n, in_dim), y (n, out_dim) used instead of the tanh teacher",
        file=True,
    )
    layers: int = param(
        4, "number of layers L of the mean-field ResNet", check=checks.count(), size=True
    )
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
    rtol: float = param(1e-8, "relative tolerance of the flow", check=checks.number())
    atol: float = param(1e-12, "absolute tolerance of the flow", check=checks.number())
    max_steps: int = param(40_000, "the solver's step budget per flow", check=checks.count())
    solver: str = param(
        "auto",
        "the flow's solver ('auto': Tsit5 unless its stability limit exceeds max_steps, then RKC)",
        choices=solver_names,
    )
    saves: int = param(
        200,
        "log-spaced saves per flow (fewer kept where they would not fit)",
        check=checks.count(2),
    )
    wc_max_particles: int = param(
        4096,
        "W_C(start, end) is computed for M up to this (its cost grows like M² to M³)",
        check=checks.count(),
    )

    def validate(self) -> None:
        super().validate()
        self.samples()  # a data file is read and checked here, before any run

    def dataset(self, key) -> gf.Dataset:
        """The data: the file `data` (checked against in_dim, out_dim), else the tanh teacher
        (`gf.data.tanh_teacher`) drawn with `key`, n samples."""
        if self.data is not None:
            return gf.data.load_npz(
                self.data, field="data", in_dim=self.in_dim, out_dim=self.out_dim
            )
        return gf.data.tanh_teacher(key, self.n, self.in_dim, self.out_dim)

    def samples(self) -> int:
        """n: the file's number of samples when `data` is set."""
        return self.n if self.data is None else self.dataset(None).n

    def plan(self, memory: float | None = None) -> gf.models.FlowPlan:
        """Saves kept and metric pieces of the largest flow (`gf.models.flow_plan`)."""
        dim = self.in_dim + self.out_dim + 1
        return gf.models.flow_plan(
            self.samples(), self.layers, max(self.particles), dim, self.saves + 1, memory=memory
        )

    def estimated_bytes(self) -> float:
        # one flow at a time; the best run's trajectory is kept beside it
        plan = self.plan()
        return plan.estimated_bytes + plan.saves * plan.state_bytes
