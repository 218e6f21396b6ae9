"""Every model constructor refuses a bad argument with a `ConfigError` naming the field. (Models
rebuilt from files bypass the constructor; their checks are in test_checks.py.)"""

import jax
import pytest

import gradflow as gf

M = gf.models

# A small valid model of each class; each case replaces some of these arguments.
VALID = {
    M.ResNet: dict(in_dim=3, dim=4, width=2, depth=3, out_dim=2, key=jax.random.PRNGKey(3)),
    M.MeanFieldResNet: dict(
        in_dim=2, dim=4, layers=2, particles=3, out_dim=1, key=jax.random.PRNGKey(0)
    ),
    M.TwoLayerMeanField: dict(in_dim=2, particles=5, out_dim=1, key=jax.random.PRNGKey(0)),
}


@pytest.mark.parametrize(
    "model_cls, changes, field",
    [
        (M.ResNet, dict(depth=0), "depth"),
        (M.ResNet, dict(depth=2.5), "depth"),
        (M.ResNet, dict(width=0), "width"),
        (M.ResNet, dict(init="orthogonal"), "init"),
        (M.ResNet, dict(activation="swish"), "activation"),
        (M.ResNet, dict(dim=2), "dim"),  # dim < in_dim
        (M.ResNet, dict(out_dim=9), "dim"),  # dim < out_dim
        (M.ResNet, dict(frozen=("A",)), "frozen"),
        (M.ResNet, dict(init="smooth", length_scale=0.0), "length_scale"),
        (M.MeanFieldResNet, dict(particles=0), "particles"),
        (M.MeanFieldResNet, dict(layers=0), "layers"),
        (M.MeanFieldResNet, dict(dim=1), "dim"),
        (M.MeanFieldResNet, dict(activation="swish"), "activation"),
        (M.MeanFieldResNet, dict(init_scale=-1.0), "init_scale"),
        (M.TwoLayerMeanField, dict(particles=0), "particles"),
    ],
)
def test_a_bad_argument_is_refused_naming_the_field(model_cls, changes, field):
    with pytest.raises(gf.ConfigError) as err:
        model_cls(**{**VALID[model_cls], **changes})
    assert err.value.field == field
