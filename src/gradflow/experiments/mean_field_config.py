"""What the configurations of the mean-field experiments (`conditional-ot`, `lojasiewicz`,
`mean-field-limit`) share: the problem's sizes and its data.

The data are the tanh teacher (`gf.data.tanh_teacher`): x_i ~ N(0, I_d), y_i = (1/√K) V
tanh(W x_i + c), K = 16, or the arrays x, y of the file `data` (`gf.data.load_npz`, checked
against in_dim and out_dim when the configuration is validated). The model is a `MeanFieldResNet`
of `layers` layers with fixed embedding [I; 0] and readout [0, I] and state dimension
q = d + d' + 1, so that the readout coordinate starts at zero.
"""

from __future__ import annotations

import dataclasses

import jax

import gradflow as gf
from gradflow.experiments import ExperimentConfig, checks, param


@dataclasses.dataclass(frozen=True)
class MeanFieldConfig(ExperimentConfig):
    """Sizes and data of a mean-field experiment; subclasses add the particles and the flow."""

    n: int = param(12, "number of samples of the teacher data", check=checks.count(), size=True)
    in_dim: int = param(2, "input dimension d", check=checks.count(), size=True)
    out_dim: int = param(1, "output dimension d'", check=checks.count(), size=True)
    data: str | None = param(
        None,
        "an .npz file of arrays x (n, in_dim), y (n, out_dim) used instead of the tanh teacher",
        file=True,
    )
    loss: str = param(
        "half_mse", "the risk of the outputs against y (gf.losses)", choices=checks.loss_names
    )
    layers: int = param(
        4, "number of layers L of the mean-field ResNet", check=checks.count(), size=True
    )

    def validate(self) -> None:
        super().validate()
        self.samples()  # a data file is read and checked here, before any run
        if self.data is not None:  # the loss must read the file's targets (the teacher's: run)
            checks.loss_data(self.loss, self.dataset(None))

    @property
    def state_dim(self) -> int:
        """q = d + d' + 1."""
        return self.in_dim + self.out_dim + 1

    def dataset(self, key) -> gf.Dataset:
        """The data: the file `data` (checked against in_dim, out_dim), else the tanh teacher
        (`gf.data.tanh_teacher`) drawn with `key`, n samples."""
        if self.data is not None:
            return gf.data.load_npz(
                self.data, field="data", in_dim=self.in_dim, out_dim=self.out_dim
            )
        return gf.data.tanh_teacher(key, self.n, self.in_dim, self.out_dim)

    def keys(self):
        """(data key, model key): the split of jax.random.PRNGKey(seed) every mean-field
        experiment draws its data and its particles with."""
        return tuple(jax.random.split(jax.random.PRNGKey(self.seed)))

    def data_and_model_key(self):
        """(the dataset drawn with the data key, the model key)."""
        kdata, kmodel = self.keys()
        return self.dataset(kdata), kmodel

    def samples(self) -> int:
        """n: the file's number of samples when `data` is set."""
        return self.n if self.data is None else self.dataset(None).n
