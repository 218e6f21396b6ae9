"""Which loss a diagnostic measures, and the diagnostics' conditions on it.

A diagnostic of a trajectory uses the loss the trajectory was made with (the name its `info`
records) unless `loss=` says otherwise; a diagnostic of a model uses `loss=` ('half_mse' by
default). Some diagnostics need more of the loss:

- an attained minimum (`require_minimum`): the PL ratio, the Łojasiewicz fit, the critical points
  and the tangent-kernel PL bound all measure F near a minimiser. Cross-entropy, and the logistic
  loss on separable data, have none: F → inf F only as |θ| → ∞ (`AbstractLoss.attains_minimum`).
- a squared loss (`squared_loss_factor`): formulas of the form κ · Σ_i |f(x_i) − y_i|²/n, with
  κ = ½ for 'half_mse' and κ = 1/d_out for 'mse' (the deep-linear critical values, the tangent
  kernel's PL bound) hold for these two only.
"""

from __future__ import annotations

from ._errors import ConfigError
from .losses import LOSSES, MSE, AbstractLoss, HalfMSE, as_loss, loss_name


def trajectory_loss(traj, loss) -> AbstractLoss | None:
    """`loss` if given, else the loss `traj.info` names; None for a custom loss's name (a custom
    loss cannot be rebuilt from its name: pass it as `loss=`)."""
    if loss is not None:
        return as_loss(loss)
    name = traj.info.get("loss", "half_mse")
    return LOSSES[name]() if name in LOSSES else None


def require_minimum(loss: AbstractLoss | None, diagnostic: str, why: str) -> None:
    """Refuse a loss whose minimum is not attained, in one line saying why `diagnostic` needs it."""
    if loss is not None and not loss.attains_minimum():
        name = loss_name(loss)
        raise ConfigError(
            "loss",
            name,
            f"a loss that attains its minimum: {diagnostic} {why}, and {name} has none "
            "(F → inf F only as |θ| → ∞)",
        )


def squared_loss_factor(loss: AbstractLoss | None, out_dim: int, reason: str) -> float:
    """κ with F = κ Σ_i |f(x_i) − y_i|²/n: ½ for half_mse, 1/d_out for mse; else a one-line
    `ConfigError` ending with `reason` (why the diagnostic needs a squared loss)."""
    if isinstance(loss, HalfMSE):
        return 0.5
    if isinstance(loss, MSE):
        return 1.0 / out_dim
    shown = "a custom loss given by name only" if loss is None else loss_name(loss)
    raise ConfigError("loss", shown, f"'half_mse' or 'mse': {reason}")
