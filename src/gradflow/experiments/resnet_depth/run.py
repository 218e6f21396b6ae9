"""`resnet-depth`: for each depth L, networks from three inits flowed together (one vmapped
solve); their smoothness in depth, distance to the neural-ODE limit and, for the continuous inits,
the L² distance in depth to a much deeper reference flowed from the same init."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import jax
import numpy as np
import pandas as pd

import gradflow as gf
from gradflow.experiments import Result, checks, register
from gradflow.experiments import resnet_common as common

from .config import DepthConfig
from .figures import DepthFigures, depth_figures

if TYPE_CHECKING:  # the runner's context; `gradflow.runs` imports this package
    from gradflow.runs import RunContext

dg = gf.diagnostics


class _Networks:
    """The data and the networks of a config: every depth and init from one model key, so that
    networks of different depths discretise the same continuous init."""

    def __init__(self, config: DepthConfig):
        key_data, self.key = jax.random.split(jax.random.PRNGKey(config.seed))
        self.config = config
        self.data = common.user_data(
            config,
            max_dim=config.dim,
            default=lambda: gf.data.gaussian(key_data, config.n, config.dim, config.dim),
        )

    def __call__(self, depth: int, init: str) -> gf.models.ResNet:
        c = self.config
        return gf.models.ResNet(
            self.data.in_dim,
            c.dim,
            c.width,
            depth,
            self.data.out_dim,
            key=self.key,
            activation=c.activation,
            init=init,
            length_scale=c.length_scale,
        )


def _flow(config, context, models, data, ts, label, checkpoint=None, on_piece=None):
    """The flow of an ensemble on the save grid `ts`, in pieces that bound its memory."""
    depth = models.member(0).depth
    piece = common.memory_piece(config.saves, depth, models.size, data.n, config.dim, config.width)
    folder = context.checkpoint(checkpoint) if checkpoint else None
    with context.task(label, total=config.saves // piece) as advance:
        return gf.flow_in_pieces(
            models,
            data,
            ts,
            piece=piece,
            checkpoint=folder,
            on_piece=on_piece,
            progress=common.piece_progress(advance),
            geometry=common.GEOMETRY,
            rtol=config.rtol,
            atol=config.atol,
            loss=config.loss,
        )


def _depth_rows(config, context, networks, depth, ts):
    """One row per init for depth L, the trained weights of the reference inits (for the
    distance to the reference), and the ensemble's trajectory."""
    data, inits = networks.data, list(config.inits)
    models = [networks(depth, init) for init in inits]
    ensemble = gf.Ensemble.stack(models)
    gaps0 = dg.ode_gaps(ensemble, data.x)
    traj = _flow(config, context, ensemble, data, ts, f"  L={depth}: flow", f"depth-{depth}")
    gaps = dg.ode_gaps(traj.at(len(traj) - 1), data.x)
    rows, kept = [], {}
    for e, init in enumerate(inits):
        member = traj.member(e)
        along = dg.depth_smoothness(member)
        rows.append(
            {
                "init": init,
                "depth": depth,
                "smoothness_init": dg.depth_smoothness(models[e]).max_diff,
                "smoothness_trained": along.max_diff,
                "smoothness_final": dg.depth_smoothness(member.final).max_diff,
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
            kept[init] = {k: np.asarray(v) for k, v in member.models.layer_weights().items()}
    return rows, kept, traj


def _reference_distances(config, context, networks, depths, ts, kept) -> dict:
    """{init: (depths × saves) distances} in depth between each depth-L network and a reference
    of depth reference_factor × max L flowed from the same continuous init. The reference's
    states are measured piece by piece and not kept (it is the largest network); for that
    reason it is not checkpointed: what a piece measured is not in its checkpoint."""
    ref_depth = config.reference_factor * depths[-1]
    ref_inits = list(config.reference_inits)
    distances = {init: np.zeros((len(depths), len(ts))) for init in ref_inits}
    if not ref_inits:
        return distances
    done = [0]

    def measure(piece):
        weights = piece.models.layer_weights()
        for i in range(len(piece)):
            j = done[0] + i
            if i == 0 and j > 0:
                continue  # the start of a piece repeats the end of the previous one
            for e, init in enumerate(ref_inits):
                ref = {k: np.asarray(v[e, i]) for k, v in weights.items()}
                for a, depth in enumerate(depths):
                    net = {k: v[j] for k, v in kept[(init, depth)].items()}
                    distances[init][a, j] = dg.depth_distance(net, ref)
        done[0] += len(piece) - 1
        return piece.truncate(1)

    models = gf.Ensemble.stack([networks(ref_depth, init) for init in ref_inits])
    label = f"  reference L={ref_depth}: flow"
    _flow(config, context, models, networks.data, ts, label, on_piece=measure)
    return distances


def _slopes(frame, config, fit) -> dict:
    """{init: {quantity: log-log slope entry against L}} over the depths `fit`."""
    slopes = {}
    for init in config.inits:
        sub = frame[(frame.init == init) & frame.depth.isin(fit)].sort_values("depth")
        entry = {
            "smoothness_trained": gf.fits.loglog_summary(sub.depth, sub.smoothness_trained),
            "smoothness_init": gf.fits.loglog_summary(sub.depth, sub.smoothness_init),
            "ode_gap_trained": gf.fits.loglog_summary(sub.depth, sub.ode_gap_trained),
            "ode_gap_init": gf.fits.loglog_summary(sub.depth, sub.ode_gap_init),
            "aggregate_frobenius_trained": gf.fits.loglog_summary(sub.depth, sub.aggregate_trained),
        }
        if init in config.reference_inits:
            entry["distance_to_reference_final"] = gf.fits.loglog_summary(
                sub.depth, sub.distance_to_reference_final
            )
        slopes[init] = entry
    return slopes


def _acceptance(frame, slopes, inits) -> dict:
    """The theorem's predictions as flags: slopes −1 for tied and smooth, 0 for iid."""

    def near(init, key, target):
        slope = slopes.get(init, {}).get(key, {}).get("slope")
        return common.within(slope, target, 0.15)

    acceptance = {}
    for init in ("tied", "smooth"):
        if init in inits:
            acceptance[f"{init}_trained_smoothness_slope_within_-1±0.15"] = near(
                init, "smoothness_trained", -1
            )
            acceptance[f"{init}_trained_ode_gap_slope_within_-1±0.15"] = near(
                init, "ode_gap_trained", -1
            )
    if "smooth" in inits:
        acceptance["smooth_init_smoothness_slope_within_-1±0.15"] = near(
            "smooth", "smoothness_init", -1
        )
        acceptance["smooth_init_ode_gap_slope_within_-1±0.15"] = near("smooth", "ode_gap_init", -1)
    if "tied" in inits:
        acceptance["tied_init_differences_exactly_zero"] = bool(
            (frame[frame.init == "tied"].smoothness_init == 0).all()
        )
    if "iid" in inits:
        acceptance["iid_trained_smoothness_slope_within_0±0.15"] = near(
            "iid", "smoothness_trained", 0
        )
    return acceptance


def _flows(config, context, networks, depths, ts):
    """Every depth's rows, the weights kept for the reference, the distances and an example."""
    rows, kept, example = [], {}, None
    with context.task("resnet-depth: depths", total=len(depths) + 1) as advance:
        for depth in depths:
            start = time.perf_counter()
            new, weights, traj = _depth_rows(config, context, networks, depth, ts)
            rows += new
            kept.update({(init, depth): w for init, w in weights.items()})
            if depth == 64 or (example is None and depth == depths[-1]):
                example = traj.member(0)
            context.log(
                f"resnet-depth L={depth}: "
                + ", ".join(
                    f"{r['init']} max|ΔZ|={r['smoothness_trained']:.3g} "
                    f"gap={r['ode_gap_trained']:.3g}"
                    for r in new
                )
                + f" ({time.perf_counter() - start:.1f}s)"
            )
            advance()
        distances = _reference_distances(config, context, networks, depths, ts, kept)
        advance()
    return pd.DataFrame(rows), distances, example


NOTES = (
    "Each network is flowed (adaptive Tsit5, conditional-Wasserstein geometry = the paper's "
    "flow with time scaled by L) on [0, T]; the flow rather than gradient descent because the "
    "theorems are about the flow, and its error-controlled steps (≈10 here) are independent "
    "of L, where the paper's GD (lr = L·1e-2, 500 steps) differs from the flow by O(lr/L) "
    "(checked: relative difference ~1e-3 in the weights at T). Theory (Thm. 4): for tied and "
    "smooth inits max_{k, t≤T} |Z_{k+1} − Z_k| ≤ K/L (slope −1) and the network is within "
    "O(1/L) of its neural-ODE limit (slope −1); iid layers have O(1) differences (slope 0). "
    "Beware: the aggregate Frobenius norm over layers (the official script's quantity) "
    "scales as L^{-1/2}. " + common.UNITS
)


def _summary(config, frame, slopes, depths, fit, ts, distances) -> dict:
    ref_depth = config.reference_factor * depths[-1]
    return {
        "loss": config.loss,
        "geometry": common.GEOMETRY,
        "risk": checks.risk_text(
            config.loss,
            "F = (1/2n) Σ|f − y|² = ℓ/2 (ℓ the paper's risk)",
            "ℓ = 2F, F the {loss} risk (gf.losses)",
        ),
        "horizon_t": config.horizon,
        "paper_equivalent": f"{config.horizon * 50:g} GD steps at lr = L·1e-2 on ℓ",
        "depths": depths,
        "fit_depths": fit,
        "reference_depth": ref_depth,
        "slopes": slopes,
        "acceptance": _acceptance(frame, slopes, config.inits),
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
            for init in config.inits
        },
        "distance_to_reference_vs_t": {
            "t": ts.tolist(),
            **{
                init: {str(d): distances[init][a].tolist() for a, d in enumerate(depths)}
                for init in config.reference_inits
            },
        },
    }


@register(
    "resnet-depth",
    "ResNet weights stay smooth in depth (max_k |Z_{k+1} − Z_k| ~ 1/L) and approach the neural "
    "ODE at rate 1/L, for tied and smooth inits, not iid (Marion et al. 2024, Fig. 1)",
    DepthConfig,
)
def run_depth(config: DepthConfig, context: RunContext) -> Result:
    networks = _Networks(config)
    depths = sorted(config.depths)
    ts = np.linspace(0.0, config.horizon, config.saves + 1)
    frame, distances, example = _flows(config, context, networks, depths, ts)
    for init in config.reference_inits:
        for a, depth in enumerate(depths):
            sel = (frame.init == init) & (frame.depth == depth)
            frame.loc[sel, "distance_to_reference_final"] = distances[init][a, -1]
            frame.loc[sel, "distance_to_reference_max_t"] = distances[init][a].max()
    fit = [d for d in depths if d >= config.fit_min_depth]
    slopes = _slopes(frame, config, fit)
    summary = _summary(config, frame, slopes, depths, fit, ts, distances)
    record = DepthFigures(
        frame, slopes, tuple(config.inits), tuple(config.reference_inits), tuple(depths), ts,
        distances, tuple(fit), example, summary["reference_depth"],
    )  # fmt: skip
    return Result.with_figures(
        depth_figures(record), summary=summary, metrics=frame, trajectory=example, notes=NOTES
    )
