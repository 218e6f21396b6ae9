"""The geometry mechanism: a geometry is a map (gradient, masses) → velocity.

Euclidean: θ' = −∇F. Wasserstein: θ_j' = −∇_{θ_j}F / m_j. With a single uniform mass m the
Wasserstein flow is the Euclidean flow run m⁻¹ times faster: θ_W(t) = θ_E(t/m) — an exact
relation between two solves that the tests check.
"""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest

import gradflow as gf
from gradflow._problem import trainable_masses
from gradflow.geometry import ConditionalWasserstein, Euclidean, Wasserstein, as_geometry
from gradflow.models import AbstractModel, masses_like
from gradflow.models._base import DimsFromIO


class Particles(DimsFromIO, AbstractModel):
    """f(x) = (1/M) Σ_j a_j tanh(w_j · x): M particles θ_j = (a_j, w_j), each of mass 1/M."""

    a: jax.Array  # (M, d_out)
    w: jax.Array  # (M, d_in)

    def __call__(self, x):
        return jnp.tanh(x @ self.w.T) @ self.a / self.a.shape[0]

    def masses(self):
        return masses_like(self, 1.0 / self.a.shape[0])

    @property
    def io_dims(self):
        return self.w.shape[1], self.a.shape[1]


class TwoMasses(Particles):
    """The same network with a different mass on each leaf (a: 1/M, w: 1/(2M))."""

    def masses(self):
        m = self.a.shape[0]
        return masses_like(self, 1.0, a=1.0 / m, w=0.5 / m)


class LayeredParticles(Particles):
    layered: ClassVar[bool] = True


class NoMasses(Particles):
    def masses(self):
        return None


M = 4


def _model(cls=Particles):
    ka, kw = jax.random.split(jax.random.PRNGKey(3))
    return cls(jax.random.normal(ka, (M, 2)), jax.random.normal(kw, (M, 3)))


def _data():
    return gf.data.linear_teacher(jax.random.PRNGKey(1), 3, 2, 12, [1.0, 0.5])


def _grads(model, data):
    params, static = eqx.partition(model, model.trainable())
    f = lambda p: gf.losses.HalfMSE().risk(eqx.combine(p, static), data)
    return jax.grad(f)(params)


def test_euclidean_velocity_is_minus_gradient():
    model, data = _model(), _data()
    g = _grads(model, data)
    masses = trainable_masses(model)
    v = Euclidean().velocity(g, masses)
    for vi, gi in zip(jtu.tree_leaves(v), jtu.tree_leaves(g), strict=True):
        np.testing.assert_array_equal(vi, -gi)
    for m in jtu.tree_leaves(Euclidean().metric_masses(masses)):
        assert float(m) == 1.0


@pytest.mark.parametrize("cls", [Particles, TwoMasses])
def test_wasserstein_velocity_is_gradient_over_mass(cls):
    model, data = _model(cls), _data()
    g = _grads(model, data)
    masses = trainable_masses(model)
    expected_mass = {"a": 1 / M, "w": (1 / M) if cls is Particles else 0.5 / M}
    assert float(masses.a) == expected_mass["a"] and float(masses.w) == expected_mass["w"]
    v = Wasserstein().velocity(g, masses)
    np.testing.assert_allclose(v.a, -g.a / expected_mass["a"], rtol=1e-15)
    np.testing.assert_allclose(v.w, -g.w / expected_mass["w"], rtol=1e-15)
    # ConditionalWasserstein uses the same formula (its difference is which models it accepts).
    vc = ConditionalWasserstein().velocity(g, masses)
    np.testing.assert_array_equal(vc.a, v.a)
    np.testing.assert_array_equal(vc.w, v.w)


def test_models_without_masses_get_unit_masses():
    model = gf.models.DeepLinear([2, 3, 2], jax.random.PRNGKey(0), 0.5)
    assert model.masses() is None
    for m in jtu.tree_leaves(trainable_masses(model)):
        assert float(m) == 1.0


def test_wasserstein_flow_is_time_rescaled_euclidean_flow():
    """Uniform mass m = 1/M: θ_W(t) = θ_E(M t), and |∇F|_W² = M |∇F|²."""
    model, data = _model(), _data()
    ts = np.linspace(0.0, 0.5, 6)
    tw = gf.flow(model, data, 0.5, geometry="wasserstein", saveat=ts, rtol=1e-10, atol=1e-12)
    te = gf.flow(model, data, 0.5 * M, geometry="euclidean", saveat=ts * M, rtol=1e-10, atol=1e-12)
    for a, b in zip(jtu.tree_leaves(tw.params), jtu.tree_leaves(te.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(tw.loss, te.loss, rtol=1e-8)
    np.testing.assert_allclose(tw.grad_norm**2, M * te.grad_norm**2, rtol=1e-7)
    assert tw.info["geometry"] == "wasserstein"
    # The trajectory's metric masses are the model's masses (1/M), and 1 for Euclidean.
    assert all(float(m) == 1 / M for m in jtu.tree_leaves(tw.masses))
    assert all(float(m) == 1.0 for m in jtu.tree_leaves(te.masses))


def test_conditional_wasserstein_descent_is_rescaled_euclidean_descent():
    """GD in the conditional-Wasserstein geometry with step η is Euclidean GD with step Mη."""
    model, data = _model(LayeredParticles), _data()
    tc = gf.descent(model, data, 20, 0.01, geometry="conditional_wasserstein", save_every=5)
    te = gf.descent(model, data, 20, 0.01 * M, geometry="euclidean", save_every=5)
    for a, b in zip(jtu.tree_leaves(tc.params), jtu.tree_leaves(te.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tc.ts * M, te.ts, rtol=1e-15)


@pytest.mark.parametrize(
    "cls,geometry",
    [
        (NoMasses, "wasserstein"),
        (NoMasses, "conditional_wasserstein"),
        (Particles, "conditional_wasserstein"),  # masses but no layer coordinate
        (LayeredParticles, "wasserstein"),  # layered: its layer coordinate is not a parameter
    ],
)
def test_geometry_rejects_models_it_does_not_apply_to(cls, geometry):
    model, data = _model(cls), _data()
    with pytest.raises(gf.ConfigError) as e:
        gf.flow(model, data, 1.0, geometry=geometry)
    assert e.value.field == "geometry"
    with pytest.raises(gf.ConfigError) as e:
        gf.descent(model, data, 3, 0.1, geometry=geometry)
    assert e.value.field == "geometry"


def test_deep_linear_has_no_masses_so_only_euclidean():
    model = gf.models.DeepLinear([3, 3, 2], jax.random.PRNGKey(0), 0.5)
    for geometry in ("wasserstein", "conditional_wasserstein"):
        with pytest.raises(gf.ConfigError) as e:
            gf.flow(model, _data(), 1.0, geometry=geometry)
        assert e.value.field == "geometry" and "euclidean" in str(e.value)


def test_as_geometry():
    assert isinstance(as_geometry("euclidean"), Euclidean)
    assert isinstance(as_geometry("wasserstein"), Wasserstein)
    assert isinstance(as_geometry("conditional_wasserstein"), ConditionalWasserstein)
    g = Wasserstein()
    assert as_geometry(g) is g
    for bad in ("riemannian", None, 3):
        with pytest.raises(gf.ConfigError) as e:
            as_geometry(bad)
        assert e.value.field == "geometry"
