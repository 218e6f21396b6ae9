"""The configuration of `resnet-pl` (width m against the number of samples n)."""

from __future__ import annotations

import dataclasses

from gradflow.experiments import checks, param, params
from gradflow.experiments import resnet_common as common


@dataclasses.dataclass(frozen=True)
class PLConfig(common.LogGridConfig):
    """Width against sample size: does the flow reach an interpolating minimum, with the PL ratio
    bounded away from zero? (`gradflow describe resnet-pl`)"""

    QUICK = dict(n=12, depth=8, widths=(3, 48), target_risk=1e-6, t_max=500.0, saves=16, piece=8)
    TINY = dict(n=4, dim=4, depth=4, widths=(2, 8), target_risk=1e-3, t_max=50.0, saves=8, piece=4)

    n: int = param(50, "number of samples x, y ~ N(0, I_dim)", check=checks.count(), size=True)
    dim: int = param(16, "data and state dimension", check=checks.count(), size=True)
    depth: int = param(
        32, "number of residual layers L (tied init)", check=checks.count(), size=True
    )
    widths: tuple[int, ...] = param(
        (8, 16, 32, 64, 128, 256),
        "the widths m swept (m/n is the overparameterisation)",
        check=checks.items(checks.count(), what="positive integers"),
        size=True,
    )
    activation: str = common.activation_param()
    target_risk: float = param(
        1e-8, "ℓ = 2F below which a run counts as converged (it stops there)", check=checks.number()
    )
    saves: int = params.log_saves(64)
    piece: int = params.piece(8)
    pl_floor: float = param(
        1e-4,
        "a run keeps PL when its minimum PL ratio along the path exceeds this",
        check=checks.number(),
    )
    solver: str = param(
        "rkc", "the flow's solver ('rkc': the tails are stiff)", choices=common.solvers
    )
    rtol: float = params.rtol(1e-6)
    atol: float = params.atol(1e-10)

    def validate(self) -> None:
        super().validate()
        common.user_data(self, max_dim=self.dim)

    def estimated_bytes(self) -> float:
        m = max(self.widths)
        kernel = 8.0 * self.n * self.dim * (self.depth * 2 * m * self.dim + 2 * self.dim**2)
        sizes = (self.n, self.dim, m, self.saves)
        return kernel + common.flow_bytes(self.depth, 1, *sizes, per_solve=self.piece)
