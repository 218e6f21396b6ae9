"""A tiny experiment registered only by the sweep tests (importing this module registers it; the
sweep's workers import it with `imports=`): a two-mode deep linear network flowed to t = 6 from a
seeded init, with a `run_seeds` hook flowing all seeds as one `gf.Ensemble` with per-member
stepping (ensemble='map'), so that each member equals its own single run to ~1e-12. It can fail
on purpose (`fail_depth`), refuse its hook (`ensemble=false`) and sleep (`sleep`, so that a test can kill a sweep mid-way)."""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np

import gradflow as gf
from gradflow.experiments import ExperimentConfig, Result, checks, param, register

NAME = "test-sweep-toy"
T1 = 6.0
SAVES = np.linspace(0.0, T1, 7)


@dataclasses.dataclass(frozen=True)
class ToyConfig(ExperimentConfig):
    """The toy's configuration."""

    QUICK = dict()
    TINY = dict()

    depth: int = param(2, "number of layers", check=checks.count(1), size=True)
    init_scale: float = param(0.3, "per-layer init scale", check=checks.number())
    signal: float = param(
        1.0, "scale of the teacher's singular values (2, 1)", check=checks.number()
    )
    fail_depth: int | None = param(
        None, "raise DivergenceError at this depth", check=checks.optional(checks.count())
    )
    ensemble: bool = param(True, "let run_seeds take the seeds together (else: one by one)")
    sleep: float = param(0.0, "seconds to sleep before the flow", check=checks.number(strict=False))


def _data(c: ToyConfig):
    key = jax.random.PRNGKey(100)
    return gf.data.linear_teacher(key, 2, 2, n=4, singular_values=[2.0 * c.signal, c.signal])


def _model(c: ToyConfig):
    return gf.models.DeepLinear([2] * (c.depth + 1), jax.random.PRNGKey(c.seed), c.init_scale)


def _result(c: ToyConfig, traj) -> Result:
    loss = np.asarray(traj.loss)
    return Result(
        summary={
            "loss": {"initial": float(loss[0]), "final": float(loss[-1])},
            "loss_at": [float(v) for v in loss],
            "t1": T1,
            "depth_times_scale": c.depth * c.init_scale,
            "learned": bool(loss[-1] < 0.5 * loss[0]),
        },
        trajectory=traj,
    )


def _check(c: ToyConfig) -> None:
    time.sleep(c.sleep)
    if c.fail_depth is not None and c.depth == c.fail_depth:
        raise gf.DivergenceError(f"depth {c.depth} fails on purpose", None)


def run(c: ToyConfig, context) -> Result:
    _check(c)
    return _result(c, gf.flow(_model(c), _data(c), T1, saveat=SAVES))


def run_seeds(configs: list[ToyConfig], context) -> list[Result]:
    """All seeds in one ensemble flow, each member with its own steps (ensemble='map')."""
    if not configs[0].ensemble:
        raise gf.ConfigError("ensemble", False, "true for run_seeds (the sweep runs seeds singly)")
    for c in configs:
        _check(c)
    members = gf.Ensemble.stack([_model(c) for c in configs])
    traj = gf.flow(members, _data(configs[0]), T1, saveat=SAVES, ensemble="map")
    return [_result(c, traj.member(e)) for e, c in enumerate(configs)]


register(NAME, "a toy for the sweep tests", ToyConfig, run_seeds=run_seeds)(run)
