"""Record gradflow's behaviour at commit d1673ff (before the library-first redesign).

Run in a checkout of that commit (`git worktree add /tmp/old d1673ff`, then
`cd /tmp/old && .venv/bin/python /path/to/this/make.py OUTDIR`). It writes

- `vector_fields.npz`: for every model × geometry (× l2) case, the inputs (data x, y and the
  trainable parameters, named `CASE/x`, `CASE/y`, `CASE/param/PATH`) and the vector field
  θ ↦ −G⁻¹∇F(θ) at them (`CASE/velocity/PATH`), plus F (`CASE/loss`);
- `cases.json`: how each case's model is built (class and keyword arguments) so that a later
  version can rebuild it from the stored parameters;
- `summaries/NAME.json`: every experiment's `--set quick=true` summary, and the default
  `deep-linear` run's summary (`summaries/deep-linear-default.json`).

Nothing here is pickled: `np.savez` of plain float arrays and JSON.
"""

import json
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.tree_util as jtu
import numpy as np

import gradflow as gf
from gradflow.objective import trainable_masses, value_and_grad

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
k = jax.random.PRNGKey


def path_name(path):
    parts = []
    for p in path:
        if isinstance(p, jtu.GetAttrKey):
            parts.append(p.name)
        elif isinstance(p, jtu.SequenceKey):
            parts.append(str(p.idx))
        elif isinstance(p, jtu.DictKey):
            parts.append(str(p.key))
        else:
            parts.append(str(p))
    return "/".join(parts)


def cases():
    lin = gf.data.linear_teacher(k(0), 3, 2, 16, [2.0, 0.5], whiten=False)
    yield (
        "deep_linear",
        lin,
        gf.models.DeepLinear([3, 4, 5, 2], k(1), 0.7),
        "euclidean",
        0.0,
        {"class": "DeepLinear"},
    )
    yield (
        "deep_linear_l2",
        lin,
        gf.models.DeepLinear([3, 4, 2], k(2), 0.9),
        "euclidean",
        0.03,
        {"class": "DeepLinear"},
    )
    dl = gf.models.DeepLinear([3, 4, 5, 2], k(3), 0.8)
    yield (
        "adjacency",
        lin,
        gf.models.AdjacencyDeepLinear.from_layers(dl),
        "euclidean",
        0.0,
        {
            "class": "AdjacencyDeepLinear",
            "widths": [3, 4, 5, 2],
        },
    )
    gauss = gf.data.gaussian(k(4), 7, 3, 2)
    for init in ("tied", "smooth", "iid"):
        net = gf.models.ResNet(3, 5, 4, 6, 2, key=k(5), init=init)
        if init == "tied":  # V = 0 gives a degenerate field in W: move V off zero
            net = eqx.tree_at(lambda m: m.V, net, 0.3 * jax.random.normal(k(6), net.V.shape))
        for geometry in ("euclidean", "conditional_wasserstein"):
            yield (
                f"resnet_{init}_{geometry}",
                gauss,
                net,
                geometry,
                0.0,
                {
                    "class": "ResNet",
                    "activation": "gelu",
                },
            )
    net = gf.models.ResNet(
        3, 5, 4, 6, 2, key=k(7), init="iid", activation="tanh", train_embedding=True
    )
    yield (
        "resnet_embedding_cw",
        gauss,
        net,
        "conditional_wasserstein",
        0.01,
        {
            "class": "ResNet",
            "activation": "tanh",
            "train_embedding": True,
        },
    )
    ode = gf.models.ResNet(3, 5, 4, 4, 2, key=k(8), init="smooth").ode_limit("linear")
    yield (
        "neural_ode_cw",
        gauss,
        ode,
        "conditional_wasserstein",
        0.0,
        {
            "class": "NeuralODE",
            "interpolation": "linear",
        },
    )
    mf = gf.models.MeanFieldResNet(2, 4, 3, 5, 1, key=k(9), init_scale=1.5)
    mfdata = gf.data.gaussian(k(10), 6, 2, 1)
    for geometry, l2 in (
        ("conditional_wasserstein", 0.0),
        ("conditional_wasserstein", 0.02),
        ("euclidean", 0.0),
    ):
        yield (
            f"mean_field_{geometry}_l2_{l2}",
            mfdata,
            mf,
            geometry,
            l2,
            {
                "class": "MeanFieldResNet",
                "activation": "tanh",
            },
        )
    mfb = gf.models.MeanFieldResNet(
        2, 4, 2, 3, 1, key=k(11), activation="gelu", bias=False, input_scale=0.7
    )
    yield (
        "mean_field_nobias",
        mfdata,
        mfb,
        "conditional_wasserstein",
        0.0,
        {
            "class": "MeanFieldResNet",
            "activation": "gelu",
            "bias": False,
            "input_scale": 0.7,
        },
    )
    two = gf.models.TwoLayerMeanField(2, 6, 1, key=k(12), init_scale=1.2)
    for geometry in ("wasserstein", "euclidean"):
        yield (
            f"two_layer_{geometry}",
            mfdata,
            two,
            geometry,
            0.01,
            {
                "class": "TwoLayerMeanField",
                "activation": "tanh",
            },
        )


arrays, meta = {}, {}
for name, data, model, geometry, l2, build in cases():
    g = gf.geometry.as_geometry(geometry)
    masses = trainable_masses(model)
    params, static = eqx.partition(model, model.trainable())
    f, grads = value_and_grad(static, masses, l2)(params, model.statistics(data))
    velocity = g.velocity(grads, masses)
    arrays[f"{name}/x"] = np.asarray(data.x)
    arrays[f"{name}/y"] = np.asarray(data.y)
    arrays[f"{name}/loss"] = np.asarray(f)
    for path, leaf in jtu.tree_flatten_with_path(params)[0]:
        arrays[f"{name}/param/{path_name(path)}"] = np.asarray(leaf)
    for path, leaf in jtu.tree_flatten_with_path(velocity)[0]:
        arrays[f"{name}/velocity/{path_name(path)}"] = np.asarray(leaf)
    meta[name] = {"geometry": geometry, "l2": l2, **build}
np.savez(out / "vector_fields.npz", **arrays)
(out / "cases.json").write_text(json.dumps(meta, indent=1) + "\n")
print(f"{len(meta)} vector-field cases")

if "--no-experiments" not in sys.argv:
    from gradflow.experiments import REGISTRY, run_experiment

    (out / "summaries").mkdir(exist_ok=True)
    runs = [(n, {"quick": "true"}, n) for n in sorted(REGISTRY)]
    runs.append(("deep-linear", {}, "deep-linear-default"))
    for name, overrides, stem in runs:
        folder = Path("/tmp/baseline-runs") / stem
        run_experiment(name, overrides, out=folder)
        summary = json.loads((folder / "summary.json").read_text())
        (out / "summaries" / f"{stem}.json").write_text(json.dumps(summary, indent=1) + "\n")
        print(stem, "done", summary.get("wall_time_s"))
