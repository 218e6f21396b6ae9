"""The network and data of `resnet-long` (also what benchmarks/resnet.py flows)."""

from __future__ import annotations

import jax

import gradflow as gf
from gradflow.experiments import resnet_common as common


def long_problem(config) -> tuple[gf.models.ResNet, gf.Dataset]:
    """The `resnet-long` network and data of `config`: data x, y ~ N(0, I_dim) (or the arrays
    of `config.data`), and the ResNet of `config`'s init (or the arrays of `config.init`)."""
    key_data, key_model = jax.random.split(jax.random.PRNGKey(config.seed))
    data = common.user_data(
        config,
        max_dim=config.dim,
        default=lambda: gf.data.gaussian(key_data, config.n, config.dim, config.dim),
    )
    model = gf.models.ResNet(
        data.in_dim,
        config.dim,
        config.width,
        config.depth,
        data.out_dim,
        key=key_model,
        activation=config.activation,
        init=config.init_scheme,
        length_scale=config.length_scale,
    )
    return common.user_init(model, config), data
