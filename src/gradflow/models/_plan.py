"""Memory of a mean-field ResNet's flow: how many saves and how large a metric batch fit.

A flow of L layers of M particles in R^q holds a few copies of its state in the solver, its saved
states, and the states whose risk and gradient are computed together; at 10^6–10^7 particles the
saves dominate, so a run keeps fewer of them and computes their metrics in pieces
(`gf.flow_in_pieces`). `flow_plan` says how many and whether the whole fits.
"""

from __future__ import annotations

import dataclasses
import math

from .._memory import physical_memory
from .._result import Record
from .._validation import integer, positive_int
from .mean_field import particle_block

# Copies of the state a solve holds besides its saves: Tsit5's seven stages, the state, the
# proposal, the error estimate and the dense-output coefficients, rounded up.
SOLVER_COPIES = 13


@dataclasses.dataclass(frozen=True)
class FlowPlan(Record):
    """How a flow of a `MeanFieldResNet` fits in memory (the result of `flow_plan`).

    - `saves`: the saved states kept (the requested number, fewer when they would not fit).
    - `piece`: save intervals whose metrics are computed in one batch (`gf.flow_in_pieces`'s
      `piece`; `saves − 1` means one solve, `gf.flow`).
    - `state_bytes`: bytes of one state, 8·L·M·(2q + 1) in float64.
    - `estimated_bytes`: the estimated peak (see `flow_plan`). `fits`: whether it is within memory.
    """

    saves: int
    piece: int
    state_bytes: float
    estimated_bytes: float
    fits: bool


def flow_plan(
    n: int,
    layers: int,
    particles: int,
    dim: int,
    saves: int,
    *,
    memory: float | None = None,
    block: int | None = None,
    min_saves: int = 8,
) -> FlowPlan:
    """Saves and metric batches that keep the flow of a mean-field ResNet (n samples, L layers of
    M particles, state dimension q, float64) within `memory` bytes (default: this machine's).

    With P = 8·L·M·(2q + 1) bytes per state and A = 8·n·(4·M_b + q·(L + 1)) bytes of activations
    per gradient (M_b = min(M, block): the particle block's activations, recomputed layer by layer
    by the rematerialised forward pass; `block` default `particle_block()`), the peak is about

        P · (SOLVER_COPIES + 2·saves) + (piece + 1) · (P + A)

    (the solver's copies, the saved states and one copy while pieces are joined, and the states
    whose risk and gradient are computed in one batch). The saves kept are the requested number
    when 2·saves·P ≤ memory/4, else as many as fit (at least `min_saves`, and never more than
    requested); the batch is one solve when it fits in memory/8, else the largest piece that does.
    `fits` is False when even that exceeds `memory`.
    """
    for name, v in (("n", n), ("layers", layers), ("particles", particles), ("dim", dim)):
        positive_int(name, v)
    saves = integer("saves", saves, minimum=2)
    if memory is None:
        known = physical_memory()
        memory = math.inf if known is None else float(known)
    block = particle_block() if block is None else integer("block", block, minimum=0)
    state = 8.0 * layers * particles * (2 * dim + 1)
    m_b = min(particles, block) if block > 0 else particles
    act = 8.0 * n * (4 * m_b + dim * (layers + 1))
    # saves and states per batch that fit (memory may be math.inf: no limit)
    room, batch = memory / 4 / (2 * state), memory / 8 / (state + act)
    kept = saves if room >= saves else max(min(min_saves, saves), int(room))
    piece = kept - 1 if batch >= kept else max(1, int(batch) - 1)
    peak = state * (SOLVER_COPIES + 2 * kept) + (piece + 1) * (state + act)
    return FlowPlan(kept, piece, state, peak, bool(peak <= memory))
