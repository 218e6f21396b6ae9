"""`gf.models.flow_plan`: the saves and metric batches a mean-field flow keeps within memory."""

import math

import pytest

import gradflow as gf

# L = 4 layers of M = 64 particles in R^4: P = 8·4·64·(2·4 + 1) bytes per state; with n = 12
# and no particle blocks, A = 8·12·(4·64 + 4·5) bytes of activations per gradient.
P, A = 8 * 4 * 64 * 9, 8 * 12 * (4 * 64 + 4 * 5)


def plan(memory, saves=201):
    return gf.models.flow_plan(12, 4, 64, 4, saves, memory=memory, block=0)


def test_everything_kept_in_one_solve_when_it_fits():
    p = plan(math.inf)
    assert (p.saves, p.piece, p.state_bytes) == (201, 200, P)
    assert p.estimated_bytes == P * (13 + 2 * 201) + 201 * (P + A) and p.fits
    assert plan(24e9) == p


def test_saves_thinned_and_metrics_in_pieces_when_memory_is_short():
    # room for 10 saves (twice each) in a quarter of memory; batches of 4 states in an eighth
    memory = 4 * 2 * P * 10.5
    p = plan(memory)
    assert p.saves == 10
    assert p.piece == int(memory / 8 / (P + A)) - 1 == 3
    assert p.estimated_bytes == P * (13 + 2 * 10) + 4 * (P + A)
    assert p.fits  # 33 P + 4 (P + A) < 84 P
    tiny = plan(10 * P)
    assert tiny.saves == 8 and tiny.piece == 1 and not tiny.fits
    with pytest.raises(gf.ConfigError, match="saves"):
        plan(math.inf, saves=1)
