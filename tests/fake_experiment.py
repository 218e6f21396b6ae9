"""A small, fast experiment registered only by the tests (`fake_experiment` fixture): it runs in
well under a second once its descent is compiled, uses `context.cached` and
`context.checkpoint` the way a ported experiment will use `gf.flow_in_pieces`, and can simulate
being interrupted (`kill_at`), diverging (`fail`), leaving flows unfinished (`unfinished`) and
reading an input file (`data_file`)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

import gradflow as gf
from gradflow import _interrupt
from gradflow.experiments import ExperimentConfig, Result, param
from gradflow.experiments._checks import count, number, optional

NAME = "test-fake"
CALLS: list[str] = []  # what was computed (not loaded from a checkpoint), in order


@dataclasses.dataclass(frozen=True)
class FakeConfig(ExperimentConfig):
    """The fake experiment's configuration."""

    QUICK = dict(pieces=3)
    TINY = dict(pieces=2, steps=2)

    pieces: int = param(4, "number of pieces of the descent", check=count(), size=True)
    steps: int = param(5, "descent steps per piece", check=count(), size=True)
    lr: float = param(0.1, "the descent's step", check=number())
    kill_at: int | None = param(
        None, "simulate SIGTERM after this piece (first attempt only)", check=optional(count(0))
    )
    fail: bool = param(False, "raise DivergenceError after the first piece")
    unfinished: bool = param(False, "report one flow that did not reach its end")
    data_file: str | None = param(None, "an input file (hashed in the provenance)", file=True)

    def estimated_bytes(self) -> float:
        return 8.0 * 100 * self.pieces * self.steps


def _problem(seed: int):
    data = gf.data.linear_teacher(jax.random.PRNGKey(seed), 2, 2, n=4, singular_values=[2.0, 1.0])
    model = gf.models.DeepLinear([2, 2], jax.random.PRNGKey(seed + 1), 0.5)
    return data, model


def run(config: FakeConfig, context) -> Result:
    import matplotlib.pyplot as plt

    data, model = _problem(config.seed)

    def warmup():
        CALLS.append("warmup")
        return gf.descent(model, data, steps=config.steps, lr=config.lr)

    first = context.cached("warmup", warmup)
    folder = context.checkpoint("pieces")
    model, losses, piece = first.final, [float(first.loss[-1])], first
    with context.task("pieces", total=config.pieces) as advance:
        for i in range(config.pieces):
            path = folder / f"piece{i}.nc"
            if path.is_file():
                piece = gf.Trajectory.load(path)
            else:
                CALLS.append(f"piece{i}")
                piece = gf.descent(model, data, steps=config.steps, lr=config.lr)
                piece.save(path)
            model = piece.final
            losses.append(float(piece.loss[-1]))
            if config.fail:
                raise gf.DivergenceError("the state became non-finite (simulated)", piece)
            if config.kill_at == i and not context.resumed:
                _interrupt.request("SIGTERM")
            advance()
    figures, captions = {}, {}
    for stem in ("zeta_headline", "alpha_second"):  # not in name order: the report keeps this
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot(np.arange(len(losses)), losses)
        figures[stem], captions[stem] = fig, f"The {stem} figure of the fake experiment."
    return Result(
        summary={"losses": losses, "final_loss": losses[-1], "pi": 3.14159265358979},
        trajectory=piece,
        figures=figures,
        captions=captions,
        notes="A fake experiment for the run-folder tests.",
        incomplete=["piece 0: stopped at max_steps (simulated)"] if config.unfinished else [],
    )
