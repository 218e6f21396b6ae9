"""`resnet-digits`: for each activation, the tied and iid networks trained together by heavy-ball
gradient descent (one vmapped run); accuracy, and whether the trained weights are smooth in
depth."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import pandas as pd

import gradflow as gf
from gradflow.experiments import Result, register
from gradflow.experiments import resnet_common as common

from .config import DigitsConfig
from .figures import DigitsFigures, digits_figures

if TYPE_CHECKING:  # the runner's context; `gradflow.runs` imports this package
    from gradflow.runs import RunContext

dg = gf.diagnostics

NOTES = (
    "Trained by heavy-ball gradient descent (gf.descent, conditional-Wasserstein geometry) "
    "for a fixed budget, one vmapped run of both inits per activation: like the paper's "
    "CIFAR training, the question is what practical training leaves in the weights, and the "
    "flow would need hundreds of time units here. The paper (CIFAR-10, depth 256) finds that "
    "only a smooth activation with the tied init gives trained weights smooth in depth, and "
    "that the iid init trains at least as well; here the same grid on the digits. " + common.UNITS
)


def accuracy(model, data) -> float:
    """The fraction of samples whose largest output is at the target's largest entry."""
    pred = gf.data.digit_labels(jax.jit(lambda m, x: m(x))(model, data.x))
    return float(jnp.mean(pred == gf.data.digit_labels(data.y)))


def _row(config, member, model0, train, test, activation, init) -> dict:
    final = member.final
    # max_k |Z_k| (|V_k|_F + |W_k|_F): the scale of the weights, to make L·max|ΔZ| relative
    size = sum(jnp.sqrt(jnp.sum(w**2, axis=(1, 2))) for w in final.layer_weights().values())
    smooth = dg.depth_smoothness(final)
    lipschitz = smooth.scaled / float(jnp.max(size))
    return {
        "activation": activation,
        "init": init,
        "train_accuracy": accuracy(final, train),
        "test_accuracy": accuracy(final, test),
        "train_risk": float(2 * member.loss[-1]),
        "smoothness": smooth.max_diff,
        "smoothness_scaled": smooth.scaled,
        "smoothness_init": dg.depth_smoothness(model0).max_diff,
        "lipschitz_in_depth_relative": lipschitz,
        "smooth_in_depth": bool(lipschitz <= config.smooth_threshold),
    }


def _activation_rows(config, key_model, train, test, activation) -> list[dict]:
    models = [
        gf.models.ResNet(
            train.in_dim,
            config.dim,
            config.width,
            config.depth,
            train.out_dim,
            key=key_model,
            activation=activation,
            init=init,
        )
        for init in config.inits
    ]
    traj = gf.descent(
        gf.Ensemble.stack(models),
        train,
        config.steps,
        config.lr,
        optimizer=config.optimizer,
        geometry=common.GEOMETRY,
        save_every=max(1, config.steps // 10),
        loss=config.loss,
    )
    return [
        _row(config, traj.member(e), models[e], train, test, activation, init)
        for e, init in enumerate(config.inits)
    ]


def _table(frame, config) -> dict:
    table = {}
    for activation in config.activations:
        sub = frame[frame.activation == activation].set_index("init")
        entry = {init: sub.loc[init].drop("activation").to_dict() for init in config.inits}
        if "tied" in config.inits and "iid" in config.inits:
            entry["smoothness_ratio_tied_over_iid"] = float(
                sub.loc["tied", "smoothness"] / sub.loc["iid", "smoothness"]
            )
        table[activation] = entry
    return table


def _summary(config, frame, train, test) -> dict:
    squared = "squared loss" if config.loss in ("half_mse", "mse") else f"{config.loss} loss"
    return {
        "loss": config.loss,
        "geometry": common.GEOMETRY,
        "data": (
            f"sklearn digits, {train.n} train / {test.n} test, PCA to {config.input_dim} "
            f"whitened components, one-hot targets, {squared}, argmax read-out"
            if config.data is None
            else f"{config.data}: {train.n} train / {test.n} test, {squared}, argmax read-out"
        ),
        "depth": config.depth,
        "width": config.width,
        "dim": config.dim,
        "training": f"gf.descent, {config.optimizer}, lr = {config.lr:g} (conditional-"
        f"Wasserstein geometry), {config.steps} steps",
        "table": _table(frame, config),
        "smooth_in_depth_criterion": (
            "L · max_k |Z_{k+1} − Z_k| / max_k |Z_k| ≤ smooth_threshold (the relative Lipschitz "
            "constant of the weights in s = k/L); tied init starts at 0, iid at ~L"
        ),
        "paper_cifar10_depth256": {
            "gelu_tied": "80.5% train, 79.9% test, smooth",
            "gelu_iid": "89.8 / 85.7, not smooth",
            "relu_tied": "97.4 / 88.1, not smooth",
        },
    }


@register(
    "resnet-digits",
    "Activation × init on scikit-learn's digits (the paper's CIFAR table): accuracy, and whether "
    "the trained weights are smooth in depth (only smooth activation + tied init)",
    DigitsConfig,
)
def run_digits(config: DigitsConfig, context: RunContext) -> Result:
    key_split, key_model = jax.random.split(jax.random.PRNGKey(config.seed))
    pixels = lambda: gf.data.digits(dim=config.input_dim)
    data = common.user_data(config, max_dim=config.dim, default=pixels)
    train, test = data.split(config.train_fraction, key_split)
    rows = []
    with context.task("resnet-digits: activations", total=len(config.activations)) as advance:
        for activation in config.activations:
            new = _activation_rows(config, key_model, train, test, activation)
            rows += new
            context.log(
                f"resnet-digits {activation}: "
                + ", ".join(
                    f"{r['init']} train {r['train_accuracy']:.3f} test {r['test_accuracy']:.3f}"
                    for r in new
                )
            )
            advance()
    frame = pd.DataFrame(rows)
    record = DigitsFigures(frame, tuple(config.activations), tuple(config.inits), config.depth)
    return Result.with_figures(
        digits_figures(record),
        summary=_summary(config, frame, train, test),
        metrics=frame,
        notes=NOTES,
    )
