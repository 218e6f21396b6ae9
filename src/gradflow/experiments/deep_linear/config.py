"""The configuration of `deep-linear`: every field, its presets, and the relations between them."""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

import gradflow as gf
from gradflow.experiments import ExperimentConfig, checks, param

DEFAULT_S = (4.0, 3.0, 2.2, 1.6, 1.2, 0.9, 0.65, 0.5)
QUICK_S = (3.0, 1.8, 1.0, 0.6)
# critical_points computes dense Hessians: networks of at most this many parameters.
MAX_PARAMS = 4000
# Two singular values of a data file closer than this (relative) are not distinct modes.
DISTINCT_S = 1e-6


def _optional_number(meaning: str):
    """A field that is none (derived or off) or a positive number."""
    return param(None, meaning, check=checks.optional(checks.number()))


def _solvers():
    return ["auto", *gf.SOLVERS]


@dataclasses.dataclass(frozen=True)
class DeepLinearConfig(ExperimentConfig):
    """Configuration of `deep-linear` (`gradflow describe deep-linear` lists every key)."""

    # Quick and tiny flows are solved in one piece per segment: a piece costs its own compiled
    # solve and checkpoint, which only a long flow repays.
    QUICK = dict(dim=4, n=64, saves=300, singular_values=QUICK_S, pieces=1)
    TINY = dict(
        pieces=1,
        dim=2,
        depth=2,
        n=8,
        saves=40,
        singular_values=(2.0, 1.0),
        init_scale=0.1,
        rtol=1e-8,
        atol=1e-10,
    )

    dim: int = param(8, "input = output = hidden width d", check=checks.count(), size=True)
    depth: int = param(3, "number of layers H (≥ 2)", check=checks.count(2), size=True)
    singular_values: tuple[float, ...] | None = param(
        None,
        "the teacher's distinct singular values s_j (at most dim); none: the first dim of "
        "4, 3, 2.2, 1.6, 1.2, 0.9, 0.65, 0.5 (with data=FILE: unused, the file's)",
        check=checks.optional(
            checks.items(checks.number(), distinct=True, what="positive numbers")
        ),
    )
    n: int = param(
        256,
        "number of samples (≥ dim; inputs whitened exactly); with data=FILE the file's n",
        check=checks.count(),
        size=True,
    )
    init_scale: float = param(
        1e-3, "per-layer scale ε of the random init (unused with init=FILE)", check=checks.number()
    )
    data: str | None = param(
        None,
        "an .npz file with arrays x (n, dim) and y (n, dim) instead of the whitened teacher",
        file=True,
    )
    init: str | None = param(
        None,
        "an .npz file with the initial weights by parameter path (weights.0 ... weights.<H-1>, "
        "each dim × dim) instead of the random init",
        file=True,
    )
    t1: float | None = _optional_number(
        "horizon; none: 3× the predicted learning time of the weakest mode, extended until "
        "every mode is learned"
    )
    solver: str = param(
        "auto", "'auto' (Tsit5 or Kvaerno5 by stiffness) or a solver", choices=_solvers
    )
    rtol: float = param(1e-10, "relative tolerance of the solver", check=checks.number())
    atol: float = param(1e-12, "absolute tolerance of the solver", check=checks.number())
    saves: int = param(
        500, "number of log-spaced saved times (≥ 10)", check=checks.count(10), size=True
    )
    max_steps: int = param(
        1_000_000,
        "the solver's step budget per piece of the flow (reaching it is a SolverError)",
        check=checks.count(),
    )
    pieces: int = param(
        10,
        "the flow to each horizon is solved in this many checkpointed pieces (progress; an "
        "interrupted run resumes from the last piece); a piece boundary clips one solver step",
        check=checks.count(),
    )
    gd_lr: float | None = _optional_number(
        "if set, also run gradient descent with this step from the same init over the same "
        "horizon (t = kη) and compare its learning times"
    )

    loss: str = param(
        "half_mse",
        "the risk: half_mse only (the predictions are its closed forms; mse = (2/d_out)·half_mse "
        "is the same flow with time rescaled)",
        choices=("half_mse",),
    )

    def complete(self) -> DeepLinearConfig:
        """singular_values none → the first `dim` default values; with a data file none (the
        singular values are the file's, whatever a preset set)."""
        if self.data is not None:
            return dataclasses.replace(self, singular_values=None)
        if self.singular_values is None:
            return dataclasses.replace(self, singular_values=DEFAULT_S[: self.dim])
        return self

    def validate(self) -> None:
        super().validate()
        s = self.singular_values or DEFAULT_S[: self.dim]
        self.require(
            len(s) <= self.dim,
            {
                "singular_values": f"between 1 and dim = {self.dim} values",
                "dim": f"dim ≥ {len(s)}, the number of singular_values",
            },
        )
        self.require(
            self.n >= self.dim or self.data is not None,
            {"n": f"n ≥ dim = {self.dim} (inputs are whitened)", "dim": f"dim ≤ n = {self.n}"},
        )
        n_params = self.depth * self.dim**2
        self.require(
            n_params <= MAX_PARAMS,
            {
                "dim": f"depth·dim² ≤ {MAX_PARAMS} (dense Hessians at the saddles; depth = "
                f"{self.depth})",
                "depth": f"depth·dim² ≤ {MAX_PARAMS} (dense Hessians at the saddles; dim = "
                f"{self.dim})",
            },
        )
        # u0 ~ ε^H, the initial mode strength, must be a positive float64.
        log_u0 = self.depth * math.log10(self.init_scale)
        self.require(
            -300 <= log_u0 <= 300,
            {
                "depth": f"a depth with init_scale^depth in [1e-300, 1e300] (init_scale = "
                f"{self.init_scale:g}: depth ≤ {int(300 / abs(math.log10(self.init_scale)) or 1)})"
                if self.init_scale != 1
                else "any depth",
                "init_scale": f"init_scale^depth in [1e-300, 1e300] (depth = {self.depth})",
            },
        )
        if self.gd_lr is not None and self.t1 is not None:
            steps = self.t1 / self.gd_lr
            self.require(
                steps <= 50 * self.max_steps,
                {
                    "gd_lr": f"a step giving at most {50 * self.max_steps} steps over t1 = {self.t1:g}",
                    "t1": f"a horizon of at most {50 * self.max_steps} steps of gd_lr",
                    "max_steps": f"at least t1/gd_lr/50 = {steps / 50:.3g}",
                },
            )
        if self.data is not None:
            teacher_singular_values(self.load_data())
        if self.init is not None:  # names, shapes and finiteness of the file's weights
            eps = init_scale(self.initial_model(), self)
            if not -300 <= self.depth * math.log10(max(eps, 1e-320)) <= 300:
                raise gf.ConfigError(
                    "init",
                    f"{self.init} (per-layer scale {eps:.3g})",
                    f"weights whose per-layer scale ε has ε^depth in [1e-300, 1e300] (depth = "
                    f"{self.depth})",
                )

    def estimated_bytes(self) -> float:
        """Saved states (main run and zooms), dense Hessians (and Kvaerno5's Jacobian), data."""
        p = float(self.depth) * self.dim**2
        return 8.0 * (2 * (self.saves + 300) * p + 4 * p * p + 4 * float(self.n) * self.dim)

    # ------------------------------------------------------------------------------------------
    # the problem this configuration describes

    def widths(self) -> list[int]:
        return [self.dim] * (self.depth + 1)

    def keys(self):
        """(data key, model key) drawn from the seed."""
        return jax.random.split(jax.random.PRNGKey(self.seed))

    def load_data(self) -> gf.Dataset:
        """The data file's `Dataset` (`gf.data.load_npz`: x and y of width dim, finite)."""
        return gf.data.load_npz(self.data, field="data", in_dim=self.dim, out_dim=self.dim)

    def dataset(self) -> gf.Dataset:
        """The data file's dataset, or the whitened teacher with `singular_values`."""
        if self.data is not None:
            return self.load_data()
        s = sorted(np.asarray(self.singular_values, dtype=float), reverse=True)
        return gf.data.linear_teacher(self.keys()[0], self.dim, self.dim, self.n, s)

    def initial_model(self) -> gf.models.DeepLinear:
        """The random init of scale `init_scale`, with the init file's weights when one is set."""
        model = gf.models.DeepLinear(self.widths(), self.keys()[1], self.init_scale)
        if self.init is not None:
            model = gf.models.load_parameters(model, self.init, field="init")
        return model


def init_scale(model, config: DeepLinearConfig) -> float:
    """ε: the config's, or for weights from a file the geometric mean over layers of
    |W_k|_F / √n_k (the random init has E|W_k|_F² = ε² n_k)."""
    if config.init is None:
        return config.init_scale
    scales = [np.linalg.norm(np.asarray(w)) / np.sqrt(w.shape[0]) for w in model.weights]
    return float(np.exp(np.mean(np.log(np.maximum(scales, 1e-320)))))


def teacher_singular_values(data: gf.Dataset) -> np.ndarray:
    """The data's singular values s_1 > s_2 > ... (`gf.analytic.teacher_modes`), which must be
    distinct: the saddles visited are labelled by the modes learned."""
    s = np.asarray(gf.analytic.teacher_modes(data)[1], dtype=float)
    gaps = -np.diff(s) / s[0] if s.size > 1 else np.ones(1)
    if s.size == 0 or np.any(gaps <= DISTINCT_S):
        raise gf.ConfigError(
            "data",
            f"singular values {np.round(s, 12).tolist()}",
            f"data whose Σ_yx Σ_xx^(-1/2) has distinct nonzero singular values (relative gap > "
            f"{DISTINCT_S:g})",
        )
    return s
