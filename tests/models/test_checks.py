"""Every model checks its invariants in `__check_init__`, so that a model rebuilt from a file (which
bypasses `__init__`, as equinox's unflatten does) is refused with a one-line `ConfigError` naming
the field when it is not a model `__init__` could have made."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import gradflow as gf
from gradflow._serialise import describe, rebuild

KEY = jax.random.PRNGKey(0)
M = gf.models


def crafted(model, **changes):
    """`model` with fields replaced, built as files rebuild models: no `__init__`."""
    new = object.__new__(type(model))
    for f in dataclasses.fields(model):
        object.__setattr__(new, f.name, changes.get(f.name, getattr(model, f.name)))
    return new


def check_init(model) -> None:
    """Every `__check_init__` of the class hierarchy, as equinox runs them after `__init__`."""
    for kls in type(model).__mro__:
        if "__check_init__" in kls.__dict__:
            kls.__dict__["__check_init__"](model)


MODELS = {
    "resnet": lambda: M.ResNet(3, 5, 4, 3, 2, key=KEY, init="iid"),
    "neural_ode": lambda: M.ResNet(3, 5, 4, 3, 2, key=KEY).ode_limit(),
    "mean_field": lambda: M.MeanFieldResNet(2, 4, 3, 5, 1, key=KEY),
    "two_layer": lambda: M.TwoLayerMeanField(2, 5, 1, key=KEY),
    "wrapped": lambda: M.Wrapped(eqx.nn.MLP(2, 1, 4, 1, key=KEY), masses=0.5),
}

CASES = [
    ("resnet", dict(activation="swish"), "activation"),
    ("resnet", dict(frozen=("A",)), "frozen"),
    ("resnet", dict(frozen=["V"]), "frozen"),
    ("resnet", dict(normalise="yes"), "normalise"),
    ("resnet", dict(train_embedding=True), "train_embedding"),  # A, B not stored
    ("resnet", dict(io_dims=(0, 2)), "io_dims"),
    ("resnet", dict(io_dims=(9, 2)), "dim"),  # A = [I; 0] does not fit in q = 5
    ("resnet", dict(W=jnp.zeros((3, 4, 6))), "weights"),
    ("resnet", dict(V=jnp.zeros((0, 5, 4)), W=jnp.zeros((0, 4, 5))), "weights"),
    ("neural_ode", dict(activation="swish"), "activation"),
    ("neural_ode", dict(interpolation="cubic"), "interpolation"),
    ("neural_ode", dict(rtol=-1.0), "rtol"),
    ("neural_ode", dict(max_steps=0), "max_steps"),
    ("mean_field", dict(activation="swish"), "activation"),
    ("mean_field", dict(input_scale=0.0), "input_scale"),
    ("mean_field", dict(bias="no"), "bias"),
    ("mean_field", dict(in_features=0), "in_features"),
    ("mean_field", dict(in_features=9), "dim"),
    ("mean_field", dict(b=jnp.zeros((3, 4))), "positions.b"),
    ("two_layer", dict(activation="swish"), "activation"),
    ("two_layer", dict(w=jnp.zeros((6, 2))), "positions.w"),
    ("wrapped", dict(trainable_paths=("layers.0.weight", "nope")), "trainable"),
    ("wrapped", dict(io_dims=(2,)), "io_dims"),
    ("wrapped", dict(mass_values=None, layered=True), "layered"),
    ("wrapped", dict(mass_values=(jnp.ones(()),)), "masses"),
]


@pytest.mark.parametrize("name, changes, field", CASES)
def test_crafted_models_are_refused_in_one_line(name, changes, field):
    model = MODELS[name]()
    check_init(crafted(model))  # the model itself passes
    with pytest.raises(gf.ConfigError) as err:
        check_init(crafted(model, **changes))
    assert err.value.field == field
    assert "\n" not in str(err.value)


def test_a_file_naming_an_unknown_activation_is_refused():
    structure, arrays = describe(M.ResNet(3, 5, 4, 3, 2, key=KEY))
    structure["fields"]["activation"] = "swish"
    with pytest.raises(gf.FileFormatError) as err:
        rebuild(structure, arrays, source="crafted.nc")
    message = str(err.value)
    assert "activation" in message and "swish" in message and "\n" not in message


def test_a_file_without_a_later_field_takes_its_default():
    model = M.ResNet(3, 5, 4, 3, 2, key=KEY, init="iid")
    structure, arrays = describe(model)
    del structure["fields"]["normalise"]  # written before ResNet had `normalise`
    back = rebuild(structure, arrays)
    assert back.normalise is True
    assert eqx.tree_equal(back, model)
