"""The `saddles` experiment's config (see the package docstring)."""

from __future__ import annotations

import dataclasses

from gradflow.experiments import ExperimentConfig, checks, param


@dataclasses.dataclass(frozen=True)
class SaddlesConfig(ExperimentConfig):
    """Deep linear saddles of depths 2–4, and critical points polished at the ends of flows."""

    QUICK = dict(eps=(3e-2, 1e-2, 3e-3), probe_eps=(3e-2, 1e-2))
    TINY = dict(depths=(2, 3), eps=(1e-2, 3e-3), probe_eps=(3e-2, 1e-2), mf_t1=100.0)

    depths: tuple[int, ...] = param(
        (2, 3, 4), "depths H of the deep linear networks", check=checks.items(checks.count(2))
    )
    dim: int = param(
        2,
        "input, output and hidden width of the deep linear networks",
        check=checks.count(2),
        size=True,
    )
    singular_values: tuple[float, ...] = param(
        (2.0, 1.0),
        "singular values of the teacher (distinct, decreasing)",
        check=checks.items(checks.number()),
    )
    n: int = param(8, "samples of the (whitened) linear teacher", check=checks.count(2), size=True)
    eps: tuple[float, ...] = param(
        (3e-2, 1e-2, 3e-3, 1e-3),
        "perturbation sizes ε along the balanced escape direction",
        check=checks.items(checks.number()),
    )
    rtol: float = param(1e-12, "relative tolerance of the escape flows", check=checks.number())
    atol: float = param(1e-14, "absolute tolerance of the escape flows", check=checks.number())
    negative_eps: float = param(
        0.1, "size of the balanced starts negative on the next mode", check=checks.number()
    )
    probe_eps: tuple[float, ...] = param(
        (3e-2, 1e-2, 3e-3),
        "ε of the flow probe at the origin (H ≥ 3, random centre direction)",
        check=checks.items(checks.number()),
    )
    mf_n: int = param(6, "samples of the mean-field teacher", check=checks.count(), size=True)
    mf_layers: int = param(2, "layers L of the mean-field ResNet", check=checks.count(), size=True)
    mf_particles: int = param(2, "particles per layer M", check=checks.count(), size=True)
    l2: float = param(5e-2, "L2 weight λ of the mean-field objective", check=checks.number())
    mf_t1: float = param(
        200.0, "horizon of the mean-field flow before polishing", check=checks.number()
    )
    rn_n: int = param(3, "samples of the ResNet's Gaussian data", check=checks.count(), size=True)
    rn_width: int = param(4, "ResNet width m", check=checks.count(), size=True)
    rn_depth: int = param(2, "ResNet depth L", check=checks.count(), size=True)
    rn_risk: float = param(1e-4, "risk at which the ResNet flow stops", check=checks.number())
