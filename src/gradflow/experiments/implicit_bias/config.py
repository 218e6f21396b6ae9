"""Configuration of the `implicit-bias` experiment."""

from __future__ import annotations

import dataclasses

from gradflow.experiments import ExperimentConfig, checks, param, params


@dataclasses.dataclass(frozen=True)
class ImplicitBiasConfig(ExperimentConfig):
    """Linear logistic regression on generic separable data, flowed in log time to `t1`."""

    QUICK = dict(t1=1e30, fit_from=1e12, saves=91)
    TINY = dict(n=8, dim=2, t1=1e16, fit_from=1e8, saves=33, descent_steps=200)

    n: int = param(40, "number of samples", check=checks.count(minimum=2), size=True)
    dim: int = param(5, "input dimension d", check=checks.count(minimum=2), size=True)
    t1: float = param(1e40, "horizon of the flow", check=checks.number(minimum=1.0))
    fit_from: float = param(
        1e15,
        "the angle's fit a/(log t + b) and its monotonicity use the saves with t >= this",
        check=checks.number(minimum=1.0),
    )
    saves: int = param(
        121, "number of log-spaced save times in [1e-2, t1]", check=checks.count(minimum=4)
    )
    rtol: float = params.rtol(1e-10)
    atol: float = params.atol(1e-12)
    max_steps: int = param(100_000, "the solver's step budget", check=checks.count())
    descent_steps: int = param(
        2000,
        "steps of gradient descent (lr 1) run as a check that it raises no divergence alarm",
        check=checks.count(),
    )

    def validate(self) -> None:
        super().validate()
        # the fit needs at least two decades of saves
        self.require(
            self.fit_from <= self.t1 / 100,
            {
                "fit_from": f"≤ t1/100 = {self.t1 / 100:g}",
                "t1": f"≥ 100 fit_from = {100 * self.fit_from:g}",
            },
        )
