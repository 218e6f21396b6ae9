"""The gradient-flow problem: objective, gradient, vector field and metric, in one object.

For a model f_θ, data (x_i, y_i), a loss ℓ, an L2 weight λ and a geometry with masses m,

    F(θ) = risk_ℓ(f_θ; data) + λ Σ_j m_j |θ_j|²,        θ' = v(θ) = −G(θ)⁻¹ ∇F(θ),

where G is the geometry's metric: m = 1 (Euclidean) or the particle masses (Wasserstein flows,
θ_j' = −∇_{θ_j}F / m_j). The penalty λ Σ m |θ|² is λ ∫|θ|² dμ for the measure the particles
discretise, and λ|θ|² for an ordinary network (docs/objective.md). `flow`, `descent` and the
diagnostics all evaluate F and v through this object; it holds everything but the trainable
parameters, so its methods are pure functions of `params` and one compiled solve serves every
dataset, initial model, tolerance or horizon of the same shapes.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from ._custom_types import Array, Float, PyTree
from ._errors import ConfigError
from ._validation import check, check_choice, non_negative
from .data import Dataset
from .geometry import AbstractGeometry, as_geometry
from .losses import AbstractLoss, as_loss, loss_name

DTYPES = ("float64", "float32")


def trainable_masses(model) -> PyTree:
    """Masses of the trainable leaves, as a pytree with the structure of the trainable partition.

    Models without masses get 1.0 everywhere. Leaves are arrays (never Python numbers) so that
    compiled solves do not specialise on their values.
    """
    params, _ = eqx.partition(model, model.trainable())
    declared = model.masses()
    if declared is None:
        return jtu.tree_map(lambda _: jnp.ones(()), params)
    declared, _ = eqx.partition(declared, model.trainable(), is_leaf=lambda x: x is None)
    return jtu.tree_map(lambda p, m: jnp.asarray(m, float), params, declared)


def l2_penalty(params: PyTree, masses: PyTree) -> Float[Array, ""]:
    """Σ_leaves Σ m |θ|² (the integral ∫|θ|² dμ of the particle measure)."""
    terms = jtu.tree_leaves(jtu.tree_map(lambda p, m: jnp.sum(m * p**2), params, masses))
    # the zero in the parameters' precision: a float64 zero would promote a float32 objective
    return sum(terms, start=jnp.zeros((), jnp.result_type(*terms) if terms else float))


def _cast(tree, dtype):
    return jtu.tree_map(
        lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a,
        tree,
    )


class GradientFlowProblem(eqx.Module):
    """F(θ) = risk + λ Σ m|θ|² and the flow θ' = −G⁻¹∇F, for a model's trainable parameters θ.

    Build one with `GradientFlowProblem.from_model(model, data, ...)`, which also returns the
    trainable parameters `params`; every method is then a pure function of `params` (for an
    ensemble, of one member's parameters: vmap over the leading axis).

    **Fields:** `static` (the model's non-trainable part), `statistics` (what the loss needs of
    the data: the data, or its moments for linear models and squared losses), `masses` (of the
    trainable leaves), `geometry`, `loss`, `l2` (λ), `dtype` ('float64' or 'float32'),
    `per_member` (an ensemble with one dataset per member: `statistics` carry a leading member
    axis, and `over_members` pairs each member's parameters with its own data).
    """

    static: PyTree
    statistics: PyTree
    masses: PyTree
    geometry: AbstractGeometry
    loss: AbstractLoss
    l2: Float[Array, ""]
    dtype: str = eqx.field(static=True)
    per_member: bool = eqx.field(static=True, default=False)

    @classmethod
    def from_model(
        cls,
        model,
        data: Dataset,
        *,
        geometry="euclidean",
        loss="half_mse",
        l2: float = 0.0,
        dtype: str | None = None,
    ) -> tuple[GradientFlowProblem, PyTree]:
        """`(problem, params)` for `model` (an `AbstractModel` or an `Ensemble`) on `data`.

        **Arguments:**

        - `model`: the initial model, or an `Ensemble` of models of the same shapes (then
          `params` carry a leading member axis).
        - `data`: a `Dataset` whose dimensions match the model's; for an `Ensemble`, also a
          list of datasets of equal shapes, one per member (e.g. seeds that draw their data).
        - `geometry`: 'euclidean', 'wasserstein', 'conditional_wasserstein' or an
          `AbstractGeometry`.
        - `loss`: a name of `gradflow.losses` ('half_mse', 'mse', 'cross_entropy', 'logistic'),
          an `AbstractLoss`, or a function (outputs, targets) -> scalar.
        - `l2`: λ ≥ 0.
        - `dtype`: 'float64' (default) or 'float32': the precision the whole solve runs in.

        **Raises:** `ConfigError` naming the offending argument.
        """
        from ._ensemble import Ensemble

        single = model.member(0) if isinstance(model, Ensemble) else model
        tree = model.models if isinstance(model, Ensemble) else model
        from .models import AbstractModel

        if not isinstance(single, AbstractModel):
            raise ConfigError(
                "model",
                type(single).__name__,
                "a gradflow model (gf.models.*, or gf.models.Wrapped(your module or function))",
            )
        datasets = _member_datasets(model, data)
        per_member, data = _is_list(data), datasets[0]
        loss = as_loss(loss)
        widths = loss.target_dim(single.out_dim)
        if single.in_dim != data.in_dim or data.out_dim not in widths:
            raise ConfigError(
                "data",
                f"(in_dim={data.in_dim}, out_dim={data.out_dim})",
                f"dimensions matching the model's (in_dim={single.in_dim}, out_dim="
                + " or ".join(map(str, widths))
                + f" for the {loss_name(loss)} loss)",
            )
        geometry = as_geometry(geometry)
        geometry.check_model(single)
        for d in datasets:
            loss.check_data(d, single.out_dim)
        l2 = non_negative("l2", l2)
        dtype = "float64" if dtype is None else dtype
        check_choice("dtype", dtype, DTYPES)
        masses = trainable_masses(single)
        params, static = eqx.partition(tree, single.trainable())
        statistics = loss.statistics(single, data)
        if per_member:
            statistics = jtu.tree_map(
                lambda *a: jnp.stack(a), *[loss.statistics(single, d) for d in datasets]
            )
        if dtype != "float64":
            params, static, statistics, masses = _cast((params, static, statistics, masses), dtype)
        l2 = jnp.asarray(l2, dtype)
        problem = cls(static, statistics, masses, geometry, loss, l2, dtype, per_member)
        return problem, params

    # ---- ensembles ----------------------------------------------------------------------

    def member(self, statistics: PyTree) -> GradientFlowProblem:
        """The problem of one member, with its own data's `statistics` (no member axis)."""
        return GradientFlowProblem(
            self.static, statistics, self.masses, self.geometry, self.loss, self.l2, self.dtype
        )

    def member_statistics(self) -> PyTree | None:
        """The statistics to map over with the members' parameters (None: shared data)."""
        return self.statistics if self.per_member else None

    def over_members(self, fn, params: PyTree):
        """`fn(problem_e, params_e)` for every member e, vmapped over the leading axis: each
        member with its own data where the problem has them, else all with the shared data."""
        if self.per_member:
            return jax.vmap(lambda p, st: fn(self.member(st), p))(params, self.statistics)
        return jax.vmap(lambda p: fn(self, p))(params)

    # ---- the objective and the flow -------------------------------------------------------

    def model(self, params: PyTree):
        """The model with trainable parameters `params`."""
        return eqx.combine(params, self.static)

    def risk(self, params: PyTree) -> Float[Array, ""]:
        """The loss's risk, without the L2 term."""
        return self.loss.risk(self.model(params), self.statistics)

    def objective(self, params: PyTree) -> Float[Array, ""]:
        """F(θ) = risk + λ Σ m |θ|²."""
        return self.risk(params) + self.l2 * l2_penalty(params, self.masses)

    def value_and_grad(self, params: PyTree) -> tuple[Float[Array, ""], PyTree]:
        """(F, ∇F) with respect to the trainable parameters."""
        return jax.value_and_grad(self.objective)(params)

    def velocity(self, params: PyTree) -> PyTree:
        """The vector field v(θ) = −G⁻¹∇F(θ)."""
        _, grads = self.value_and_grad(params)
        return self.geometry.velocity(grads, self.masses)

    def metrics(self, params: PyTree) -> tuple[Float[Array, ""], Float[Array, ""]]:
        """(F, |∇F|_G), the objective and the gradient's norm in the flow's metric."""
        value, grads = self.value_and_grad(params)
        return value, self.geometry.dual_norm(grads, self.masses)

    @property
    def metric_masses(self) -> PyTree:
        """The masses of the flow's metric (1 everywhere for the Euclidean geometry)."""
        return self.geometry.metric_masses(self.masses)

    def describe(self) -> dict:
        """How the problem is set (for a trajectory's `info`)."""
        return {
            "geometry": self.geometry.name,
            "loss": loss_name(self.loss),
            "l2": float(self.l2),
            "dtype": self.dtype,
        }

    def check_finite_start(self, params: PyTree, ensemble: bool) -> None:
        """Raise `ConfigError` if F is not finite at the start (before any solve is compiled)."""
        value = _objective_at(self, params, ensemble)
        bad = ~np.isfinite(np.atleast_1d(np.asarray(value)))
        check(
            not bad.any(),
            "model",
            f"an initial state with F = {np.asarray(value).reshape(-1)[np.argmax(bad)]}",
            "an initial state where the objective is finite",
        )


def _is_list(data) -> bool:
    return isinstance(data, list | tuple)


def _member_datasets(model, data) -> list[Dataset]:
    """[data], or the list of one dataset per member of an ensemble (checked: one per member,
    equal shapes)."""
    from ._ensemble import Ensemble

    if not _is_list(data):
        if not isinstance(data, Dataset):
            raise ConfigError("data", type(data).__name__, "a gradflow.data.Dataset")
        return [data]
    size = model.size if isinstance(model, Ensemble) else None
    check(
        size is not None and len(data) == size,
        "data",
        f"a list of {len(data)} datasets",
        "one Dataset, or for an Ensemble of E members a list of E datasets",
    )
    for d in data:
        if not isinstance(d, Dataset):
            raise ConfigError("data", type(d).__name__, "a list of gradflow.data.Dataset")
        check(
            (d.x.shape, d.y.shape) == (data[0].x.shape, data[0].y.shape),
            "data",
            f"datasets of shapes {d.x.shape}, {d.y.shape} and {data[0].x.shape}, {data[0].y.shape}",
            "one dataset per member, all of the same shapes",
        )
    return list(data)


@eqx.filter_jit
def _objective_at(problem: GradientFlowProblem, params, ensemble: bool):
    if ensemble:
        return problem.over_members(lambda pr, p: pr.objective(p), params)
    return problem.objective(params)
