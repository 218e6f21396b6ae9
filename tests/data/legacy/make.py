"""Writes the legacy trajectory files of this folder with gradflow at commit d1673ff, the last
version whose `Trajectory.save` pickled the model skeleton (format 1, attribute
`gradflow_skeleton`). Run from a checkout of that commit:

    PYTHONPATH=<checkout of d1673ff>/src python tests/data/legacy/make.py

`expected.json` holds what the old code computed from each trajectory (its times, and the
output of its final model, member 0 for an ensemble, on fixed inputs) so that the tests can check
that a converted file holds the same trajectory. The files carry no payload: the tests that
need a malicious pickle make one from these files in a temporary folder.
"""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import gradflow as gf

HERE = Path(__file__).parent
M = gf.models
key = jax.random.PRNGKey
X = jnp.linspace(-1.0, 1.0, 6).reshape(3, 2)


def main():
    lin = gf.data.linear_teacher(key(0), 2, 2, 4, [1.0, 0.5])
    gauss = gf.data.gaussian(key(1), 3, 2, 2)
    frozen = M.ResNet(2, 3, 2, 2, 2, key(4), init="iid", frozen=("V",))
    trajectories = {
        # a flow (solver statistics), a tuple of weights: variables param0, param1
        "deep_linear_flow.nc": gf.flow(
            M.DeepLinear([2, 2, 2], key(9), 0.5), lin, 0.5, saveat=np.linspace(0, 0.5, 3)
        ),
        # a fixed array (V frozen: static0), static tuples and strings, another geometry
        "resnet_frozen.nc": gf.descent(
            frozen, gauss, 2, 0.1, geometry="conditional_wasserstein", save_every=1
        ),
        # an ensemble: a member axis
        "ensemble_resnet.nc": gf.descent(
            gf.ensemble(
                lambda k: M.ResNet(2, 3, 2, 2, 2, k, init="iid"), jax.random.split(key(8), 2)
            ),
            gauss,
            2,
            0.1,
            save_every=1,
        ),
    }
    expected = {}
    for name, traj in trajectories.items():
        traj.save(HERE / name)
        final = (traj if traj.ensemble_size is None else traj.member(0)).final
        expected[name] = {
            "class": type(final).__name__,
            "ts": np.asarray(traj.ts).tolist(),
            "output": np.asarray(final(X)).tolist(),
        }
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
