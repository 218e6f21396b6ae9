"""The configuration of `resnet-depth` (the paper's Fig. 1 setting, for three inits)."""

from __future__ import annotations

import dataclasses

from gradflow.experiments import checks, param, params
from gradflow.experiments import resnet_common as common


@dataclasses.dataclass(frozen=True)
class DepthConfig(common.LossDataConfig):
    """The paper's Fig. 1 setting, for three initialisations (`gradflow describe resnet-depth`)."""

    QUICK = dict(depths=(4, 8, 16), saves=2, fit_min_depth=4)
    TINY = dict(n=8, dim=4, width=8, depths=(2, 4), saves=2, reference_factor=2, fit_min_depth=2)

    n: int = param(100, "number of samples x_i, y_i ~ N(0, I_dim)", check=checks.count(), size=True)
    dim: int = param(16, "data and state dimension d = q = d'", check=checks.count(), size=True)
    width: int = param(32, "width m of the residual layers", check=checks.count(), size=True)
    depths: tuple[int, ...] = param(
        (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        "the depths L swept (at least two, distinct)",
        check=checks.items(checks.count(), min_length=2, distinct=True, what="positive integers"),
        size=True,
    )
    inits: tuple[str, ...] = param(
        ("tied", "smooth", "iid"), "initialisations compared", choices=common.inits
    )
    activation: str = common.activation_param()
    length_scale: float = param(
        0.2, "ℓ of the smooth init's squared-exponential kernel in depth", check=checks.number()
    )
    horizon: float = param(
        10.0,
        "training time T (gradflow units; 10 = the paper's 500 GD steps at lr = L·1e-2)",
        check=checks.number(),
    )
    saves: int = param(
        10, "number of equal save intervals on [0, T]", check=checks.count(), size=True
    )
    reference_factor: int = param(
        8,
        "the reference depth (the depth limit) is this times max(depths)",
        check=checks.count(),
        size=True,
    )
    reference_inits: tuple[str, ...] = param(
        ("tied", "smooth"),
        "the inits whose distance to the reference is measured (a subset of inits)",
        choices=common.inits,
    )
    fit_min_depth: int = param(8, "slopes are fitted on depths ≥ this", check=checks.count())
    rtol: float = params.rtol(1e-6)
    atol: float = params.atol(1e-8)

    def validate(self) -> None:
        super().validate()
        common.user_data(self, max_dim=self.dim)
        self.require(
            all(i in self.inits for i in self.reference_inits),
            {
                "reference_inits": f"a subset of inits {list(self.inits)}",
                "inits": f"a list including the reference_inits {list(self.reference_inits)}",
            },
        )

    def estimated_bytes(self) -> float:
        ref = self.reference_factor * max(self.depths)
        sizes = (self.n, self.dim, self.width, self.saves)
        kept = sum(8.0 * d * 2 * self.width * self.dim * (self.saves + 1) for d in self.depths)
        return kept * len(self.inits) + max(
            common.flow_bytes(max(self.depths), len(self.inits), *sizes),
            common.flow_bytes(ref, len(self.reference_inits), *sizes),
        )
