"""The configuration of `resnet-digits` (activation × init on scikit-learn's digits)."""

from __future__ import annotations

import dataclasses

from gradflow.experiments import ExperimentConfig, checks, param
from gradflow.experiments import resnet_common as common


@dataclasses.dataclass(frozen=True)
class DigitsConfig(ExperimentConfig):
    """The paper's CIFAR-10 table (activation × init) transposed to scikit-learn's digits
    (`gradflow describe resnet-digits`)."""

    QUICK = dict(depth=8, activations=("gelu", "relu"), steps=60)
    TINY = dict(input_dim=8, dim=16, width=8, depth=4, activations=("gelu",), steps=10)

    input_dim: int = param(
        16, "PCA dimension of the inputs (at most 64, the pixels)", check=checks.count(1, 64)
    )
    dim: int = param(
        32, "state dimension q (≥ max(input_dim, 10))", check=checks.count(), size=True
    )
    width: int = param(32, "width m of the residual layers", check=checks.count(), size=True)
    depth: int = param(64, "number of residual layers L", check=checks.count(), size=True)
    activations: tuple[str, ...] = param(
        ("identity", "gelu", "relu"), "the activations of the grid", choices=common.activations
    )
    inits: tuple[str, ...] = param(("tied", "iid"), "the inits of the grid", choices=common.inits)
    steps: int = param(300, "training steps of gf.descent", check=checks.count(), size=True)
    lr: float = param(4.0, "the descent's step", check=checks.number())
    optimizer: str = param(
        "momentum",
        "the descent's optimizer (heavy ball 0.9 by default)",
        choices=common.optimizers,
    )
    train_fraction: float = param(
        0.8, "fraction of the digits in the training set", check=checks.open_interval(0.0, 1.0)
    )
    smooth_threshold: float = param(
        1.0,
        "trained weights are smooth in depth when L·max_k|Z_{k+1} − Z_k| / max_k|Z_k| ≤ this",
        check=checks.number(),
    )
    loss: str = common.loss_param()
    data: str | None = param(
        None,
        "an .npz file of arrays x (n, d_in) and y (n, classes; argmax = label) instead of digits",
        file=True,
    )

    def validate(self) -> None:
        super().validate()
        low = max(self.input_dim, 10)
        self.require(
            self.dim >= low,
            {"dim": f"≥ max(input_dim, 10) = {low}", "input_dim": f"≤ dim = {self.dim}"},
        )
        common.user_data(self, max_dim=self.dim)

    def estimated_bytes(self) -> float:
        n = 1797 * self.train_fraction
        members = len(self.inits)
        return common.flow_bytes(self.depth, members, n, self.dim, self.width, 11, per_solve=2)
