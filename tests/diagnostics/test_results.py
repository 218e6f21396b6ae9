"""The result contract: every record gradflow's diagnostics, fits and predictions return is a
frozen dataclass (assigning a field raises) whose `as_dict()` is strict JSON (arrays → lists,
NumPy scalars → numbers, NaN → None, nested records → dicts), built here on small exact problems."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from problems import balanced_trajectory, random_deep_linear, trajectory_through

import gradflow as gf
from gradflow._result import Record, to_json

dg = gf.diagnostics


@pytest.fixture(scope="module")
def records():
    key = jax.random.PRNGKey(0)
    data = gf.data.linear_teacher(key, 3, 3, 12, [2.0, 0.5])
    ts = np.concatenate([[0.0], np.geomspace(0.01, 30.0, 40)])
    traj = balanced_trajectory(data, [3, 3, 3], 1e-3, ts)  # the exact flow, no solve
    ends = [gf.models.AdjacencyDeepLinear.from_layers(traj.at(i)) for i in (0, len(ts) - 1)]
    mean_field = gf.models.MeanFieldResNet(2, 4, 2, 3, 1, key=key)
    resnet = gf.models.ResNet(2, 3, 2, 4, 2, key=key, init="smooth")
    u = gf.analytic.balanced_mode_strength(ts, 2.0, 1e-3, 3)
    return {
        "PLRatio": dg.pl_ratio(traj),
        "KernelPL": dg.tangent_kernel_pl(random_deep_linear(0, [3, 3, 3]), data),
        "Slope": gf.fits.loglog_slope([1.0, 2.0, 4.0], [1.0, 0.5, 0.26]),
        "DepthSmoothness": dg.depth_smoothness(resnet),
        "TransportResult": dg.wasserstein_details(np.eye(3), np.zeros((2, 3))),
        "ConditionalTransport": dg.conditional_wasserstein_details(mean_field, mean_field),
        "CriticalPoint": dg.critical_points(data, [3, 3])[0],
        "SaddleTimeline": dg.saddle_timeline(traj, data),
        "LojasiewiczFit": dg.lojasiewicz_fit(traj, f_inf=0.0),
        "ConservationDrift": dg.conservation_drift(traj),
        "AdjacencyInvariants": dg.adjacency_invariants(trajectory_through(ends, [0.0, 30.0])),
        "EnergyDissipation": dg.energy_dissipation(traj),
        "AlignedPrediction": gf.analytic.aligned_balanced_prediction(ts[:3], u[:3], 2.0, 3),
        "CriticalPointResult": gf.critical_point(
            gf.models.DeepLinear([1, 1], weights=[jnp.ones((1, 1))]),
            gf.data.Dataset(jnp.ones((2, 1)), jnp.full((2, 1), 2.0)),
        ),
        # a probe's record as `escape_probe` fills it (its flows are tested in test_escape_probe)
        "EscapeEstimate": dg.EscapeEstimate(
            eps=np.array([1e-2, 1e-3]),
            times=np.array([[3.0, np.inf]]),
            escaped=True,
            drop=1e-2,
            t1=10.0,
            fitted_order=float("nan"),
            fit="",
            direction=np.ones(2),
        ),
        "FlowPlan": gf.models.flow_plan(8, 2, 16, 3, 10, memory=1e9),
        "InverseLog": gf.fits.inverse_log_fit([10.0, 100.0, 1000.0], [0.5, 0.25, 0.5 / 3]),
        "LinearInit": gf.analytic.delta_balanced_init([2, 2, 2], 0.0, key),
        "MaxMargin": gf.analytic.max_margin(np.array([[1.0, 0.5], [-1.0, 0.2]]), np.array([1, -1])),
    }


def _record_classes(cls=Record):
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("gradflow"):
            yield sub
        yield from _record_classes(sub)


def test_every_record_class_is_covered(records):
    assert {c.__name__ for c in _record_classes()} == set(records)


def test_records_are_frozen_dataclasses_with_json_dicts(records):
    for name, record in records.items():
        assert dataclasses.is_dataclass(record) and isinstance(record, Record), name
        fields = [f.name for f in dataclasses.fields(record)]
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, fields[0], None)
        out = record.as_dict()
        text = json.dumps(out, allow_nan=False)  # strict JSON: no NaN, no arrays
        assert json.loads(text) == out, name
        # a model is not a summary number: records holding one leave it out of as_dict()
        with_model = ("CriticalPoint", "CriticalPointResult", "LinearInit")
        expected = [f for f in fields if not (name in with_model and f == "model")]
        # then the numbers it computes from its fields (e.g. CriticalPoint.stable_dim)
        derived = list(type(record).DERIVED)
        assert list(out) == expected + derived, name
        for key in derived:
            assert out[key] == to_json(getattr(record, key)), (name, key)
    # nested records become dicts; arrays lists; NaN None
    inv = records["AdjacencyInvariants"].as_dict()
    assert inv["conservation"] == records["ConservationDrift"].as_dict() or isinstance(
        inv["conservation"], dict
    )
    timeline = records["SaddleTimeline"].as_dict()
    assert np.shape(timeline["mode_strengths"]) == records["SaddleTimeline"].mode_strengths.shape
    assert records["AlignedPrediction"].as_dict()["t_align"] is None  # NaN: not learned yet
    assert records["Slope"].as_dict()["n"] == 3


def test_to_json_conversions():
    value = {
        "a": np.float64(1.5),
        "b": np.int32(3),
        "c": jnp.array([1.0, jnp.nan]),
        "d": (np.bool_(True), float("inf")),
        1: None,
    }
    assert to_json(value) == {"a": 1.5, "b": 3, "c": [1.0, None], "d": [True, None], "1": None}
    with pytest.raises(TypeError):
        to_json(object())
