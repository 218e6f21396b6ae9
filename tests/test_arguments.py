"""`_arguments.takes`: a group of arguments declared once keeps every public signature as it was
(names, order of positional parameters, defaults) and fails a wrong call as Python would."""

import dataclasses
import inspect

import jax
import numpy as np
import pytest

import gradflow as gf
from gradflow._arguments import takes

FLOW_SETTINGS = {
    "geometry": "euclidean",
    "loss": "half_mse",
    "l2": 0.0,
    "rtol": 1e-8,
    "atol": 1e-10,
    "solver": "tsit5",
    "controller": "integral",
    "stop_below": None,
    "max_steps": 1_000_000,
    "dtype": None,
    "ensemble": "auto",
}
NEURONS = {"key": None, "activation": "tanh", "init_scale": 1.0, "positions": None}


def _defaults(fn, kind) -> dict:
    params = inspect.signature(fn).parameters.values()
    return {p.name: p.default for p in params if p.kind == kind}


def test_flow_signatures_list_every_keyword_with_its_default():
    flow_own = {"saveat": None, "event": None, "t0": 0.0, "progress": False, "throw": True}
    flow = _defaults(gf.flow, inspect.Parameter.KEYWORD_ONLY)
    assert flow == {**FLOW_SETTINGS, **flow_own, "clock": "linear"}
    pieces = _defaults(gf.flow_in_pieces, inspect.Parameter.KEYWORD_ONLY)
    own = {"checkpoint": None, "on_piece": None, "progress": None}
    assert pieces == {**FLOW_SETTINGS, "piece": inspect.Parameter.empty, **own}
    for fn, first in ((gf.flow, "t1"), (gf.flow_in_pieces, "ts")):
        positional = _defaults(fn, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        assert list(positional) == ["model", "data", first]


def test_neuron_measures_keep_their_constructor_signatures():
    kinds = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY
    two = gf.models.TwoLayerMeanField
    assert list(_defaults(two, kinds[0])) == ["in_dim", "particles", "out_dim", *NEURONS]
    assert _defaults(two, kinds[0])["activation"] == "tanh"
    assert _defaults(two, kinds[1]) == {"bias": True, "input_scale": 1.0}
    deep = gf.models.MeanFieldResNet
    sizes = ["in_dim", "dim", "layers", "particles", "out_dim"]
    assert list(_defaults(deep, kinds[0])) == [*sizes, *NEURONS]
    assert _defaults(deep, kinds[1]) == {"bias": True, "input_scale": 1.0, "particle_block": None}
    # Positional key and activation still reach the model.
    model = two(2, 3, 1, jax.random.PRNGKey(0), "gelu", 0.5, bias=False)
    assert (model.activation, model.bias, model.particles) == ("gelu", False, 3)
    same = two(2, 3, 1, key=jax.random.PRNGKey(0), activation="gelu", init_scale=0.5, bias=False)
    np.testing.assert_array_equal(model.u, same.u)


@dataclasses.dataclass(frozen=True)
class _Group:
    a: int = 1
    _: dataclasses.KW_ONLY
    b: int = 2


@takes(_Group, into="group")
def _f(x, *, y=0, group: _Group):
    return x, y, group


def test_takes_gathers_the_group_and_refuses_wrong_calls():
    assert _f(0) == (0, 0, _Group())
    assert _f(0, 5, y=1, b=3) == (0, 1, _Group(5, b=3))
    assert list(inspect.signature(_f).parameters) == ["x", "a", "b", "y"]
    with pytest.raises(TypeError, match=r"_f\(\) got an unexpected keyword argument 'c'"):
        _f(0, c=1)
    with pytest.raises(TypeError, match=r"_f\(\) .*multiple values for argument 'a'"):
        _f(0, 5, a=1)
    with pytest.raises(TypeError, match=r"_f\(\) too many positional arguments"):
        _f(0, 1, 2)
    # gf.flow_in_pieces takes no event (gf.flow's own keyword, not a shared setting).
    with pytest.raises(TypeError, match=r"flow_in_pieces\(\) got an unexpected keyword arg"):
        gf.flow_in_pieces(None, None, [0.0, 1.0], piece=1, event=None)
