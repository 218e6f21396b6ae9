"""What the `resnet-*` experiments share (Marion, Wu, Sander, Biau, ICLR 2024; docs/resnets.md):
the geometry and units they report in, the long flow to a risk level on a log grid, memory
estimates of a ResNet flow, the user's data and initial weights, and the look of their figures.

Units. gradflow's risk is F = (1/2n) Σ|f(x_i) − y_i|² = ℓ/2 with ℓ the paper's risk, and the
residual weights are flowed in the `conditional_wasserstein` geometry (mass 1/L per layer), i.e.
Z_k' = −L ∂F/∂Z_k: the paper's flow Z_k' = −L ∂ℓ/∂Z_k run at half speed. So gradflow time t is
twice the paper's flow time, and the paper's gradient descent with step lr on ℓ (residual
weights, Euclidean) for N steps reaches gradflow time t = 2·N·lr/L (`gf.analytic.resnet_gd_steps`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

import gradflow as gf
from gradflow.experiments import ExperimentConfig, checks, param, params

GEOMETRY = "conditional_wasserstein"
UNITS = (
    "Units: F = ℓ/2 (ℓ = (1/n)Σ|f − y|², the paper's risk); time t is the conditional-Wasserstein "
    "flow time of F (residual weights Z_k' = −L ∂F/∂Z_k), twice the paper's flow time; the "
    "paper's GD with step lr on ℓ for N steps reaches t = 2·N·lr/L."
)
INIT_COLORS = {"tied": "tab:blue", "smooth": "tab:green", "iid": "tab:red"}
# The memory one solve may hold in saved states and their metrics before it is split in pieces.
PIECE_BUDGET = 2.5e9


def inits() -> list[str]:
    """The residual inits `gf.models.ResNet` accepts (a `choices=` table, read lazily)."""
    return list(gf.models.resnet.INITS)


def activations() -> list[str]:
    """The activation names of `gf.models.ResNet`."""
    return list(gf.models.resnet.ACTIVATIONS)


def solvers() -> list[str]:
    """The solver names of `gf.flow`."""
    return list(gf.SOLVERS)


def optimizers() -> list[str]:
    """The optimizer names of `gf.descent`."""
    return list(gf.OPTIMIZERS)


def activation_param():
    """The `activation` field: σ of the residual layers, GELU by default (smooth)."""
    return param("gelu", "activation of the residual layers", choices=activations)


# ---------------------------------------------------------------------------------------------
# your data and weights


def data_param():
    """The `data` field: a user's .npz of arrays x (n, d_in), y (n, d_out) for the generated data."""
    return param(
        None,
        "an .npz file of arrays x (n, d_in) and y (n, d_out) used instead of the generated data",
        file=True,
    )


def loss_param():
    """The `loss` field: the risk of the network's outputs against y (a name of `gf.losses`)."""
    return param(
        "half_mse", "the risk F of the outputs against y (gf.losses)", choices=checks.loss_names
    )


@dataclasses.dataclass(frozen=True)
class LossDataConfig(ExperimentConfig):
    """The fields of a `resnet-*` experiment on generated data: its risk `loss` and the user's
    `data` in place of the generated samples (they come first in its config)."""

    loss: str = loss_param()
    data: str | None = data_param()


def init_param():
    """The `init` field: a user's .npz of the network's initial trainable arrays."""
    return param(
        None,
        "an .npz file of the network's initial arrays by parameter path (V, W; as trajectories)",
        file=True,
    )


def user_data(config, *, in_dim=None, out_dim=None, max_dim=None, default=None):
    """`config.data` read by `gf.data.load_npz` (without a file: `default()`, or None without a
    default): x (n, d_in), y (n, d_out),
    finite, with the dimensions the experiment needs (`in_dim`, `out_dim` exactly; both at most
    `max_dim`, the state dimension q into which A = [I; 0] embeds x and from which B reads y).
    Every refusal is one `ConfigError` naming `data`, but for targets `config.loss` cannot read
    (`checks.loss_data`: naming `loss`; a file's when validated, generated ones when the run
    starts)."""
    if config.data is None:
        data = default() if default is not None else None
        if data is not None:
            checks.loss_data(config.loss, data)
        return data
    data = gf.data.load_npz(config.data, field="data", in_dim=in_dim, out_dim=out_dim)
    if max_dim is not None and max(data.in_dim, data.out_dim) > max_dim:
        raise gf.ConfigError(
            "data",
            f"x {tuple(data.x.shape)}, y {tuple(data.y.shape)} in {config.data}",
            f"x and y with at most dim = {max_dim} columns (the state dimension)",
        )
    checks.loss_data(config.loss, data)
    return data


def user_init(model, config):
    """`model` with the initial arrays of `config.init` (`gf.models.load_parameters`: every
    trainable array by its path, with its shape; one `ConfigError` naming `init` otherwise)."""
    if config.init is None:
        return model
    return gf.models.load_parameters(model, config.init, field="init")


# ---------------------------------------------------------------------------------------------
# memory


def bytes_per_save(depth: int, members: int, n: float, dim: int, width: int) -> float:
    """≈ 8 bytes × n(3q + 2m) per layer and member: one saved state of a ResNet flow with the
    activations its metrics (loss, gradient norm) keep for the backward pass."""
    return 8.0 * depth * members * n * (3 * dim + 2 * width)


def memory_piece(
    saves: int, depth: int, members: int, n: int, dim: int, width: int, budget=PIECE_BUDGET
) -> int:
    """The largest divisor of `saves` whose saved states and their metrics fit in `budget`
    bytes: the `piece` of `gf.flow_in_pieces` that bounds a flow's memory."""
    limit = max(1, int(budget // bytes_per_save(depth, members, n, dim, width)))
    return max(d for d in range(1, saves + 1) if saves % d == 0 and d <= limit)


def flow_bytes(depth, members, n, dim, width, saves, per_solve=None) -> float:
    """Rough peak memory of a (vmapped) ResNet flow: the states saved by one solve and their
    metrics (`bytes_per_save` each, bounded by `PIECE_BUDGET` unless one save exceeds it), all
    saved parameters, and the solver's stages."""
    per_save = bytes_per_save(depth, members, n, dim, width)
    in_solve = per_save * (per_solve if per_solve is not None else saves)
    params = 8.0 * depth * members * 2 * width * dim
    return max(per_save, min(in_solve, PIECE_BUDGET)) + (saves + 13) * params


# ---------------------------------------------------------------------------------------------
# flows


def piece_progress(advance: Callable[..., None]) -> Callable[[int, int], None]:
    """A `progress(done, total)` for `gf.flow_in_pieces` that advances a `RunContext.task` by
    the pieces finished since the last call (an interrupt then stops the run at a piece)."""
    reported = [0]

    def report(done: int, total: int) -> None:
        if done > reported[0]:
            advance(done - reported[0])
            reported[0] = done

    return report


def log_save_times(t_first: float, t_max: float, saves: int) -> np.ndarray:
    """t = 0 and `saves` log-spaced times in [t_first, t_max]: a flow whose risk decays over
    decades of time, seen at every scale."""
    return np.concatenate([[0.0], np.geomspace(t_first, t_max, saves)])


def require_log_grid(config) -> None:
    """The relations of a config with a log save grid: t_max > t_first, and `piece` divides
    `saves` (every piece of `flow_to_level` has one length: one compiled solve)."""
    config.require(
        config.t_max > config.t_first,
        {
            "t_max": f"a time > t_first = {config.t_first:g}",
            "t_first": f"a time < t_max = {config.t_max:g}",
        },
    )
    config.require(
        config.saves % config.piece == 0,
        {
            "piece": f"a divisor of saves = {config.saves}",
            "saves": f"a multiple of piece = {config.piece}",
        },
    )


@dataclasses.dataclass(frozen=True)
class LogGridConfig(LossDataConfig):
    """A `resnet-*` flow until ℓ < target_risk or t_max, saved on a log grid [t_first, t_max] in
    pieces, whose PL ratio needs a loss with minimum 0 (its subclass sets saves and piece)."""

    t_first: float = params.t_first()
    t_max: float = params.t_max()

    def validate(self) -> None:
        super().validate()
        require_log_grid(self)
        checks.require_loss(self, minimum="the PL ratio")


def risk_head(loss: str) -> dict:
    """The first keys of a summary on the paper's risk ℓ = (1/n)Σ|f − y|² = 2F: the loss, the
    geometry and how ℓ is read for this loss."""
    return {
        "loss": loss,
        "geometry": GEOMETRY,
        "risk": checks.risk_text(
            loss, "ℓ = (1/n)Σ|f − y|² = 2F (the paper's)", "ℓ = 2F, F the {loss} risk (gf.losses)"
        ),
    }


def flow_to_level(model, data, config, context, label: str, checkpoint=None, **kwargs):
    """`gf.flow_in_pieces` in the conditional-Wasserstein geometry with `config`'s solver, rtol
    and atol, saving at t = 0 and `config.saves` log-spaced times in [t_first, t_max],
    `config.piece` saves per piece (progress under `label`, bounded memory), stopping where the
    risk ℓ = 2F crosses `config.target_risk` (the crossing root-found on the dense output: the
    last saved point is the state there). `checkpoint`: a checkpoint name in `context` (the flow
    then resumes after an interruption). The objective is `config.loss` on `data`. `kwargs` go to
    `gf.flow_in_pieces`."""
    ts = log_save_times(config.t_first, config.t_max, config.saves)
    folder = context.checkpoint(checkpoint) if checkpoint is not None else None
    with context.task(label, total=config.saves // config.piece) as advance:
        return gf.flow_in_pieces(
            model,
            data,
            ts,
            piece=config.piece,
            checkpoint=folder,
            progress=piece_progress(advance),
            stop_below=config.target_risk / 2,
            geometry=GEOMETRY,
            solver=config.solver,
            rtol=config.rtol,
            atol=config.atol,
            loss=config.loss,
            **kwargs,
        )


def tail_rate(traj) -> float | None:
    """The rate r of ℓ ≈ c e^{−r t} fitted over the last half of a trajectory's time span (None
    with fewer than two saves there)."""
    t, risk = np.asarray(traj.ts), 2 * np.asarray(traj.loss)
    tail = t >= t[-1] / 2
    return gf.fits.exponential_rate(t[tail], risk[tail]) if tail.sum() >= 2 else None


def within(value, target: float, tol: float) -> bool:
    """|value − target| ≤ tol (False when the value could not be measured: None)."""
    return value is not None and bool(abs(value - target) <= tol)
