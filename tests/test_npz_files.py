"""Your data and your weights from .npz files: exact round trips and one-line refusals."""

import jax
import numpy as np
import pytest

import gradflow as gf


def test_dataset_round_trip_is_exact(tmp_path):
    data = gf.data.gaussian(jax.random.PRNGKey(0), 7, 3, 2)
    gf.data.save_npz(tmp_path / "d.npz", data)
    back = gf.data.load_npz(tmp_path / "d.npz", in_dim=3, out_dim=2)
    np.testing.assert_array_equal(np.asarray(back.x), np.asarray(data.x))
    np.testing.assert_array_equal(np.asarray(back.y), np.asarray(data.y))


def test_one_dimensional_targets_are_one_column(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((4, 2)), y=np.arange(4))
    assert gf.data.load_npz(tmp_path / "d.npz").y.shape == (4, 1)


@pytest.mark.parametrize(
    "arrays, kwargs, words",
    [
        ({"x": np.ones((4, 2))}, {}, "without y"),
        ({"x": np.ones((4, 2)), "y": np.ones((3, 1))}, {}, "same n"),
        ({"x": np.ones((4, 2)), "y": np.full((4, 1), np.nan)}, {}, "non-finite"),
        ({"x": np.ones((4, 2)), "y": np.ones((4, 1))}, {"in_dim": 3}, "d_in = 3"),
        ({"x": np.ones((4, 2)), "y": np.ones((4, 1))}, {"out_dim": 5}, "d_out = 5"),
        ({"x": np.array([["a", "b"]]), "y": np.ones((1, 1))}, {}, "real numbers"),
    ],
)
def test_bad_data_files_are_refused_naming_the_field(tmp_path, arrays, kwargs, words):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(gf.ConfigError) as err:
        gf.data.load_npz(tmp_path / "d.npz", **kwargs)
    text = str(err.value)
    assert "data" in text and words in text and "\n" not in text


def test_pickled_objects_are_refused_never_run(tmp_path):
    marker = tmp_path / "ran"
    np.savez(tmp_path / "d.npz", x=np.array([_Payload(str(marker))], dtype=object), y=np.ones(1))
    with pytest.raises(gf.ConfigError, match="numeric arrays"):
        gf.data.load_npz(tmp_path / "d.npz")
    assert not marker.exists()
    with pytest.raises(gf.ConfigError, match="readable .npz"):
        gf.data.load_npz(tmp_path / "missing.npz")


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize(
    "model",
    [
        gf.models.DeepLinear([3, 4, 2], jax.random.PRNGKey(1)),
        gf.models.ResNet(3, 4, 5, 2, 2, key=jax.random.PRNGKey(2)),
    ],
    ids=["DeepLinear", "ResNet"],
)
def test_parameters_round_trip_into_another_model(tmp_path, model):
    gf.models.save_parameters(tmp_path / "w.npz", model)
    other = jax.tree_util.tree_map(lambda a: a * 0 + 0.5 if hasattr(a, "dtype") else a, model)
    back = gf.models.load_parameters(other, tmp_path / "w.npz")
    for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(model)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_parameter_files_with_wrong_names_or_shapes_are_refused(tmp_path):
    model = gf.models.DeepLinear([3, 4, 2], jax.random.PRNGKey(1))
    arrays = gf.models.parameter_arrays(model)
    assert sorted(arrays) == ["weights.0", "weights.1"]
    np.savez(tmp_path / "w.npz", **arrays, extra=np.ones(2))
    with pytest.raises(gf.ConfigError, match=r"init.*unknown \['extra'\].*weights.0 \(4, 3\)"):
        gf.models.load_parameters(model, tmp_path / "w.npz")
    np.savez(tmp_path / "w.npz", **{"weights.0": arrays["weights.0"]})
    with pytest.raises(gf.ConfigError, match=r"missing \['weights.1'\]"):
        gf.models.load_parameters(model, tmp_path / "w.npz")
    np.savez(tmp_path / "w.npz", **{**arrays, "weights.1": np.ones((3, 3))})
    with pytest.raises(gf.ConfigError, match=r"weights.1 of shape \(3, 3\).*\(2, 4\)"):
        gf.models.load_parameters(model, tmp_path / "w.npz")
