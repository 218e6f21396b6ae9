"""The settings `gf.flow` and `gf.flow_in_pieces` share, declared once (`FlowSettings`), and how
they become a flow's problem, its solve's options and the `info` recorded with its trajectory.

Both functions take these settings as keywords with the same names and defaults:
`takes_flow_settings` adds `FlowSettings`' fields to each function's signature and gathers them
into one frozen `FlowSettings` when it is called (see `_arguments`), so that a new setting, or a
new default, is written in one place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from ._arguments import takes
from ._clock import check_clock, solver_time
from ._ensemble import Ensemble
from ._errors import ConfigError
from ._problem import GradientFlowProblem
from ._solve import SolveOptions, ensemble_strategy
from ._solvers import as_controller, as_solver
from ._validation import check, integer, positive, real

if TYPE_CHECKING:
    from .geometry import AbstractGeometry
    from .losses import AbstractLoss


@dataclasses.dataclass(frozen=True, kw_only=True)
class FlowSettings:
    """What a flow is, beyond its model, data and times: the objective (`geometry`, `loss`, `l2`,
    `dtype`), its integration (`rtol`, `atol`, `solver`, `controller`, `max_steps`), the level
    `stop_below` at which it ends, and how an `Ensemble` is solved (`ensemble`).

    The fields and their defaults are the keywords of `gf.flow` and `gf.flow_in_pieces` (see
    `gf.flow` for what each means); they are validated by `setup`.
    """

    geometry: str | AbstractGeometry = "euclidean"
    loss: str | AbstractLoss | Callable = "half_mse"
    l2: float = 0.0
    rtol: float = 1e-8
    atol: float = 1e-10
    solver: str | diffrax.AbstractSolver = "tsit5"
    controller: str | diffrax.AbstractStepSizeController = "integral"
    stop_below: float | None = None
    max_steps: int = 1_000_000
    dtype: str | None = None
    ensemble: str | int = "auto"

    def setup(
        self,
        model,
        data,
        *,
        t0: float,
        t1: float,
        event: diffrax.Event | None = None,
        progress: bool = False,
        clock: str = "linear",
    ) -> tuple[GradientFlowProblem, object, SolveOptions, dict, bool]:
        """The flow of `model` on `data` on [t0, t1] with these settings, validated:
        `(problem, initial parameters, solve options, info, whether model is an Ensemble)`.

        Everything but the finiteness of the start is checked here (the caller checks it after
        its own arguments, see `GradientFlowProblem.check_finite_start`).
        """
        is_ensemble = isinstance(model, Ensemble)
        problem, params = GradientFlowProblem.from_model(
            model, data, geometry=self.geometry, loss=self.loss, l2=self.l2, dtype=self.dtype
        )
        member_bytes = _member_bytes(params, model.size) if is_ensemble else 0
        options, info = self._options(
            problem, t0, t1, event, progress, is_ensemble, clock, member_bytes
        )
        return problem, params, options, info, is_ensemble

    def _options(self, problem, t0, t1, event, progress, ensemble, clock, member_bytes=0):
        """The solve's `SolveOptions` and the `info` they imply, after validating them."""
        rtol, atol, max_steps, stop_below = self.rtol, self.atol, self.max_steps, self.stop_below
        real("t0", t0)
        real("t1", t1, minimum=t0, strict_minimum=True, accepted=f"a finite number > t0 = {t0}")
        positive("rtol", rtol)
        positive("atol", atol)
        if problem.dtype == "float32":
            check(
                rtol >= 1e-6,
                "rtol",
                rtol,
                "≥ 1e-6 with dtype='float32' (float32 cannot meet tighter tolerances)",
            )
        integer("max_steps", max_steps, minimum=1)
        check_clock(clock, t0)
        solver_name, solver_obj = as_solver(self.solver)
        span = float(np.diff(solver_time([t0, t1], clock))[0])
        controller_name, controller_obj = as_controller(
            self.controller, rtol, atol, span, problem.dtype
        )
        if event is not None and not isinstance(event, diffrax.Event):
            raise ConfigError("event", event, "a diffrax.Event or None")
        if stop_below is not None:
            real("stop_below", stop_below)
            check(event is None, "stop_below", stop_below, "None when an event is given")
            check(
                not ensemble,
                "stop_below",
                stop_below,
                "None for an Ensemble (members would stop at different times)",
            )
        level = None if stop_below is None else jnp.asarray(stop_below, problem.dtype)
        strategy, group = ensemble_strategy(self.ensemble, member_bytes=member_bytes)
        options = SolveOptions(
            solver_obj,
            controller_obj,
            event,
            level,
            int(max_steps),
            progress,
            strategy,
            group,
            clock,
        )
        info = {
            "kind": "flow",
            "solver": solver_name,
            **problem.describe(),
            "rtol": float(rtol),
            "atol": float(atol),
            "t0": float(t0),
            "t1": float(t1),
            "max_steps": int(max_steps),
            "controller": controller_name,
            "stop_below": None if stop_below is None else float(stop_below),
        }
        if clock != "linear":  # recorded only when not the default (older records lack the key)
            info["clock"] = clock
        if ensemble:
            info["ensemble"] = strategy if strategy != "map" else f"map (groups of {group})"
        return options, info


# `gf.flow` and `gf.flow_in_pieces` take the settings as keywords and receive them as `settings`.
takes_flow_settings = takes(FlowSettings, into="settings")


def _member_bytes(params, size: int) -> int:
    """Bytes of one member's parameters (an ensemble's `params` carry a leading member axis)."""
    total = sum(a.size * a.dtype.itemsize for a in jax.tree_util.tree_leaves(params))
    return total // max(1, size)
