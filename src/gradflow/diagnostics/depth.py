"""Depth diagnostics of layered models: how smooth the weights are in the layer index, and how far
the network is from its neural-ODE limit (Marion, Wu, Sander, Biau, ICLR 2024; docs/resnets.md).

A layered model (`AbstractLayeredModel`: `ResNet`, `NeuralODE`, `MeanFieldResNet`) exposes
`layer_weights()`: a dict of arrays stacked along a leading layer axis of length L. With Z_k = (V_k, W_k) and the paper's norm
|Z_k| = |V_k|_F + |W_k|_F:

- `depth_smoothness`: max_k |Z_{k+1} − Z_k| and L · max_k |Z_{k+1} − Z_k|. For weights that
  discretise a Lipschitz function of depth the first is ≤ K/L (Prop. 3 / Thm. 4: it stays so
  along the training flow), i.e. the L-scaled value stays bounded; for i.i.d. layers it is O(1).
  *Beware* the aggregate Frobenius norm over all layers (and times),
  (Σ_k |Z_{k+1} − Z_k|²)^{1/2} ≈ (L · (K/L)²)^{1/2} = K L^{−1/2}: it decays only like L^{−1/2}
  and is not the quantity of the theorem (reported here as `aggregate`).
- `ode_gap`: max_i |f_L(x_i) − f_ODE(x_i)| between the network and the neural ODE with
  interpolated weights, O(1/L) for weights smooth in depth (Euler's global error; Prop. 2).
- `depth_distance`: (∫_0^1 |Z^a(s) − Z^b(s)|² ds)^{1/2} between the piecewise-constant depth
  functions of two networks (Z^L(s) = Z_k on ((k−1)/L, k/L]), e.g. a network and a much deeper
  reference, with |Z|² = |V|_F² + |W|_F².
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Inputs
from .._ensemble import Ensemble
from .._errors import ConfigError
from .._result import Record
from .._trajectory import Trajectory


@dataclasses.dataclass(frozen=True)
class DepthSmoothness(Record):
    """Result of `depth_smoothness`.

    - `max_diff`: max_k |Z_{k+1} − Z_k| (max over saved times too, for a trajectory).
    - `scaled`: L · max_diff (bounded in L for weights smooth in depth).
    - `aggregate`: (Σ_k |Z_{k+1} − Z_k|²)^{1/2} (max over times), which scales like L^{−1/2}.
    - `depth`: L.
    - `per_layer`: |Z_{k+1} − Z_k| for k = 1..L−1 (at the time of the maximum, for a trajectory).
    - `per_time`: max_k |Z_{k+1} − Z_k| at each saved time (None for a single model).
    - `per_leaf`: {leaf name: max_k |θ_{k+1} − θ_k|_F} (max over times too).
    """

    max_diff: float
    scaled: float
    aggregate: float
    depth: int
    per_layer: np.ndarray
    per_time: np.ndarray | None
    per_leaf: dict


def _layer_diffs(weights: dict[str, Array]) -> tuple[Array, dict[str, Array]]:
    """(Σ_leaves |θ_{k+1} − θ_k|_F for each k, {leaf: |θ_{k+1} − θ_k|_F})."""
    per_leaf = {}
    for name, a in weights.items():
        d = jnp.diff(a, axis=0)
        per_leaf[name] = jnp.sqrt(jnp.sum(d.reshape(d.shape[0], -1) ** 2, axis=1))
    total = sum(per_leaf.values())
    return total, per_leaf


@eqx.filter_jit
def _diffs_over_time(params, static):
    def one(p):
        return _layer_diffs(eqx.combine(p, static).layer_weights())

    return jax.vmap(one)(params)


def _check_layered(model, field: str) -> None:
    from ..models import AbstractLayeredModel

    if not isinstance(model, AbstractLayeredModel):
        raise ConfigError(
            field,
            type(model).__name__,
            "a layered model (AbstractLayeredModel: ResNet, NeuralODE, MeanFieldResNet), a "
            "trajectory of one, or a dict of layer-stacked arrays",
        )


def _check_resnet(model) -> None:
    from ..models import ResNet

    if not isinstance(model, ResNet):
        raise ConfigError("model", type(model).__name__, "a ResNet (the model with an ODE limit)")


def _layer_weights(model, field: str = "model") -> dict[str, Array]:
    if isinstance(model, dict):
        return model
    _check_layered(model, field)
    return model.layer_weights()


def depth_smoothness(model_or_trajectory) -> DepthSmoothness:
    """Smoothness in depth of a layered model's weights, or along a trajectory of them.

    With d_k = Σ_leaves |θ_{k+1} − θ_k|_F (= |V_{k+1} − V_k|_F + |W_{k+1} − W_k|_F for a
    ResNet, the paper's |Z_{k+1} − Z_k|), k = 1..L−1: `max_diff` = max_k d_k, `scaled` =
    L · max_k d_k and `aggregate` = (Σ_k d_k²)^{1/2}.

    **Arguments:** a layered model (`ResNet`, `NeuralODE`, `MeanFieldResNet`) or a single
    (non-ensemble) `Trajectory` of one.

    **Returns:** a `DepthSmoothness` (see there). For a trajectory, every number is the maximum
    over the saved times as well, max_{k, t} |Z_{k+1}(t) − Z_k(t)| (Thm. 4's quantity).
    """
    if isinstance(model_or_trajectory, Trajectory):
        traj = model_or_trajectory
        if traj.ensemble_size is not None:
            raise ConfigError("trajectory", "an ensemble", "a single trajectory (use .member(e))")
        _check_layered(traj.static, "trajectory")
        total, per_leaf = _diffs_over_time(traj.params, traj.static)
        total = np.asarray(total)  # (T, L-1)
        depth = total.shape[1] + 1
        if depth == 1:
            zeros = np.zeros(total.shape[0])
            return DepthSmoothness(0.0, 0.0, 0.0, 1, np.zeros(0), zeros, {})
        per_time = total.max(axis=1)
        i = int(np.argmax(per_time))
        aggregate = float(np.sqrt((total**2).sum(axis=1)).max())
        leaves = {k: float(np.asarray(v).max()) for k, v in per_leaf.items()}
        return DepthSmoothness(
            float(per_time[i]),
            float(depth * per_time[i]),
            aggregate,
            depth,
            total[i],
            per_time,
            leaves,
        )
    weights = _layer_weights(model_or_trajectory)
    depth = next(iter(weights.values())).shape[0]
    if depth == 1:
        return DepthSmoothness(0.0, 0.0, 0.0, 1, np.zeros(0), None, {})
    total, per_leaf = _layer_diffs(weights)
    total = np.asarray(total)
    max_diff = float(total.max())
    return DepthSmoothness(
        max_diff,
        depth * max_diff,
        float(np.sqrt((total**2).sum())),
        depth,
        total,
        None,
        {k: float(np.asarray(v).max()) for k, v in per_leaf.items()},
    )


def _gap_value(model, x, interpolation, rtol, atol):
    node = model.ode_limit(interpolation=interpolation, rtol=rtol, atol=atol)
    return jnp.max(jnp.linalg.norm(model(x) - node(x), axis=-1))


_gap = eqx.filter_jit(_gap_value)


@eqx.filter_jit
def _gaps(models, x, interpolation, rtol, atol):
    return eqx.filter_vmap(lambda m: _gap_value(m, x, interpolation, rtol, atol))(models)


def ode_gap(
    model, x: Inputs, interpolation: str = "linear", rtol: float = 1e-10, atol: float = 1e-10
) -> float:
    """max_i |f_L(x_i) − f_ODE(x_i)|: the distance between a ResNet and its neural-ODE limit.

    The limit is `model.ode_limit(interpolation, rtol, atol)` (weights interpolating the layers,
    solved by diffrax to the tolerances). For weights that discretise a smooth function of depth
    this is O(1/L) (the global error of Euler's scheme; Prop. 2 of Marion et al.).

    **Arguments:** a `ResNet`, inputs `x` (n, d) (e.g. the training inputs), the interpolation
    ('linear' or 'constant'; with 'constant' the network is exactly Euler's scheme for the ODE)
    and the solver's tolerances.

    **Returns:** the maximum over the inputs of the Euclidean norm of the output difference.
    """
    _check_resnet(model)
    return float(_gap(model, jnp.asarray(x, dtype=float), interpolation, float(rtol), float(atol)))


def ode_gaps(
    models, x: Inputs, interpolation: str = "linear", rtol: float = 1e-10, atol: float = 1e-10
) -> np.ndarray:
    """`ode_gap` for a batch of networks stacked along a leading axis of every array (an
    `Ensemble`'s `.models`, or `Trajectory.at(i)` of an ensemble), in one vmapped solve."""
    if isinstance(models, Ensemble):
        models = models.models
    _check_resnet(models)
    return np.asarray(
        _gaps(models, jnp.asarray(x, dtype=float), interpolation, float(rtol), float(atol))
    )


def depth_distance(a, b) -> float:
    """(∫_0^1 |Z^a(s) − Z^b(s)|² ds)^{1/2} between two layered models of any depths.

    `a`, `b`: layered models, or dicts {name: array stacked along the layer axis}.

    Z^L(s) = Z_k on ((k−1)/L, k/L] (piecewise constant), |Z|² = Σ_leaves |θ|_F², integrated
    exactly over the union of both grids. With b a much deeper reference (e.g. trained from the
    same continuous initialisation) this measures the distance to the depth limit, O(1/L).
    """
    wa, wb = _layer_weights(a, "a"), _layer_weights(b, "b")
    if set(wa) != set(wb):
        raise ConfigError("models", (sorted(wa), sorted(wb)), "models with the same layer weights")
    la = next(iter(wa.values())).shape[0]
    lb = next(iter(wb.values())).shape[0]
    edges = np.union1d(np.arange(la + 1) / la, np.arange(lb + 1) / lb)
    mids, widths = (edges[1:] + edges[:-1]) / 2, np.diff(edges)
    ia = np.minimum((mids * la).astype(int), la - 1)
    ib = np.minimum((mids * lb).astype(int), lb - 1)
    sq = jnp.zeros(len(mids))
    for name in wa:
        d = wa[name][ia] - wb[name][ib]
        sq = sq + jnp.sum(d.reshape(d.shape[0], -1) ** 2, axis=1)
    return float(jnp.sqrt(jnp.sum(sq * widths)))
