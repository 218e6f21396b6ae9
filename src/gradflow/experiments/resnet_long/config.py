"""The configuration of `resnet-long` (the paper's Fig. 2 setting)."""

from __future__ import annotations

import dataclasses

from gradflow.experiments import checks, param, params
from gradflow.experiments import resnet_common as common

from .problem import long_problem


@dataclasses.dataclass(frozen=True)
class LongConfig(common.LogGridConfig):
    """The paper's Fig. 2 setting: one network flowed until its (paper's) risk ℓ = 2F is below
    `target_risk`, or until `t_max` (`gradflow describe resnet-long`)."""

    # Quick: still inside Thm. 6's regime (m ≥ n, L ≳ √(nq)): n = 10, m = 32, L = 32. (L = 8
    # with n = 50 is not, and stalls near ℓ ~ 6e-4.)
    QUICK = dict(n=10, width=32, depth=32, target_risk=1e-4, t_max=2000.0, saves=40, piece=8)
    TINY = dict(n=4, dim=4, width=8, depth=4, target_risk=1e-2, t_max=50.0, saves=8, piece=4)

    n: int = param(50, "number of samples x, y ~ N(0, I_dim)", check=checks.count(), size=True)
    dim: int = param(16, "data and state dimension", check=checks.count(), size=True)
    width: int = param(64, "width m of the residual layers", check=checks.count(), size=True)
    depth: int = param(64, "number of residual layers L", check=checks.count(), size=True)
    init_scheme: str = param("tied", "initialisation of the residual weights", choices=common.inits)
    activation: str = common.activation_param()
    length_scale: float = param(
        0.2, "ℓ of the smooth init's kernel in depth", check=checks.number()
    )
    target_risk: float = param(
        1e-7, "stop where the paper's risk ℓ = 2F crosses this", check=checks.number()
    )
    saves: int = params.log_saves(160)
    piece: int = params.piece(16)
    solver: str = param(
        "rkc", "the flow's solver ('rkc': the tail is stiff)", choices=common.solvers
    )
    rtol: float = params.rtol(1e-6)
    atol: float = params.atol(1e-10)
    paper_lr: float = param(
        0.32, "the paper's GD step on ℓ, to express times as GD steps", check=checks.number()
    )
    init: str | None = common.init_param()

    def validate(self) -> None:
        super().validate()
        if self.data is not None or self.init is not None:
            long_problem(self)  # reads both files: shapes, finiteness, dimensions

    def estimated_bytes(self) -> float:
        return common.flow_bytes(
            self.depth, 1, self.n, self.dim, self.width, self.saves, per_solve=self.piece
        )
