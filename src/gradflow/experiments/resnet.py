"""ResNets and their neural-ODE limit (Marion, Wu, Sander, Biau, "Implicit regularization of deep
residual networks towards neural ODEs", ICLR 2024; MODELS.md §2).

Experiments: `resnet-depth` (smoothness in depth and distance to the ODE limit against L),
`resnet-long` (long training to an interpolating minimum, weights smooth in depth at all times),
`resnet-relu` (the ReLU counter-example), `resnet-pl` (width against sample size: convergence and
the PL ratio), `resnet-digits` (activation × init on scikit-learn's digits).

Units. gradflow's risk is F = (1/2n) Σ|f(x_i) − y_i|² = ℓ/2 with ℓ the paper's risk, and the
residual weights are flowed in the `conditional_wasserstein` geometry (mass 1/L per layer), i.e.
Z_k' = −L ∂F/∂Z_k: the paper's flow Z_k' = −L ∂ℓ/∂Z_k run at half speed. So gradflow time t is
twice the paper's flow time, and the paper's gradient descent with step lr on ℓ (residual
weights, Euclidean) for N steps reaches gradflow time t = 2 · N · lr / L.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pandas as pd

from .. import diagnostics as dg
from .._trajectory import Trajectory
from .._validation import check
from ..data import Dataset, digit_labels, digits, gaussian
from ..models.resnet import ACTIVATIONS, INITS, ResNet
from ..runs import RunContext
from ..solvers import OPTIMIZERS, SOLVERS, Ensemble, descent, flow
from ._base import Result, register
from ._checks import count, items, number, open_interval
from ._config import ExperimentConfig, param

GEOMETRY = "conditional_wasserstein"
UNITS = (
    "Units: F = ℓ/2 (ℓ = (1/n)Σ|f − y|², the paper's risk); time t is the conditional-Wasserstein "
    "flow time of F (residual weights Z_k' = −L ∂F/∂Z_k), twice the paper's flow time; the "
    "paper's GD with step lr on ℓ for N steps reaches t = 2·N·lr/L."
)


# ---------------------------------------------------------------------------------------------
# helpers shared by the experiments


def stack(models) -> Ensemble:
    """An `Ensemble` of networks with the same shapes (one compiled, vmapped solve for all)."""
    return Ensemble(jtu.tree_map(lambda *a: jnp.stack(a), *models), len(models))


def concat(trajs: list[Trajectory]) -> Trajectory:
    """Trajectories of consecutive solves joined in time (each starts where the last ended: the
    repeated first point of every later piece is dropped)."""
    first = trajs[0]
    axis = 0 if first.ensemble_size is None else 1

    def cat(arrays, ax):
        pieces = [arrays[0]] + [
            jnp.take(a, jnp.arange(1, a.shape[ax]), axis=ax) for a in arrays[1:]
        ]
        return jnp.concatenate(pieces, axis=ax)

    params = jtu.tree_map(lambda *a: cat(a, axis), *[t.params for t in trajs])
    stats = {}
    for key in first.stats:
        values = [t.stats[key] for t in trajs]
        if isinstance(values[0], bool):
            stats[key] = all(values)
        else:
            stats[key] = np.sum(np.asarray(values), axis=0).tolist()
    info = {**trajs[-1].info, "t0": first.info.get("t0"), "pieces": len(trajs)}
    return Trajectory(
        cat([t.ts for t in trajs], 0),
        params,
        first.static,
        cat([t.loss for t in trajs], first.loss.ndim - 1),
        cat([t.grad_norm for t in trajs], first.loss.ndim - 1),
        first.masses,
        stats,
        info,
    )


def flow_saved(model, data, ts, chunk: int, advance=None, on_piece=None, **kwargs) -> Trajectory:
    """`gf.flow` from ts[0] saving at every time of `ts`, in consecutive solves of `chunk` save
    intervals each (each piece saves its start again, so all pieces have one shape and share one
    compiled solve). Splitting bounds the memory of the saved states and of the metrics computed
    at them. `on_piece(traj)` is called after each piece (and may drop what it no longer needs);
    `advance()` reports progress."""
    ts = np.asarray(ts, dtype=float)
    n = len(ts) - 1
    check(n % chunk == 0, "chunk", chunk, f"a divisor of the number of save intervals {n}")
    pieces = []
    for j in range(0, n, chunk):
        piece = flow(
            model,
            data,
            float(ts[j + chunk]),
            t0=float(ts[j]),
            saveat=ts[j : j + chunk + 1],
            **kwargs,
        )
        model = (
            Ensemble(piece.at(len(piece) - 1), model.size)
            if isinstance(model, Ensemble)
            else piece.final
        )
        if on_piece is not None:
            piece = on_piece(piece)
        pieces.append(piece)
        if advance is not None:
            advance()
    return concat(pieces)


def memory_chunk(
    saves: int, layers: int, members: int, n: int, dim: int, width: int, budget: float = 2.5e9
) -> int:
    """The largest divisor of `saves` whose saved states and their metrics (≈ 8 bytes ×
    n(3q + 2m) per layer, member and save, for the backward pass) fit in `budget` bytes."""
    per_save = 8.0 * layers * members * n * (3 * dim + 2 * width)
    limit = max(1, int(budget // per_save))
    return max(d for d in range(1, saves + 1) if saves % d == 0 and d <= limit)


def slope_entry(xs, ys) -> dict:
    """{'slope', 'stderr', 'points'} of a log-log fit, or a reason when it cannot be fitted."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    keep = (ys > 0) & np.isfinite(ys)
    if keep.sum() < 2:
        return {
            "slope": None,
            "stderr": None,
            "points": int(keep.sum()),
            "reason": "fewer than two positive values (e.g. exactly zero differences)",
        }
    fit = dg.loglog_slope(xs[keep], ys[keep])
    return {"slope": fit.slope, "stderr": fit.stderr, "points": fit.n}


def within(value, target, tol) -> bool:
    return value is not None and bool(abs(value - target) <= tol)


def _flow_bytes(depth, members, n, dim, width, saves, per_solve=None) -> float:
    """Rough peak memory of a (vmapped) ResNet flow: the states saved by one solve and their
    metrics (`memory_chunk`'s 8·n(3q + 2m) per layer, member and save, bounded by its budget
    unless one save exceeds it), all saved parameters, and the solver's stages."""
    per_save = 8.0 * depth * members * n * (3 * dim + 2 * width)
    in_solve = per_save * (per_solve if per_solve is not None else saves)
    params = 8.0 * depth * members * 2 * width * dim
    return max(per_save, min(in_solve, 2.5e9)) + (saves + 13) * params


def _inits():
    return INITS


def _activations():
    return list(ACTIVATIONS)


def _solvers():
    return list(SOLVERS)


def _optimizers():
    return list(OPTIMIZERS)


def _figure(ncols=1, nrows=1, width=5.2, height=4.0):
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)


INIT_COLORS = {"tied": "tab:blue", "smooth": "tab:green", "iid": "tab:red"}


# ---------------------------------------------------------------------------------------------
# resnet-depth


@dataclasses.dataclass(frozen=True)
class DepthConfig(ExperimentConfig):
    """The paper's Fig. 1 setting, for three initialisations (`gradflow describe resnet-depth`)."""

    QUICK = dict(depths=(4, 8, 16), saves=2, fit_min_depth=4)
    TINY = dict(n=8, dim=4, width=8, depths=(2, 4), saves=2, reference_factor=2, fit_min_depth=2)

    n: int = param(100, "number of samples x_i, y_i ~ N(0, I_dim)", check=count(), size=True)
    dim: int = param(16, "data and state dimension d = q = d'", check=count(), size=True)
    width: int = param(32, "width m of the residual layers", check=count(), size=True)
    depths: tuple[int, ...] = param(
        (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        "the depths L swept (at least two, distinct)",
        check=items(count(), min_length=2, distinct=True, what="positive integers"),
        size=True,
    )
    inits: tuple[str, ...] = param(
        ("tied", "smooth", "iid"), "initialisations compared", choices=_inits
    )
    activation: str = param("gelu", "activation of the residual layers", choices=_activations)
    length_scale: float = param(
        0.2, "ℓ of the smooth init's squared-exponential kernel in depth", check=number()
    )
    horizon: float = param(
        10.0,
        "training time T (gradflow units; 10 = the paper's 500 GD steps at lr = L·1e-2)",
        check=number(),
    )
    saves: int = param(10, "number of equal save intervals on [0, T]", check=count(), size=True)
    reference_factor: int = param(
        8,
        "the reference depth (the depth limit) is this times max(depths)",
        check=count(),
        size=True,
    )
    reference_inits: tuple[str, ...] = param(
        ("tied", "smooth"),
        "the inits whose distance to the reference is measured (a subset of inits)",
        choices=_inits,
    )
    fit_min_depth: int = param(8, "slopes are fitted on depths ≥ this", check=count())
    rtol: float = param(1e-6, "relative tolerance of the flow", check=number())
    atol: float = param(1e-8, "absolute tolerance of the flow", check=number())

    def validate(self) -> None:
        super().validate()
        self.require(
            all(i in self.inits for i in self.reference_inits),
            {
                "reference_inits": f"a subset of inits {list(self.inits)}",
                "inits": f"a list including the reference_inits {list(self.reference_inits)}",
            },
        )

    def estimated_bytes(self) -> float:
        ref = self.reference_factor * max(self.depths)
        sizes = (self.n, self.dim, self.width, self.saves)
        kept = sum(8.0 * d * 2 * self.width * self.dim * (self.saves + 1) for d in self.depths)
        return kept * len(self.inits) + max(
            _flow_bytes(max(self.depths), len(self.inits), *sizes),
            _flow_bytes(ref, len(self.reference_inits), *sizes),
        )


@register(
    "resnet-depth",
    "ResNet weights stay smooth in depth (max_k |Z_{k+1} − Z_k| ~ 1/L) and approach the neural "
    "ODE at rate 1/L, for tied and smooth inits, not iid (Marion et al. 2024, Fig. 1)",
    DepthConfig,
)
def run_depth(config: DepthConfig, progress: RunContext) -> Result:
    key_data, key_model = jax.random.split(jax.random.PRNGKey(config.seed))
    data = gaussian(key_data, config.n, config.dim, config.dim)
    depths = sorted(config.depths)
    ts = np.linspace(0.0, config.horizon, config.saves + 1)
    inits = list(config.inits)
    solve = dict(geometry=GEOMETRY, rtol=config.rtol, atol=config.atol)

    def network(depth, init):
        return ResNet(
            config.dim,
            config.dim,
            config.width,
            depth,
            config.dim,
            key=key_model,
            activation=config.activation,
            init=init,
            length_scale=config.length_scale,
        )

    rows = []
    kept = {}  # (init, depth) -> weights at the saved times, for the distance to the reference
    example = None
    with progress.task("resnet-depth: depths", total=len(depths) + 1) as advance_depth:
        for depth in depths:
            start = time.perf_counter()
            models = [network(depth, init) for init in inits]
            ens = stack(models)
            gaps0 = dg.ode_gaps(ens, data.x)
            chunk = memory_chunk(
                config.saves, depth, len(inits), config.n, config.dim, config.width
            )
            with progress.task(f"  L={depth}: flow", total=config.saves // chunk) as advance:
                traj = flow_saved(ens, data, ts, chunk, advance, **solve)
            gaps = dg.ode_gaps(traj.at(len(traj) - 1), data.x)
            for e, init in enumerate(inits):
                member = traj.member(e)
                at0 = dg.depth_smoothness(models[e])
                along = dg.depth_smoothness(member)
                final = dg.depth_smoothness(member.final)
                rows.append(
                    {
                        "init": init,
                        "depth": depth,
                        "smoothness_init": at0.max_diff,
                        "smoothness_trained": along.max_diff,
                        "smoothness_final": final.max_diff,
                        "smoothness_trained_scaled": along.scaled,
                        "aggregate_trained": along.aggregate,
                        "ode_gap_init": float(gaps0[e]),
                        "ode_gap_trained": float(gaps[e]),
                        "loss_init": float(member.loss[0]),
                        "loss_final": float(member.loss[-1]),
                        "solver_steps": int(np.asarray(traj.stats["num_steps"])[e]),
                    }
                )
                if init in config.reference_inits:
                    kept[(init, depth)] = {
                        k: np.asarray(v) for k, v in member.models.layer_weights().items()
                    }
            if depth == 64 or (example is None and depth == depths[-1]):
                example = traj.member(0)
            progress.log(
                f"resnet-depth L={depth}: "
                + ", ".join(
                    f"{r['init']} max|ΔZ|={r['smoothness_trained']:.3g} gap={r['ode_gap_trained']:.3g}"
                    for r in rows[-len(inits) :]
                )
                + f" ({time.perf_counter() - start:.1f}s)"
            )
            advance_depth()

        # the reference: depth factor × max L, flowed from the same continuous inits
        ref_depth = config.reference_factor * depths[-1]
        ref_inits = list(config.reference_inits)
        distances = {init: np.zeros((len(depths), len(ts))) for init in ref_inits}
        if ref_inits:
            ref_models = stack([network(ref_depth, init) for init in ref_inits])
            chunk = memory_chunk(
                config.saves, ref_depth, len(ref_inits), config.n, config.dim, config.width
            )
            done = [0]

            def measure(piece):
                for i in range(len(piece)):
                    j = done[0] + i
                    if i == 0 and j > 0:
                        continue  # the start of a piece repeats the end of the previous one
                    for e, init in enumerate(ref_inits):
                        ref = {
                            k: np.asarray(v[e, i]) for k, v in piece.models.layer_weights().items()
                        }
                        for a, depth in enumerate(depths):
                            net = {k: v[j] for k, v in kept[(init, depth)].items()}
                            distances[init][a, j] = dg.depth_distance(net, ref)
                done[0] += len(piece) - 1
                return piece.truncate(1)  # the reference's states are not kept

            with progress.task(
                f"  reference L={ref_depth}: flow", total=config.saves // chunk
            ) as advance:
                flow_saved(ref_models, data, ts, chunk, advance, on_piece=measure, **solve)
        advance_depth()

    frame = pd.DataFrame(rows)
    for init in ref_inits:
        for a, depth in enumerate(depths):
            sel = (frame.init == init) & (frame.depth == depth)
            frame.loc[sel, "distance_to_reference_final"] = distances[init][a, -1]
            frame.loc[sel, "distance_to_reference_max_t"] = distances[init][a].max()

    # slopes
    fit = [d for d in depths if d >= config.fit_min_depth]
    slopes = {}
    for init in inits:
        sub = frame[(frame.init == init) & frame.depth.isin(fit)].sort_values("depth")
        entry = {
            "smoothness_trained": slope_entry(sub.depth, sub.smoothness_trained),
            "smoothness_init": slope_entry(sub.depth, sub.smoothness_init),
            "ode_gap_trained": slope_entry(sub.depth, sub.ode_gap_trained),
            "ode_gap_init": slope_entry(sub.depth, sub.ode_gap_init),
            "aggregate_frobenius_trained": slope_entry(sub.depth, sub.aggregate_trained),
        }
        if init in ref_inits:
            entry["distance_to_reference_final"] = slope_entry(
                sub.depth, sub.distance_to_reference_final
            )
        slopes[init] = entry

    def s(init, key):
        return slopes.get(init, {}).get(key, {}).get("slope")

    acceptance = {}
    for init in ("tied", "smooth"):
        if init in inits:
            acceptance[f"{init}_trained_smoothness_slope_within_-1±0.15"] = within(
                s(init, "smoothness_trained"), -1, 0.15
            )
            acceptance[f"{init}_trained_ode_gap_slope_within_-1±0.15"] = within(
                s(init, "ode_gap_trained"), -1, 0.15
            )
    if "smooth" in inits:
        acceptance["smooth_init_smoothness_slope_within_-1±0.15"] = within(
            s("smooth", "smoothness_init"), -1, 0.15
        )
        acceptance["smooth_init_ode_gap_slope_within_-1±0.15"] = within(
            s("smooth", "ode_gap_init"), -1, 0.15
        )
    if "tied" in inits:
        acceptance["tied_init_differences_exactly_zero"] = bool(
            (frame[frame.init == "tied"].smoothness_init == 0).all()
        )
    if "iid" in inits:
        acceptance["iid_trained_smoothness_slope_within_0±0.15"] = within(
            s("iid", "smoothness_trained"), 0, 0.15
        )

    summary = {
        "geometry": GEOMETRY,
        "risk": "F = (1/2n) Σ|f − y|² = ℓ/2 (ℓ the paper's risk)",
        "horizon_t": config.horizon,
        "paper_equivalent": f"{config.horizon * 50:g} GD steps at lr = L·1e-2 on ℓ",
        "depths": depths,
        "fit_depths": fit,
        "reference_depth": ref_depth,
        "slopes": slopes,
        "acceptance": acceptance,
        "aggregate_frobenius_note": (
            "(Σ_k |Z_{k+1} − Z_k|²)^{1/2} over all layers scales like L^{-1/2} (L terms of size "
            "K/L), not like the theorem's max_k |Z_{k+1} − Z_k| ~ L^{-1}: see "
            "slopes.*.aggregate_frobenius_trained"
        ),
        "per_depth": {
            init: {
                col: frame[frame.init == init].sort_values("depth")[col].tolist()
                for col in frame.columns
                if col not in ("init",)
            }
            for init in inits
        },
        "distance_to_reference_vs_t": {
            "t": ts.tolist(),
            **{
                init: {str(d): distances[init][a].tolist() for a, d in enumerate(depths)}
                for init in ref_inits
            },
        },
    }
    figures, captions = _depth_figures(
        frame, slopes, inits, ref_inits, depths, ts, distances, fit, example, ref_depth
    )
    notes = (
        "Each network is flowed (adaptive Tsit5, conditional-Wasserstein geometry = the paper's "
        "flow with time scaled by L) on [0, T]; the flow rather than gradient descent because the "
        "theorems are about the flow, and its error-controlled steps (≈10 here) are independent "
        "of L, where the paper's GD (lr = L·1e-2, 500 steps) differs from the flow by O(lr/L) "
        "(checked: relative difference ~1e-3 in the weights at T). Theory (Thm. 4): for tied and "
        "smooth inits max_{k, t≤T} |Z_{k+1} − Z_k| ≤ K/L (slope −1) and the network is within "
        "O(1/L) of its neural-ODE limit (slope −1); iid layers have O(1) differences (slope 0). "
        "Beware: the aggregate Frobenius norm over layers (the official script's quantity) "
        "scales as L^{-1/2}. " + UNITS
    )
    return Result(
        summary=summary,
        metrics=frame,
        trajectory=example,
        figures=figures,
        captions=captions,
        notes=notes,
    )


def _depth_figures(frame, slopes, inits, ref_inits, depths, ts, distances, fit, example, ref_depth):
    import matplotlib.colors as mcolors

    figures, captions = {}, {}
    fig, axes = _figure(2)
    for init in inits:
        sub = frame[frame.init == init].sort_values("depth")
        c = INIT_COLORS.get(init)
        sl = slopes[init]["smoothness_trained"]["slope"]
        axes[0, 0].loglog(
            sub.depth,
            sub.smoothness_trained,
            "o-",
            color=c,
            label=f"{init}, trained (slope {sl:.2f})" if sl is not None else init,
        )
        if (sub.smoothness_init > 0).all():
            sl0 = slopes[init]["smoothness_init"]["slope"]
            axes[0, 0].loglog(
                sub.depth,
                sub.smoothness_init,
                "o--",
                mfc="none",
                color=c,
                label=f"{init}, init (slope {sl0:.2f})",
            )
        sla = slopes[init]["aggregate_frobenius_trained"]["slope"]
        axes[0, 1].loglog(
            sub.depth,
            sub.aggregate_trained,
            "s-",
            color=c,
            label=f"{init} (slope {sla:.2f})" if sla is not None else init,
        )
    d = np.asarray(depths, float)
    for ax, p, name in ((axes[0, 0], -1, "L^{-1}"), (axes[0, 1], -0.5, "L^{-1/2}")):
        y = frame[frame.init == inits[0]].sort_values("depth")
        y0 = y.smoothness_trained.iloc[0] if p == -1 else y.aggregate_trained.iloc[0]
        if y0 > 0:
            ax.loglog(d, y0 * (d / d[0]) ** p, "k:", lw=1, label=f"${name}$")
        ax.set_xlabel("depth L")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].set_ylabel(r"$\max_{k,\,t\leq T} |Z_{k+1}-Z_k|$")
    axes[0, 0].set_title("smoothness in depth (the theorem's quantity)")
    axes[0, 1].set_ylabel(r"$\max_t (\sum_k |Z_{k+1}-Z_k|_F^2)^{1/2}$")
    axes[0, 1].set_title("aggregate Frobenius norm (not the theorem's)")
    figures["smoothness"] = fig
    captions["smoothness"] = (
        "Left: max over layers and times of |Z_{k+1} − Z_k| (|V|_F + |W|_F) against depth, after "
        "training (filled) and at init (hollow; tied starts at exactly 0): slope −1 for tied and "
        f"smooth, 0 for iid (fit on L ≥ {fit[0]}). Right: the aggregate Frobenius norm over "
        "layers decays only like L^{-1/2}."
    )

    fig, axes = _figure(1)
    ax = axes[0, 0]
    for init in inits:
        sub = frame[frame.init == init].sort_values("depth")
        c = INIT_COLORS.get(init)
        sl = slopes[init]["ode_gap_trained"]["slope"]
        ax.loglog(
            sub.depth,
            sub.ode_gap_trained,
            "o-",
            color=c,
            label=f"{init}, trained (slope {sl:.2f})" if sl is not None else init,
        )
        if (sub.ode_gap_init > 0).all():
            sl0 = slopes[init]["ode_gap_init"]["slope"]
            ax.loglog(
                sub.depth,
                sub.ode_gap_init,
                "o--",
                mfc="none",
                color=c,
                label=f"{init}, init (slope {sl0:.2f})",
            )
    ax.set_xlabel("depth L")
    ax.set_ylabel(r"$\max_i |f_L(x_i) - f_{ODE}(x_i)|$")
    ax.set_title("distance to the neural-ODE limit")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    figures["ode_gap"] = fig
    captions["ode_gap"] = (
        "Largest output difference over the training inputs between the depth-L network and the "
        "neural ODE with linearly interpolated weights (diffrax, rtol = atol = 1e-10), at T "
        "(filled) and at init (hollow; tied starts as h' = 0, gap 0): slope −1 for smooth weights."
    )

    if ref_inits:
        fig, axes = _figure(len(ref_inits) + 1, width=5.6)
        for e, init in enumerate(ref_inits):
            ax = axes[0, e]
            dist = distances[init]
            positive = dist[dist > 0]
            vmin = positive.min() if positive.size else 1e-12
            mesh = ax.pcolormesh(
                ts,
                np.arange(len(depths)),
                np.maximum(dist, vmin),
                norm=mcolors.LogNorm(vmin=vmin, vmax=dist.max()),
                shading="nearest",
                cmap="viridis",
            )
            ax.set_yticks(np.arange(len(depths)), [str(x) for x in depths])
            ax.set_xlabel("training time t")
            ax.set_ylabel("depth L")
            ax.set_title(f"{init}: distance to depth {ref_depth}", fontsize=10)
            fig.colorbar(mesh, ax=ax)
            sub = frame[frame.init == init].sort_values("depth")
            sl = slopes[init]["distance_to_reference_final"]["slope"]
            axes[0, -1].loglog(
                sub.depth,
                sub.distance_to_reference_final,
                "o-",
                color=INIT_COLORS.get(init),
                label=f"{init} at T (slope {sl:.2f})" if sl is not None else init,
            )
        axes[0, -1].set_xlabel("depth L")
        axes[0, -1].set_ylabel(r"$(\int_0^1 |Z^L(s)-Z^{ref}(s)|^2 ds)^{1/2}$ at T")
        axes[0, -1].grid(True, which="both", alpha=0.3)
        axes[0, -1].legend(fontsize=8)
        figures["distance_to_reference"] = fig
        captions["distance_to_reference"] = (
            f"L² distance in depth between the weights of the depth-L network and of a depth-"
            f"{ref_depth} reference flowed from the same continuous init, against L and t "
            "(heat maps, log colour) and at T against L: it shrinks like 1/L at every time."
        )

    if example is not None:
        fig, axes = _figure(2)
        weights = example.models.layer_weights()
        depth = weights["V"].shape[1]
        s = np.arange(1, depth + 1) / depth
        cmap = _time_cmap()
        for i in range(len(example)):
            color = cmap(i / max(1, len(example) - 1))
            for a, b in ((0, 0), (1, 2), (3, 1)):
                axes[0, 0].plot(s, weights["V"][i, :, a, b], color=color, lw=1)
                axes[0, 1].plot(
                    s, weights["W"][i, :, b, a] - weights["W"][0, :, b, a], color=color, lw=1
                )
        axes[0, 0].set_title(
            f"tied init, L = {depth}: entries of V_k (lighter = later)", fontsize=10
        )
        axes[0, 1].set_title("entries of W_k − W_k(0)", fontsize=10)
        for ax in axes[0]:
            ax.set_xlabel("layer s = k/L")
        figures["weights_in_depth"] = fig
        captions["weights_in_depth"] = (
            f"Three entries of V_k and of W_k − W_k(0) against k/L for the tied init at depth {depth}, at the "
            "saved times (dark = t 0, light = T): smooth functions of depth at all times."
        )
    return figures, captions


def _time_cmap():
    import matplotlib.pyplot as plt

    base = plt.get_cmap("viridis")
    return lambda x: base(0.05 + 0.9 * x)


# ---------------------------------------------------------------------------------------------
# resnet-long


@dataclasses.dataclass(frozen=True)
class LongConfig(ExperimentConfig):
    """The paper's Fig. 2 setting: one network flowed until its (paper's) risk ℓ = 2F is below
    `target_risk`, or until `t_max` (`gradflow describe resnet-long`)."""

    # Quick: still inside Thm. 6's regime (m ≥ n, L ≳ √(nq)): n = 10, m = 32, L = 32. (L = 8
    # with n = 50 is not, and stalls near ℓ ~ 6e-4.)
    QUICK = dict(n=10, width=32, depth=32, target_risk=1e-4, t_max=2000.0, saves=40, piece=8)
    TINY = dict(n=4, dim=4, width=8, depth=4, target_risk=1e-2, t_max=50.0, saves=8, piece=4)

    n: int = param(50, "number of samples x, y ~ N(0, I_dim)", check=count(), size=True)
    dim: int = param(16, "data and state dimension", check=count(), size=True)
    width: int = param(64, "width m of the residual layers", check=count(), size=True)
    depth: int = param(64, "number of residual layers L", check=count(), size=True)
    init: str = param("tied", "initialisation of the residual weights", choices=_inits)
    activation: str = param("gelu", "activation of the residual layers", choices=_activations)
    length_scale: float = param(0.2, "ℓ of the smooth init's kernel in depth", check=number())
    target_risk: float = param(
        1e-7, "stop where the paper's risk ℓ = 2F crosses this", check=number()
    )
    t_first: float = param(1.0, "first saved time after t = 0 (log grid)", check=number())
    t_max: float = param(20000.0, "last saved time, the horizon (> t_first)", check=number())
    saves: int = param(
        160, "number of log-spaced saves in [t_first, t_max]", check=count(), size=True
    )
    piece: int = param(16, "saves per solve (a divisor of saves)", check=count(), size=True)
    solver: str = param("rkc", "the flow's solver ('rkc': the tail is stiff)", choices=_solvers)
    rtol: float = param(1e-6, "relative tolerance of the flow", check=number())
    atol: float = param(1e-10, "absolute tolerance of the flow", check=number())
    paper_lr: float = param(
        0.32, "the paper's GD step on ℓ, to express times as GD steps", check=number()
    )

    def validate(self) -> None:
        super().validate()
        self.require(
            self.t_max > self.t_first,
            {
                "t_max": f"a time > t_first = {self.t_first:g}",
                "t_first": f"a time < t_max = {self.t_max:g}",
            },
        )
        self.require(
            self.saves % self.piece == 0,
            {
                "piece": f"a divisor of saves = {self.saves}",
                "saves": f"a multiple of piece = {self.piece}",
            },
        )

    def estimated_bytes(self) -> float:
        return _flow_bytes(
            self.depth, 1, self.n, self.dim, self.width, self.saves, per_solve=self.piece
        )


def flow_until(model, data, config, progress, label, **kwargs):
    """`gf.flow` in the conditional-Wasserstein geometry with `config`'s solver, rtol and atol,
    saving at t = 0 and `config.saves` log-spaced times in [t_first, t_max], piece by piece
    (`config.piece` saves each: progress, and bounded memory), stopping where the risk ℓ = 2F
    crosses `config.target_risk` (`stop_below`, the crossing root-found on the dense output):
    the last saved point is the state there. `kwargs` go to `gf.flow`. Returns the joined
    `Trajectory`."""
    ts = np.concatenate([[0.0], np.geomspace(config.t_first, config.t_max, config.saves)])
    piece = config.piece
    pieces = []
    n = len(ts) - 1
    with progress.task(label, total=n // piece) as advance:
        for j in range(0, n, piece):
            p = flow(
                model,
                data,
                float(ts[j + piece]),
                t0=float(ts[j]),
                saveat=ts[j : j + piece + 1],
                stop_below=config.target_risk / 2,
                geometry=GEOMETRY,
                solver=config.solver,
                rtol=config.rtol,
                atol=config.atol,
                **kwargs,
            )
            pieces.append(p)
            model = p.final
            advance()
            if p.info["stopped_at"] is not None:
                break
    return concat(pieces)


def tail_rate(traj) -> float | None:
    """The rate r of ℓ ≈ c e^{−r t} fitted over the last half of a trajectory's time span."""
    t, risk = np.asarray(traj.ts), 2 * np.asarray(traj.loss)
    tail = t >= t[-1] / 2
    return dg.exponential_rate(t[tail], risk[tail]) if tail.sum() >= 2 else None


def long_problem(config: LongConfig) -> tuple[ResNet, Dataset]:
    """The `resnet-long` network and data of `config` (data x, y ~ N(0, I_dim))."""
    key_data, key_model = jax.random.split(jax.random.PRNGKey(config.seed))
    data = gaussian(key_data, config.n, config.dim, config.dim)
    model = ResNet(
        config.dim,
        config.dim,
        config.width,
        config.depth,
        config.dim,
        key=key_model,
        activation=config.activation,
        init=config.init,
        length_scale=config.length_scale,
    )
    return model, data


@register(
    "resnet-long",
    "A deep ResNet (L = 64, m = 64, n = 50) flowed to risk 1e-7: exponential convergence, PL "
    "ratio, weights smooth in depth at all times (Marion et al. 2024, Fig. 2)",
    LongConfig,
)
def run_long(config: LongConfig, progress: RunContext) -> Result:
    model, data = long_problem(config)
    start = time.perf_counter()
    traj = flow_until(model, data, config, progress, "resnet-long: flow")
    wall = time.perf_counter() - start
    risk = 2 * np.asarray(traj.loss)
    t = np.asarray(traj.ts)
    t_hit = traj.info["stopped_at"]  # the time ℓ crossed the target (None: not within t_max)
    pl = dg.pl_ratio(traj)
    rate = tail_rate(traj)
    smooth = dg.depth_smoothness(traj)
    gap = dg.ode_gap(traj.final, data.x)
    steps = int(np.sum(traj.stats["num_steps"]))
    evals = int(np.sum(traj.stats["function_evaluations"]))
    gd_steps = lambda time_: time_ * config.depth / (2 * config.paper_lr)
    summary = {
        "geometry": GEOMETRY,
        "risk": "ℓ = (1/n)Σ|f − y|² = 2F (the paper's)",
        "target_risk": config.target_risk,
        "reached_target": t_hit is not None,
        "time_to_target": t_hit,
        "final_time": float(t[-1]),
        "final_risk": float(risk[-1]),
        "initial_risk": float(risk[0]),
        "exponential_rate_tail": rate,
        "pl_ratio_min": pl.min,
        "pl_ratio_min_time": pl.t_min,
        "pl_ratio_final": float(pl.ratio[-1]) if np.isfinite(pl.ratio[-1]) else None,
        "pl_ratio_note": "|∇F|_G²/F with the conditional-Wasserstein metric; the paper's μ (for "
        "ℓ) is twice this",
        "smoothness_max_over_t": smooth.max_diff,
        "smoothness_max_over_t_scaled_by_L": smooth.scaled,
        "ode_gap_final": gap,
        "solver": config.solver,
        "solver_steps": steps,
        "function_evaluations": evals,
        "function_evaluations_exact": bool(traj.stats["function_evaluations_exact"]),
        "paper_gd_steps_equivalent_to_time_to_target": gd_steps(t_hit) if t_hit else None,
        "paper_gd_steps_equivalent_to_final_time": gd_steps(float(t[-1])),
        "flow_wall_time_s": wall,
    }
    figures, captions = _long_figures(traj, risk, pl, config, rate)
    notes = (
        "The flow (conditional-Wasserstein geometry) rather than GD: the theory is about the "
        "flow. The exponential tail is stiff: near the minimum L·∇²F has eigenvalues up to ρ ≈ 8 "
        "while the risk decays at rate ~1e-3, so an explicit fifth-order method (Tsit5) is "
        "pinned at its stability limit h ≈ 3.5/ρ ≈ 0.4 (≈120k gradient evaluations to ℓ = 1e-7). "
        "The default solver is Runge–Kutta–Chebyshev ('rkc', second order, stable on [−0.65 s², "
        "0] with s stages; a gradient flow's Jacobian has a real spectrum), whose steps grow with "
        "the accuracy the tail allows: ~11k evaluations. The paper's GD step is 2·lr/L = 0.01 "
        "time units (see benchmarks/resnet.py). Theory (Thm. 6): "
        "with m ≳ n and L ≳ √(nq) a local PL inequality holds, the risk decays exponentially and "
        "the weights stay a discretisation of a smooth function of depth for all times. " + UNITS
    )
    return Result(summary=summary, trajectory=traj, figures=figures, captions=captions, notes=notes)


def _long_figures(traj, risk, pl, config, rate):
    figures, captions = {}, {}
    t = np.asarray(traj.ts)
    fig, axes = _figure(2)
    ax = axes[0, 0]
    ax.semilogy(t, risk, "-", color="tab:blue", label="risk ℓ = 2F")
    ax.axhline(config.target_risk, color="k", ls=":", lw=1, label=f"target {config.target_risk:g}")
    if rate is not None:
        tail = t >= t[-1] / 2
        c = np.polyfit(t[tail], np.log(risk[tail]), 1)
        ax.semilogy(
            t[tail],
            np.exp(np.polyval(c, t[tail])),
            "--",
            color="tab:orange",
            label=f"fit e^(−{rate:.3g} t)",
        )
    ax.set_xlabel("time t")
    ax.set_ylabel("risk")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(
        f"L = {config.depth}, m = {config.width}, n = {config.n}, {config.init} init", fontsize=10
    )
    ax = axes[0, 1]
    ax.semilogx(t[1:], pl.ratio[1:], color="tab:green")
    ax.axhline(pl.min, color="k", ls=":", lw=1, label=f"min {pl.min:.3g}")
    ax.set_xlabel("time t")
    ax.set_ylabel(r"PL ratio $|\nabla F|_G^2 / F$")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    figures["risk"] = fig
    captions["risk"] = (
        "Left: the risk along the flow (semilog): exponential decay after a transient. Right: the "
        "PL ratio |∇F|²/F in the flow's metric, bounded away from zero along the trajectory."
    )

    weights = traj.models.layer_weights()
    depth = weights["V"].shape[1]
    s = np.arange(1, depth + 1) / depth
    idx = np.unique(np.linspace(0, len(traj) - 1, 8).round().astype(int))
    cmap = _time_cmap()
    fig, axes = _figure(2, 2, height=3.4)
    entries = ((0, 0), (2, 5), (7, 3), (11, 1))
    for p, (a, b) in enumerate(entries):
        ax = axes[p // 2, p % 2]
        leaf, (i, j) = ("V", (a, b)) if p < 2 else ("W", (b, a))
        for c, k in enumerate(idx):
            series = weights[leaf][k, :, i, j]
            if leaf == "W":
                series = series - weights["W"][0, :, i, j]
            ax.plot(
                s,
                series,
                color=cmap(c / max(1, len(idx) - 1)),
                lw=1.2,
                label=f"t = {t[k]:.3g}" if p == 0 else None,
            )
        ax.set_title(
            f"{leaf}[{i},{j}]" + (" − W(0)" if leaf == "W" else "") + " against k/L", fontsize=10
        )
        if p // 2 == 1:  # bottom row only: a top-row label would run into the titles below
            ax.set_xlabel("layer s = k/L")
    axes[0, 0].legend(fontsize=7)
    figures["weights_in_depth"] = fig
    captions["weights_in_depth"] = (
        "Four weight entries against the layer index at a sequence of times (lighter = later): "
        "smooth functions of depth at all times, converging as the risk vanishes."
    )
    return figures, captions


# ---------------------------------------------------------------------------------------------
# resnet-relu


@dataclasses.dataclass(frozen=True)
class ReluConfig(ExperimentConfig):
    """The ReLU counter-example: a scalar ResNet h_{k+1} = h_k + (1/(2L)) σ(w_{k+1} h_k) of depth
    2L (d = q = m = 1, V_k = 1 fixed), one sample (x, Cx), w_k(0) = (−1)^k/(2L)."""

    QUICK = dict(halves=(2, 8), horizon=30.0)
    TINY = dict(halves=(1, 2), horizon=5.0, activations=("relu",))

    halves: tuple[int, ...] = param(
        (2, 4, 8, 16, 32, 64, 128),
        "the values of L (the network has 2L layers; at least two)",
        check=items(count(), min_length=2, what="positive integers"),
        size=True,
    )
    C: float = param(2.0, "the target's factor (y = Cx), > 1", check=number(1.0))
    x: float = param(1.0, "the sample's input x > 0", check=number())
    horizon: float = param(40.0, "the flow time", check=number())
    activations: tuple[str, ...] = param(
        ("relu", "gelu"),
        "ReLU (the counter-example) and, for contrast, smooth ones",
        choices=_activations,
    )
    rtol: float = param(1e-10, "relative tolerance of the flow", check=number())
    atol: float = param(1e-12, "absolute tolerance of the flow", check=number())

    def estimated_bytes(self) -> float:
        return 8.0 * 2 * max(self.halves) * (41 + 13) * len(self.activations)


def relu_fixed_point(half: int, C: float) -> float:
    """w* with (1 + w*/(2L))^L = C: the common limit of the even layers (odd layers are dead)."""
    return 2 * half * (C ** (1.0 / half) - 1.0)


def relu_network(half: int, activation: str = "relu") -> ResNet:
    """The counter-example's network of depth 2L with w_k(0) = (−1)^k/(2L), V_k = 1 fixed."""
    k = np.arange(1, 2 * half + 1)
    w = ((-1.0) ** k / (2 * half)).reshape(-1, 1, 1)
    return ResNet.from_weights(np.ones_like(w), w, activation=activation, frozen=("V",))


@register(
    "resnet-relu",
    "The ReLU counter-example: trained successive differences stay Ω(1) (→ w* + 1/(2L)), not "
    "O(1/L) as with a smooth activation",
    ReluConfig,
)
def run_relu(config: ReluConfig, progress: RunContext) -> Result:
    data = Dataset(jnp.array([[config.x]]), jnp.array([[config.C * config.x]]))
    rows, finals = [], {}
    with progress.task("resnet-relu", total=len(config.halves) * len(config.activations)) as adv:
        for activation in config.activations:
            for half in config.halves:
                model = relu_network(half, activation)
                traj = flow(
                    model,
                    data,
                    config.horizon,
                    geometry=GEOMETRY,
                    rtol=config.rtol,
                    atol=config.atol,
                    saveat=np.linspace(0, config.horizon, 41),
                )
                w = np.asarray(traj.final.W).reshape(-1)
                diffs = np.abs(np.diff(w))
                predicted = relu_fixed_point(half, config.C) + 1 / (2 * half)
                rows.append(
                    {
                        "activation": activation,
                        "half_depth": half,
                        "depth": 2 * half,
                        "max_diff": float(diffs.max()),
                        "min_diff": float(diffs.min()),
                        "predicted_relu_diff": predicted,
                        "w_star": relu_fixed_point(half, config.C),
                        "max_rel_error_vs_prediction": float(np.max(np.abs(diffs / predicted - 1))),
                        "final_risk": float(2 * traj.loss[-1]),
                        "odd_layers_moved": float(np.max(np.abs(w[0::2] + 1 / (2 * half)))),
                    }
                )
                finals[(activation, half)] = w
                adv()
    frame = pd.DataFrame(rows)
    summary = {
        "geometry": GEOMETRY,
        "C": config.C,
        "x": config.x,
        "horizon": config.horizon,
        "risk": "ℓ = (f(x) − Cx)² = 2F",
    }
    for activation in config.activations:
        sub = frame[frame.activation == activation].sort_values("half_depth")
        summary[activation] = {
            "half_depths": sub.half_depth.tolist(),
            "max_diff": sub.max_diff.tolist(),
            "min_diff": sub.min_diff.tolist(),
            "final_risk": sub.final_risk.tolist(),
            "max_diff_slope": slope_entry(sub.depth, sub.max_diff),
        }
    if "relu" in config.activations:
        sub = frame[frame.activation == "relu"].sort_values("half_depth")
        summary["relu"].update(
            {
                "w_star": sub.w_star.tolist(),
                "predicted_diff_w_star_plus_1_over_2L": sub.predicted_relu_diff.tolist(),
                "max_rel_error_vs_prediction": sub.max_rel_error_vs_prediction.tolist(),
                "odd_layers_max_displacement": sub.odd_layers_moved.tolist(),
                "w_star_limit_2_log_C": 2 * float(np.log(config.C)),
            }
        )
        summary["acceptance"] = {
            "relu_differences_within_5%_of_w*+1/(2L)_for_every_L": bool(
                (sub.max_rel_error_vs_prediction <= 0.05).all()
            )
        }
    figures, captions = _relu_figures(frame, finals, config)
    notes = (
        "Odd layers start at w = −1/(2L) < 0 with h > 0, so σ(w h) = 0 for ReLU: they are dead, "
        "their gradient is exactly zero and they never move; the L even layers all converge to "
        "w* with (1 + w*/(2L))^L = C (w* → 2 log C), so successive differences tend to "
        "w* + 1/(2L) = Ω(1) and the network does not approach a neural ODE. With GELU (C², the "
        "theory's assumption) every layer moves by nearly the same amount and the differences "
        "stay O(1/L). Flowed in the conditional-Wasserstein geometry (the limit is the same in "
        "either geometry; only the time scale differs)."
    )
    return Result(summary=summary, metrics=frame, figures=figures, captions=captions, notes=notes)


def _relu_figures(frame, finals, config):
    figures, captions = {}, {}
    acts = list(config.activations)
    fig, axes = _figure(len(acts))
    cmap = _time_cmap()
    for a, activation in enumerate(acts):
        ax = axes[0, a]
        for i, half in enumerate(config.halves):
            w = finals[(activation, half)]
            k = np.arange(1, len(w) + 1)
            ax.plot(
                k / len(w),
                w,
                ".-",
                lw=0.8,
                ms=3,
                color=cmap(i / max(1, len(config.halves) - 1)),
                label=f"2L = {2 * half}",
            )
        ax.set_xlabel("layer k/(2L)")
        ax.set_ylabel("trained $w_k$")
        ax.set_title(f"{activation}: trained weights", fontsize=10)
        ax.legend(fontsize=7)
    figures["weights"] = fig
    captions["weights"] = (
        "Trained weights against the layer: with ReLU they alternate between −1/(2L) (dead odd "
        "layers) and w* (even layers), for every depth; with GELU they form a smooth profile."
    )
    fig, axes = _figure(1)
    ax = axes[0, 0]
    for activation in acts:
        sub = frame[frame.activation == activation].sort_values("depth")
        ax.loglog(sub.depth, sub.max_diff, "o-", label=f"{activation}: max_k |w_(k+1) − w_k|")
    if "relu" in acts:
        sub = frame[frame.activation == "relu"].sort_values("depth")
        ax.loglog(sub.depth, sub.predicted_relu_diff, "k:", label="w* + 1/(2L) (closed form)")
    ax.set_xlabel("depth 2L")
    ax.set_ylabel("largest successive difference after training")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    figures["differences"] = fig
    captions["differences"] = (
        "Largest successive difference of the trained weights against depth: Ω(1) for ReLU, "
        "matching w* + 1/(2L) with (1 + w*/(2L))^L = C; decaying like 1/L for GELU."
    )
    return figures, captions


# ---------------------------------------------------------------------------------------------
# resnet-pl


@dataclasses.dataclass(frozen=True)
class PLConfig(ExperimentConfig):
    """Width against sample size: does the flow reach an interpolating minimum, with the PL ratio
    bounded away from zero? (`gradflow describe resnet-pl`)"""

    QUICK = dict(n=12, depth=8, widths=(3, 48), target_risk=1e-6, t_max=500.0, saves=16, piece=8)
    TINY = dict(n=4, dim=4, depth=4, widths=(2, 8), target_risk=1e-3, t_max=50.0, saves=8, piece=4)

    n: int = param(50, "number of samples x, y ~ N(0, I_dim)", check=count(), size=True)
    dim: int = param(16, "data and state dimension", check=count(), size=True)
    depth: int = param(32, "number of residual layers L (tied init)", check=count(), size=True)
    widths: tuple[int, ...] = param(
        (8, 16, 32, 64, 128, 256),
        "the widths m swept (m/n is the overparameterisation)",
        check=items(count(), what="positive integers"),
        size=True,
    )
    activation: str = param("gelu", "activation of the residual layers", choices=_activations)
    target_risk: float = param(
        1e-8, "ℓ = 2F below which a run counts as converged (it stops there)", check=number()
    )
    t_first: float = param(1.0, "first saved time after t = 0 (log grid)", check=number())
    t_max: float = param(20000.0, "the horizon (> t_first)", check=number())
    saves: int = param(
        64, "number of log-spaced saves in [t_first, t_max]", check=count(), size=True
    )
    piece: int = param(8, "saves per solve (a divisor of saves)", check=count(), size=True)
    pl_floor: float = param(
        1e-4, "a run keeps PL when its minimum PL ratio along the path exceeds this", check=number()
    )
    solver: str = param("rkc", "the flow's solver ('rkc': the tails are stiff)", choices=_solvers)
    rtol: float = param(1e-6, "relative tolerance of the flow", check=number())
    atol: float = param(1e-10, "absolute tolerance of the flow", check=number())

    def validate(self) -> None:
        super().validate()
        self.require(
            self.t_max > self.t_first,
            {
                "t_max": f"a time > t_first = {self.t_first:g}",
                "t_first": f"a time < t_max = {self.t_max:g}",
            },
        )
        self.require(
            self.saves % self.piece == 0,
            {
                "piece": f"a divisor of saves = {self.saves}",
                "saves": f"a multiple of piece = {self.piece}",
            },
        )

    def estimated_bytes(self) -> float:
        m = max(self.widths)
        kernel = 8.0 * self.n * self.dim * (self.depth * 2 * m * self.dim + 2 * self.dim**2)
        sizes = (self.n, self.dim, m, self.saves)
        return kernel + _flow_bytes(self.depth, 1, *sizes, per_solve=self.piece)


@register(
    "resnet-pl",
    "Width m against n: the PL constant valid for every target at init (tangent kernel) is 0 "
    "for m < n and positive for m ≥ n; each width's flow to risk 1e-8 with its PL ratio "
    "(Marion et al. 2024, Prop. 5 / Thm. 6)",
    PLConfig,
)
def run_pl(config: PLConfig, progress: RunContext) -> Result:
    key_data, key_model = jax.random.split(jax.random.PRNGKey(config.seed))
    data = gaussian(key_data, config.n, config.dim, config.dim)
    rows, trajs = [], {}
    with progress.task("resnet-pl: widths", total=len(config.widths)) as advance:
        for width in sorted(config.widths):
            model = ResNet(
                config.dim,
                config.dim,
                width,
                config.depth,
                config.dim,
                key=key_model,
                activation=config.activation,
                init="tied",
            )
            traj = flow_until(model, data, config, progress, f"  m={width}: flow")
            risk = 2 * np.asarray(traj.loss)
            pl = dg.pl_ratio(traj)
            kernel = dg.tangent_kernel_pl(model, data, GEOMETRY)  # the worst case at init
            t_hit = traj.info["stopped_at"]  # ℓ crossed the target (None: not within t_max)
            rows.append(
                {
                    "width": width,
                    "m_over_n": width / config.n,
                    "final_risk": float(risk[-1]),
                    "final_time": float(traj.ts[-1]),
                    "final_rate": tail_rate(traj),  # ℓ ≈ c e^{−rate·t}, last half of the run
                    "reached_target": t_hit is not None,
                    "time_to_target": t_hit,
                    "pl_ratio_min": pl.min,
                    "pl_ratio_min_time": pl.t_min,
                    "pl_ratio_final": float(pl.ratio[-1]),
                    "keeps_pl": bool(pl.min > config.pl_floor),
                    "kernel_pl_bound_init": kernel.bound,
                    "kernel_rank_init": kernel.rank,
                    "kernel_size": kernel.size,
                    "solver_steps": int(np.sum(traj.stats["num_steps"])),
                }
            )
            trajs[width] = traj
            progress.log(
                f"resnet-pl m={width}: risk {risk[-1]:.3g} at t={float(traj.ts[-1]):.3g}"
                f", min PL ratio {pl.min:.3g}"
            )
            advance()
    frame = pd.DataFrame(rows)
    separation = _pl_separation(frame, config)
    good = frame[frame.reached_target & frame.keeps_pl]
    summary = {
        "geometry": GEOMETRY,
        "risk": "ℓ = (1/n)Σ|f − y|² = 2F (the paper's)",
        "n": config.n,
        "depth": config.depth,
        "target_risk": config.target_risk,
        "t_max": config.t_max,
        "pl_floor": config.pl_floor,
        "per_width": {col: frame[col].tolist() for col in frame.columns},
        "separation": separation,
        "separation_note": (
            "Two separations. (1) Worst case at init (Prop. 5's mechanism): at the tied init "
            "(V = 0, W_k = W) the tangent kernel in the flow's metric is K_G = (1/m) ΦΦᵀ ⊗ I "
            "with features Φ_i = σ(W x_i/√q) ∈ R^m, so (2/n) λ_min(K_G), the PL constant valid "
            "for every target, is positive iff the n×m feature matrix has rank n, i.e. m ≥ n. "
            "(2) Along the flow on these targets: converging = ℓ below target within t_max with "
            "the PL ratio |∇F|_G²/F > pl_floor all the way; the actual residual need not lie in "
            "the kernel's null space, and W moves, so narrow networks may converge too"
        ),
        "acceptance": {
            "some_width_reaches_target_with_pl_bounded_away_from_zero": bool(len(good)),
        },
    }
    figures, captions = _pl_figures(frame, trajs, config, separation["statement"])
    notes = (
        f"Each width is flowed (adaptive '{config.solver}', conditional-Wasserstein geometry) from the tied "
        "init until ℓ < target or t_max. Prop. 5/Thm. 6: with m ≳ n (and L ≳ √(nq)) a local PL "
        "inequality |∇ℓ|² ≥ μ ℓ holds along the flow and the risk decays exponentially to 0; "
        "the PL ratio reported is |∇F|_G²/F (μ = 2× this for ℓ). " + UNITS
    )
    return Result(summary=summary, metrics=frame, figures=figures, captions=captions, notes=notes)


def _pl_separation(frame, config) -> dict:
    """Which m/n separate (1) a singular from a positive-definite tangent kernel at init and
    (2) converging from stalling flows; with a sentence saying it."""
    m_n = lambda sub: sorted(float(v) for v in sub.m_over_n)
    full = frame.kernel_rank_init == frame.kernel_size
    converging = frame.reached_target & frame.keeps_pl
    kernel = {
        "m_over_n_full_rank": m_n(frame[full]),
        "m_over_n_singular": m_n(frame[~full]),
    }
    flow = {
        "m_over_n_converging": m_n(frame[converging]),
        "m_over_n_not_converging": m_n(frame[~converging]),
    }
    for entry, yes, no in ((kernel, full, ~full), (flow, converging, ~converging)):
        entry["monotone"] = bool(
            not (yes.any() and no.any()) or frame[no].m_over_n.max() < frame[yes].m_over_n.min()
        )
        entry["separating_m_over_n"] = (
            [float(frame[no].m_over_n.max()), float(frame[yes].m_over_n.min())]
            if yes.any() and no.any() and entry["monotone"]
            else None
        )
    words = []
    if kernel["separating_m_over_n"]:
        lo, hi = kernel["separating_m_over_n"]
        words.append(
            f"The worst-case PL constant at the tied init is 0 for m/n ≤ {lo:.3g} and positive "
            f"for m/n ≥ {hi:.3g} (theory: the threshold is m/n = 1)."
        )
    else:
        words.append(
            "The worst-case PL constant at the tied init is "
            + ("positive" if full.all() else "0" if (~full).all() else "not monotone in m")
            + " for every width swept."
        )
    stops = "; ".join(
        f"m/n = {r.m_over_n:.3g}: ℓ = {r.final_risk:.3g} at t = {r.final_time:.4g}, "
        + (
            f"still decaying at rate {r.final_rate:.3g}"
            if r.final_rate is not None and r.final_rate > 0
            else "stalled"
        )
        + f", min PL ratio {r.pl_ratio_min:.3g}"
        for r in frame[~converging].itertuples()
    )
    if flow["separating_m_over_n"]:
        lo, hi = flow["separating_m_over_n"]
        words.append(
            f"Along the flow, ℓ < {config.target_risk:g} with the PL ratio > {config.pl_floor:g} "
            f"for m/n ≥ {hi:.3g} and not for m/n ≤ {lo:.3g} ({stops})."
        )
    elif converging.all():
        words.append(
            f"Along the flow every width reached ℓ < {config.target_risk:g} with the PL ratio > "
            f"{config.pl_floor:g}: on these data the flow does not need m ≥ n."
        )
    else:
        words.append(
            "Along the flow the converging widths are m/n ∈ "
            f"{flow['m_over_n_converging']} ({stops or 'none stopped'})."
        )
    return {"tangent_kernel_at_init": kernel, "flow": flow, "statement": " ".join(words)}


def _pl_figures(frame, trajs, config, separation_statement):
    from matplotlib.ticker import NullFormatter

    figures, captions = {}, {}
    fig, axes = _figure(2)
    cmap = _time_cmap()
    widths = sorted(trajs)
    for i, width in enumerate(widths):
        traj = trajs[width]
        color = cmap(i / max(1, len(widths) - 1))
        t = np.asarray(traj.ts)
        axes[0, 0].loglog(
            t[1:],
            2 * np.asarray(traj.loss)[1:],
            color=color,
            label=f"m = {width} (m/n = {width / config.n:.2g})",
        )
        axes[0, 1].loglog(t[1:], dg.pl_ratio(traj).ratio[1:], color=color)
    axes[0, 0].axhline(config.target_risk, color="k", ls=":", lw=1)
    axes[0, 0].set_ylabel("risk ℓ")
    axes[0, 1].set_ylabel(r"PL ratio $|\nabla F|_G^2/F$")
    for ax in axes[0]:
        ax.set_xlabel("time t")
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    figures["risk_and_pl"] = fig
    captions["risk_and_pl"] = (
        "Risk (left) and PL ratio |∇F|_G²/F (right) along the flow for each width (dotted: the "
        "target). A PL ratio bounded below by μ means ℓ ≤ ℓ(0) e^{−μt}."
    )
    fig, axes = _figure(2)
    # Runs stop where ℓ crosses the target, so the time to get there is what differs by width;
    # runs that did not get there are marked at t_max with their final risk.
    hit = frame[frame.reached_target]
    miss = frame[~frame.reached_target]
    axes[0, 0].loglog(hit.m_over_n, hit.time_to_target, "o-", label=f"ℓ = {config.target_risk:g}")
    axes[0, 0].loglog(
        miss.m_over_n, [config.t_max] * len(miss), "x", color="tab:red", ms=9, label="not by t_max"
    )
    for r in miss.itertuples():
        axes[0, 0].annotate(
            f"ℓ = {r.final_risk:.2g}", (r.m_over_n, config.t_max), fontsize=7, va="bottom"
        )
    axes[0, 0].set_ylabel("time to reach the target risk")
    axes[0, 1].loglog(frame.m_over_n, frame.pl_ratio_min, "o-", color="tab:green")
    positive = frame[frame.kernel_pl_bound_init > 0]
    axes[0, 1].loglog(
        positive.m_over_n,
        positive.kernel_pl_bound_init,
        "s--",
        color="tab:purple",
        label=r"worst case at init $(2/n)\lambda_{min}(K_G)$",
    )
    axes[0, 1].axhline(config.pl_floor, color="k", ls=":", lw=1, label="pl_floor")
    axes[0, 1].set_ylabel("PL ratio: minimum along the path")
    for ax in axes[0]:
        ax.axvline(1.0, color="tab:red", ls="--", lw=1, label="m = n")
        ax.set_xticks(list(frame.m_over_n), [f"{v:.3g}" for v in frame.m_over_n], fontsize=7)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("m / n")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    figures["width_sweep"] = fig
    captions["width_sweep"] = (
        "Time to reach the target risk (×: not reached by t_max, with the final risk) and minimum "
        "PL ratio along the path against the overparameterisation m/n "
        "(dashed: m = n); squares: the PL constant valid for every target at the tied init, "
        "(2/n) λ_min of the tangent kernel, shown where it is positive (it is 0 for m < n). "
        + separation_statement
    )
    return figures, captions


# ---------------------------------------------------------------------------------------------
# resnet-digits


@dataclasses.dataclass(frozen=True)
class DigitsConfig(ExperimentConfig):
    """The paper's CIFAR-10 table (activation × init) transposed to scikit-learn's digits
    (`gradflow describe resnet-digits`)."""

    QUICK = dict(depth=8, activations=("gelu", "relu"), steps=60)
    TINY = dict(input_dim=8, dim=16, width=8, depth=4, activations=("gelu",), steps=10)

    input_dim: int = param(
        16, "PCA dimension of the inputs (at most 64, the pixels)", check=count(1, 64)
    )
    dim: int = param(32, "state dimension q (≥ max(input_dim, 10))", check=count(), size=True)
    width: int = param(32, "width m of the residual layers", check=count(), size=True)
    depth: int = param(64, "number of residual layers L", check=count(), size=True)
    activations: tuple[str, ...] = param(
        ("identity", "gelu", "relu"), "the activations of the grid", choices=_activations
    )
    inits: tuple[str, ...] = param(("tied", "iid"), "the inits of the grid", choices=_inits)
    steps: int = param(300, "training steps of gf.descent", check=count(), size=True)
    lr: float = param(4.0, "the descent's step", check=number())
    optimizer: str = param(
        "momentum", "the descent's optimizer (heavy ball 0.9 by default)", choices=_optimizers
    )
    train_fraction: float = param(
        0.8, "fraction of the digits in the training set", check=open_interval(0.0, 1.0)
    )
    smooth_threshold: float = param(
        1.0,
        "trained weights are smooth in depth when L·max_k|Z_{k+1} − Z_k| / max_k|Z_k| ≤ this",
        check=number(),
    )

    def validate(self) -> None:
        super().validate()
        low = max(self.input_dim, 10)
        self.require(
            self.dim >= low,
            {"dim": f"≥ max(input_dim, 10) = {low}", "input_dim": f"≤ dim = {self.dim}"},
        )

    def estimated_bytes(self) -> float:
        n = 1797 * self.train_fraction
        members = len(self.inits)
        return _flow_bytes(self.depth, members, n, self.dim, self.width, 11, per_solve=2)


@register(
    "resnet-digits",
    "Activation × init on scikit-learn's digits (the paper's CIFAR table): accuracy, and whether "
    "the trained weights are smooth in depth (only smooth activation + tied init)",
    DigitsConfig,
)
def run_digits(config: DigitsConfig, progress: RunContext) -> Result:
    key_split, key_model = jax.random.split(jax.random.PRNGKey(config.seed))
    train, test = digits(dim=config.input_dim).split(config.train_fraction, key_split)
    rows = []
    with progress.task("resnet-digits: activations", total=len(config.activations)) as advance:
        for activation in config.activations:
            models = [
                ResNet(
                    config.input_dim,
                    config.dim,
                    config.width,
                    config.depth,
                    10,
                    key=key_model,
                    activation=activation,
                    init=init,
                )
                for init in config.inits
            ]
            traj = descent(
                stack(models),
                train,
                config.steps,
                config.lr,
                optimizer=config.optimizer,
                geometry=GEOMETRY,
                save_every=max(1, config.steps // 10),
            )
            for e, init in enumerate(config.inits):
                member = traj.member(e)
                final = member.final
                size = sum(
                    jnp.sqrt(jnp.sum(w**2, axis=(1, 2))) for w in final.layer_weights().values()
                )
                smooth = dg.depth_smoothness(final)
                lipschitz = smooth.scaled / float(jnp.max(size))
                rows.append(
                    {
                        "activation": activation,
                        "init": init,
                        "train_accuracy": _accuracy(final, train),
                        "test_accuracy": _accuracy(final, test),
                        "train_risk": float(2 * member.loss[-1]),
                        "smoothness": smooth.max_diff,
                        "smoothness_scaled": smooth.scaled,
                        "smoothness_init": dg.depth_smoothness(models[e]).max_diff,
                        "lipschitz_in_depth_relative": lipschitz,
                        "smooth_in_depth": bool(lipschitz <= config.smooth_threshold),
                    }
                )
            progress.log(
                f"resnet-digits {activation}: "
                + ", ".join(
                    f"{r['init']} train {r['train_accuracy']:.3f} test {r['test_accuracy']:.3f}"
                    for r in rows[-len(config.inits) :]
                )
            )
            advance()
    frame = pd.DataFrame(rows)
    table = {}
    for activation in config.activations:
        sub = frame[frame.activation == activation].set_index("init")
        entry = {init: sub.loc[init].drop("activation").to_dict() for init in config.inits}
        if "tied" in config.inits and "iid" in config.inits:
            entry["smoothness_ratio_tied_over_iid"] = float(
                sub.loc["tied", "smoothness"] / sub.loc["iid", "smoothness"]
            )
        table[activation] = entry
    summary = {
        "geometry": GEOMETRY,
        "data": f"sklearn digits, {train.n} train / {test.n} test, PCA to {config.input_dim} "
        "whitened components, one-hot targets, squared loss, argmax read-out",
        "depth": config.depth,
        "width": config.width,
        "dim": config.dim,
        "training": f"gf.descent, {config.optimizer}, lr = {config.lr:g} (conditional-"
        f"Wasserstein geometry), {config.steps} steps",
        "table": table,
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
    figures, captions = _digits_figures(frame, config)
    notes = (
        "Trained by heavy-ball gradient descent (gf.descent, conditional-Wasserstein geometry) "
        "for a fixed budget, one vmapped run of both inits per activation: like the paper's "
        "CIFAR training, the question is what practical training leaves in the weights, and the "
        "flow would need hundreds of time units here. The paper (CIFAR-10, depth 256) finds that only "
        "a smooth activation with the tied init gives trained weights smooth in depth, and that "
        "the iid init trains at least as well; here the same grid on the digits. " + UNITS
    )
    return Result(summary=summary, metrics=frame, figures=figures, captions=captions, notes=notes)


def _accuracy(model, data) -> float:
    pred = digit_labels(jax.jit(lambda m, x: m(x))(model, data.x))
    return float(jnp.mean(pred == digit_labels(data.y)))


def _digits_figures(frame, config):
    figures, captions = {}, {}
    fig, axes = _figure(2)
    labels = [f"{a}\n{i}" for a in config.activations for i in config.inits]
    x = np.arange(len(labels))
    rows = [
        frame[(frame.activation == a) & (frame.init == i)].iloc[0]
        for a in config.activations
        for i in config.inits
    ]
    axes[0, 0].bar(x - 0.2, [r.train_accuracy for r in rows], 0.4, label="train")
    axes[0, 0].bar(x + 0.2, [r.test_accuracy for r in rows], 0.4, label="test")
    axes[0, 0].set_xticks(x, labels, fontsize=8)
    axes[0, 0].set_ylim(0, 1)
    axes[0, 0].set_ylabel("accuracy")
    axes[0, 0].legend(fontsize=8)
    axes[0, 1].bar(x, [r.smoothness for r in rows], color=[INIT_COLORS.get(r.init) for r in rows])
    axes[0, 1].set_yscale("log")
    axes[0, 1].set_xticks(x, labels, fontsize=8)
    axes[0, 1].set_ylabel(r"trained $\max_k |Z_{k+1}-Z_k|$")
    figures["table"] = fig
    captions["table"] = (
        f"Digits, depth {config.depth}: train/test accuracy (left) and the largest successive "
        "difference of the trained weights (right, log) for each activation and init."
    )
    return figures, captions
