"""The configuration of `resnet-relu` (the ReLU counter-example)."""

from __future__ import annotations

import dataclasses

from gradflow.experiments import checks, param, params
from gradflow.experiments import resnet_common as common


@dataclasses.dataclass(frozen=True)
class ReluConfig(common.LossDataConfig):
    """The ReLU counter-example: a scalar ResNet h_{k+1} = h_k + (1/(2L)) σ(w_{k+1} h_k) of depth
    2L (d = q = m = 1, V_k = 1 fixed), one sample (x, Cx), w_k(0) = (−1)^k/(2L)."""

    QUICK = dict(halves=(2, 8), horizon=30.0)
    TINY = dict(halves=(1, 2), horizon=5.0, activations=("relu",))

    halves: tuple[int, ...] = param(
        (2, 4, 8, 16, 32, 64, 128),
        "the values of L (the network has 2L layers; at least two)",
        check=checks.items(checks.count(), min_length=2, what="positive integers"),
        size=True,
    )
    C: float = param(2.0, "the target's factor (y = Cx), > 1", check=checks.number(1.0))
    x: float = param(1.0, "the sample's input x > 0", check=checks.number())
    horizon: float = param(40.0, "the flow time", check=checks.number())
    activations: tuple[str, ...] = param(
        ("relu", "gelu"),
        "ReLU (the counter-example) and, for contrast, smooth ones",
        choices=common.activations,
    )
    rtol: float = params.rtol(1e-10)
    atol: float = params.atol(1e-12)

    def validate(self) -> None:
        super().validate()
        checks.require_loss(self, minimum="the counter-example's limit w*")
        common.user_data(self, in_dim=1, out_dim=1)  # the counter-example is scalar

    def estimated_bytes(self) -> float:
        return 8.0 * 2 * max(self.halves) * (41 + 13) * len(self.activations)
