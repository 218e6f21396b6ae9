"""Mean-field ResNet experiments (MODELS.md §3, §4): `conditional-ot`, `lojasiewicz`,
`mean-field-limit`.

All three use a small smooth regression problem made here with an explicit key: x_i ~ N(0, I_d),
y_i = (1/√K) V tanh(W x_i + c) with a random teacher of K = 16 neurons (`teacher_data`), and a
`MeanFieldResNet` with fixed embedding [I; 0] and readout [0, I] (state dimension q = d + d' + 1,
so the readout coordinate starts at zero). Risks are gradflow's ½-normalised
F = (1/2n) Σ |f(x_i) − y_i|², flows are in the conditional-Wasserstein geometry
(θ_{k,j}' = −L·M ∂F/∂θ_{k,j}).

**One compilation for a whole sweep.** A measure with M particles per layer is the same measure
when every particle is repeated r times (masses 1/(L·M·r)), and the particle flow keeps the copies
together, so runs with different M are made with the same array shapes (M_max per layer) and share
one compiled solve; `tests/test_mean_field.py` checks this replication invariance.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .._errors import ConfigError, DivergenceError, SolverError
from .._validation import check
from ..data import Dataset
from ..diagnostics.lojasiewicz import energy_dissipation, lojasiewicz_fit
from ..diagnostics.paths import cumulative_path_length
from ..diagnostics.transport import conditional_wasserstein
from ..models.mean_field import MeanFieldResNet
from ..runs import RunContext
from ..solvers import SOLVERS, flow
from ._base import Result, register
from ._checks import count, items, number, open_interval
from ._config import ExperimentConfig, param


def _solvers():
    return list(SOLVERS)


# ---------------------------------------------------------------------------------------------
# shared pieces


def teacher_data(key, n: int, in_dim: int, out_dim: int, width: int = 16) -> Dataset:
    """x ~ N(0, I_d), y = (1/√K) V tanh(W x + c); V, W, c i.i.d. N(0, 1) entries (K = width)."""
    kx, kw, kv, kc = jax.random.split(key, 4)
    x = jax.random.normal(kx, (n, in_dim))
    w = jax.random.normal(kw, (width, in_dim))
    c = jax.random.normal(kc, (width,))
    v = jax.random.normal(kv, (out_dim, width))
    return Dataset(x, jnp.tanh(x @ w.T + c) @ v.T / np.sqrt(width))


def _mean_field_bytes(n, layers, particles, dim, saves) -> float:
    """Rough peak memory of a mean-field ResNet flow: the saved positions (u, w in R^q, b per
    particle), the solver's stages, and the n × L × M hidden activations of a gradient."""
    params = 8.0 * layers * particles * (2 * dim + 1)
    return (saves + 13) * params + 4 * 8.0 * n * layers * particles


def _state_dim(cfg) -> int:
    return cfg.in_dim + cfg.out_dim + 1


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _first_below(ts, values, level):
    idx = np.nonzero(np.asarray(values) < level)[0]
    return float(np.asarray(ts)[idx[0]]) if idx.size else None


# ---------------------------------------------------------------------------------------------
# conditional-ot


@dataclasses.dataclass(frozen=True)
class ConditionalOTConfig(ExperimentConfig):
    """Features (particles per layer) × initial scale sweep of the conditional-OT flow."""

    QUICK = dict(particles=(1, 16), t1=3000.0, max_steps=10_000)
    TINY = dict(n=6, layers=2, particles=(1, 2), init_scales=(0.5,), t1=20.0)

    n: int = param(12, "number of samples of the teacher data", check=count(), size=True)
    in_dim: int = param(2, "input dimension d", check=count(), size=True)
    out_dim: int = param(1, "output dimension d'", check=count(), size=True)
    layers: int = param(4, "number of layers L of the mean-field ResNet", check=count(), size=True)
    particles: tuple[int, ...] = param(
        (1, 2, 4, 8, 16, 32, 64),
        "the particles per layer M swept",
        check=items(count(), what="positive integers"),
        size=True,
    )
    init_scales: tuple[float, ...] = param(
        (0.5, 8.0),
        "spreads s of the Gaussian initial measure swept",
        check=items(number(), what="positive numbers"),
    )
    t1: float = param(3000.0, "the horizon of every flow", check=number())
    threshold: float = param(
        1e-8, "a run converged when its final risk is below this", check=open_interval(0.0, 1.0)
    )
    rtol: float = param(1e-8, "relative tolerance of the flow", check=number())
    atol: float = param(1e-12, "absolute tolerance of the flow", check=number())
    max_steps: int = param(40_000, "the solver's step budget per flow", check=count())

    def estimated_bytes(self) -> float:
        return _mean_field_bytes(
            self.n, self.layers, max(self.particles), self.in_dim + self.out_dim + 1, 201
        )


@register(
    "conditional-ot",
    "mean-field ResNet, conditional-OT flow: features × initial scale, where it reaches 1e-8",
    ConditionalOTConfig,
)
def run_conditional_ot(config: ConditionalOTConfig, progress: RunContext) -> Result:
    cfg = config
    key = jax.random.PRNGKey(cfg.seed)
    kdata, kmodel = jax.random.split(key)
    data = teacher_data(kdata, cfg.n, cfg.in_dim, cfg.out_dim)
    q = _state_dim(cfg)
    m_max = max(cfg.particles)
    ts = np.concatenate([[0.0], np.geomspace(cfg.t1 * 1e-5, cfg.t1, 200)])
    runs, rows, trajs = [], [], {}
    with progress.task("flows", total=len(cfg.particles) * len(cfg.init_scales)) as advance:
        for s in cfg.init_scales:
            for m in cfg.particles:
                k = jax.random.fold_in(kmodel, m)  # same draw for each M across scales
                base = MeanFieldResNet(
                    cfg.in_dim, q, cfg.layers, m, cfg.out_dim, key=k, init_scale=float(s)
                )
                model = base.replicate(m_max // m) if m_max % m == 0 else base
                factor = model.particles // m
                status = "ok"
                try:
                    traj = flow(
                        model,
                        data,
                        cfg.t1,
                        geometry="conditional_wasserstein",
                        rtol=cfg.rtol,
                        atol=cfg.atol,
                        saveat=ts,
                        max_steps=cfg.max_steps,
                    )
                except (SolverError, DivergenceError) as err:
                    traj = err.trajectory
                    status = "max_steps" if isinstance(err, SolverError) else "diverged"
                loss = np.asarray(traj.loss)
                gn = np.asarray(traj.grad_norm)
                valid = loss > 0
                pl = np.where(valid, gn**2 / np.where(valid, loss, 1.0), np.nan)
                # PL ratio where the risk is above round-off (|∇F|² and F both ~ machine ε there)
                pl_sel = pl[loss > 1e-14] if np.any(loss > 1e-14) else pl
                wc = conditional_wasserstein(
                    traj.at(0).deduplicate(factor), traj.final.deduplicate(factor)
                )
                path = float(np.asarray(traj.path_length()))
                converged = bool(loss[-1] < cfg.threshold)
                run = {
                    "particles": m,
                    "features": m * cfg.layers,
                    "init_scale": float(s),
                    "initial_risk": float(loss[0]),
                    "final_risk": float(loss[-1]),
                    "converged": converged,
                    "status": status,
                    "t_reached": float(np.asarray(traj.ts)[-1]),
                    "t_below_threshold": _first_below(traj.ts, loss, cfg.threshold),
                    "pl_ratio_min": float(np.nanmin(pl_sel)),
                    "pl_ratio_final": float(pl_sel[-1]),
                    "wc_travelled": wc,
                    "path_length": path,
                    "steps": int(np.asarray(traj.stats["num_steps"]).sum()),
                }
                # where it stalls: the factor by which the last decade of time reduced the risk
                tt = np.asarray(traj.ts)
                i10 = int(np.searchsorted(tt, tt[-1] / 10))
                run["last_decade_ratio"] = float(loss[-1] / loss[i10]) if loss[i10] > 0 else 0.0
                if converged:
                    run["outcome"] = "converged"
                elif run["last_decade_ratio"] < 0.1:
                    run["outcome"] = "slow (still decaying)"
                else:
                    run["outcome"] = "stalled (plateau)"
                runs.append(run)
                trajs[(m, float(s))] = (traj, factor)
                for t, f, g, p in zip(np.asarray(traj.ts), loss, gn, pl, strict=True):
                    rows.append(
                        {
                            "particles": m,
                            "init_scale": float(s),
                            "t": float(t),
                            "loss": float(f),
                            "grad_norm": float(g),
                            "pl_ratio": float(p),
                        }
                    )
                progress.log(f"M={m} s={s}: risk {loss[0]:.3g} -> {loss[-1]:.3g} ({status})")
                advance()

    # separating feature count: smallest M from which every larger M converges, per scale
    separating = {}
    for s in cfg.init_scales:
        ok = [r["converged"] for r in runs if r["init_scale"] == float(s)]
        ms = [r["particles"] for r in runs if r["init_scale"] == float(s)]
        sep = None
        for i in range(len(ms)):
            if all(ok[i:]):
                sep = ms[i]
                break
        separating[str(float(s))] = sep
    s_small = float(min(cfg.init_scales))
    conv_small = [r for r in runs if r["init_scale"] == s_small and r["converged"]]
    summary = {
        "risk": "F = (1/2n) sum |f(x_i) - y_i|^2 (gradflow's normalisation)",
        "geometry": "conditional_wasserstein",
        "n": cfg.n,
        "state_dim": q,
        "layers": cfg.layers,
        "t1": cfg.t1,
        "threshold": cfg.threshold,
        "separating_particles_per_layer": separating,
        "separating_features": {k: (v * cfg.layers if v else None) for k, v in separating.items()},
        "separating_particles_small_init": separating[str(s_small)],
        "min_pl_ratio_converged_small_init": (
            float(min(r["pl_ratio_min"] for r in conv_small)) if conv_small else None
        ),
        "not_converged": [
            {
                k: r[k]
                for k in (
                    "particles",
                    "init_scale",
                    "initial_risk",
                    "final_risk",
                    "outcome",
                    "last_decade_ratio",
                    "status",
                    "t_reached",
                )
            }
            for r in runs
            if not r["converged"]
        ],
        "runs": runs,
    }
    figures, captions = _cot_figures(cfg, runs, trajs, pd.DataFrame(rows))
    best = max(
        (r for r in runs if r["converged"]),
        key=lambda r: (r["particles"], -r["init_scale"]),
        default=runs[-1],
    )
    main_traj, factor = trajs[(best["particles"], best["init_scale"])]
    notes = (
        "Conditional-OT (conditional-Wasserstein) gradient flow of a mean-field ResNet, particles "
        "per layer M swept against the spread s of the Gaussian initial measure (which sets the "
        "initial risk and how saturated the tanh neurons start). The theory (local PL) predicts "
        "convergence to a global minimiser (risk -> 0, PL ratio |grad F|^2/F bounded below) when "
        "the number of features is large enough and the initial risk small; with few features "
        "the flow stalls on a plateau (the PL ratio collapses to 0). Runs with different M share "
        "one compiled solve: every measure is represented with M_max particles per layer by "
        "repeating particles, which leaves the measure and its flow unchanged. W_C travelled is "
        "the exact conditional Wasserstein distance between the initial and final measures; it is "
        "at most the path length in the flow's metric."
    )
    # Flows that did not reach t1 (step budget, divergence) make the run incomplete.
    incomplete = [
        f"M={r['particles']} s={r['init_scale']:g}: {r['status']} at t={r['t_reached']:.4g} "
        f"< t1={cfg.t1:g}"
        for r in runs
        if r["status"] != "ok"
    ]
    return Result(
        summary=summary,
        metrics=pd.DataFrame(rows),
        trajectory=main_traj,
        figures=figures,
        captions=captions,
        notes=notes,
        incomplete=incomplete,
    )


def _cot_figures(cfg, runs, trajs, frame):
    plt = _plt()
    figures, captions = {}, {}
    ms = sorted({r["particles"] for r in runs})
    scales = sorted({r["init_scale"] for r in runs})
    cmap = plt.get_cmap("viridis")
    colour = {m: cmap(i / max(len(ms) - 1, 1)) for i, m in enumerate(ms)}
    styles = ["-", "--", ":", "-."]
    for col, stem, ylabel, cap in (
        (
            "loss",
            "risk_curves",
            "risk F(t)",
            "Risk along the conditional-OT flow, one curve per (particles per layer M, "
            "init scale s); "
            f"the dotted line is the {cfg.threshold:g} target.",
        ),
        (
            "pl_ratio",
            "pl_ratio",
            "PL ratio |∇F|²/F",
            "PL ratio |∇F|²_G/F along each flow (shown while F > 1e-14, above round-off): bounded "
            "below for the runs that converge, collapsing towards 0 where a run stalls on a "
            "plateau.",
        ),
    ):
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        for (m, s), g in frame.groupby(["particles", "init_scale"]):
            g = g[(g.t > 0) & (g[col] > 0) & ((g.loss > 1e-14) if col == "pl_ratio" else True)]
            ax.loglog(
                g.t,
                g[col],
                styles[scales.index(s) % 4],
                color=colour[m],
                lw=1.3,
                label=f"M={m}, s={s:g}",
            )
        if col == "loss":
            ax.axhline(cfg.threshold, color="k", ls=":", lw=0.8)
        ax.set_xlabel("flow time t")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        figures[stem] = fig
        captions[stem] = cap
    # final risk and W_C travelled against M
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for j, s in enumerate(scales):
        rs = [r for r in runs if r["init_scale"] == s]
        x = [r["particles"] for r in rs]
        axes[0].loglog(
            x, [max(r["final_risk"], 1e-20) for r in rs], "o" + styles[j % 4], label=f"s={s:g}"
        )
        axes[1].loglog(x, [r["wc_travelled"] for r in rs], "o" + styles[j % 4], label=f"s={s:g}")
    axes[0].axhline(cfg.threshold, color="k", ls=":", lw=0.8)
    axes[0].set_xlabel("particles per layer M")
    axes[0].set_ylabel(f"risk at t = {cfg.t1:g}")
    axes[1].set_xlabel("particles per layer M")
    axes[1].set_ylabel("W_C(μ_0, μ_T)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    figures["final_risk_and_transport"] = fig
    captions["final_risk_and_transport"] = (
        "Left: final risk against the number of particles per layer (one line per init scale; "
        "the dotted line is the target). Right: conditional Wasserstein distance between the "
        "initial and final measures (how far the features moved: small = lazy)."
    )
    # particle clouds of the largest converged run with the smallest scale
    conv = [r for r in runs if r["converged"]]
    pick = max(conv, key=lambda r: (r["particles"], -r["init_scale"])) if conv else runs[-1]
    traj, factor = trajs[(pick["particles"], pick["init_scale"])]
    p0 = np.asarray(traj.at(0).deduplicate(factor).particle_positions())
    p1 = np.asarray(traj.final.deduplicate(factor).particle_positions())
    layers = p0.shape[0]
    s_k = (np.arange(layers) + 0.5) / layers
    both = np.concatenate([p0.reshape(-1, p0.shape[-1]), p1.reshape(-1, p1.shape[-1])])
    mean = both.mean(0)
    _, _, vt = np.linalg.svd(both - mean, full_matrices=False)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.3), sharex=True, sharey=True)
    for ax, p, title in ((axes[0], p0, "initialisation"), (axes[1], p1, f"t = {cfg.t1:g}")):
        z = (p.reshape(-1, p.shape[-1]) - mean) @ vt[:2].T
        sc = ax.scatter(
            z[:, 0], z[:, 1], c=np.repeat(s_k, p.shape[1]), cmap="plasma", s=14, vmin=0, vmax=1
        )
        ax.set_title(title)
        ax.set_xlabel("PC 1 of θ = (u, w, b)")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("PC 2")
    fig.colorbar(sc, ax=axes, label="layer s")
    figures["particle_clouds"] = fig
    captions["particle_clouds"] = (
        f"Particles θ = (u, w, b) of the run M={pick['particles']}, s={pick['init_scale']:g}, "
        "projected on the two principal components of all particles (start and end together), "
        "coloured by their layer s; the layer coordinate never moves, only θ does."
    )
    return figures, captions


# ---------------------------------------------------------------------------------------------
# lojasiewicz


@dataclasses.dataclass(frozen=True)
class LojasiewiczConfig(ExperimentConfig):
    """A long L2-regularised conditional-Wasserstein flow of a tanh mean-field ResNet."""

    QUICK = dict(layers=2, particles=4, l2=5e-2, t1=1e4, saves=150, extend=2.0)
    TINY = dict(
        n=6, layers=2, particles=2, l2=5e-2, t1=2e3, saves=40, extend=2.0, rtol=1e-9, atol=1e-12
    )

    n: int = param(12, "number of samples of the teacher data", check=count(), size=True)
    in_dim: int = param(2, "input dimension d", check=count(), size=True)
    out_dim: int = param(1, "output dimension d'", check=count(), size=True)
    layers: int = param(4, "number of layers L of the mean-field ResNet", check=count(), size=True)
    particles: int = param(8, "particles per layer M", check=count(), size=True)
    init_scale: float = param(1.0, "spread of the Gaussian initial measure", check=number())
    l2: float = param(
        1e-2, "L2 regularisation λ > 0 (the Łojasiewicz experiment needs it)", check=number()
    )
    t1: float = param(1e5, "the horizon", check=number())
    saves: int = param(400, "number of log-spaced saves (≥ 16)", check=count(16), size=True)
    rtol: float = param(1e-10, "relative tolerance of the flow", check=number())
    atol: float = param(1e-13, "absolute tolerance of the flow", check=number())
    solver: str = param("tsit5", "the flow's solver", choices=_solvers)
    controller: str = param("pid", "the step-size controller", choices=("integral", "pid"))
    extend: float = param(
        3.0, "F_inf from a solve to extend·t1 with tighter tolerances (> 1)", check=number(1.0)
    )

    def estimated_bytes(self) -> float:
        dim = self.in_dim + self.out_dim + 1
        return _mean_field_bytes(self.n, self.layers, self.particles, dim, 2 * self.saves)


@register(
    "lojasiewicz",
    "L2-regularised Wasserstein flow (tanh): Łojasiewicz exponent, rate, finite path length",
    LojasiewiczConfig,
)
def run_lojasiewicz(config: LojasiewiczConfig, progress: RunContext) -> Result:
    cfg = config
    key = jax.random.PRNGKey(cfg.seed)
    kdata, kmodel = jax.random.split(key)
    data = teacher_data(kdata, cfg.n, cfg.in_dim, cfg.out_dim)
    q = _state_dim(cfg)
    model = MeanFieldResNet(
        cfg.in_dim,
        q,
        cfg.layers,
        cfg.particles,
        cfg.out_dim,
        key=kmodel,
        activation="tanh",
        init_scale=cfg.init_scale,
    )
    ts = np.concatenate([[0.0], np.geomspace(cfg.t1 * 1e-7, cfg.t1, cfg.saves)])
    with progress.task("flow", total=None):
        traj = flow(
            model,
            data,
            cfg.t1,
            geometry="conditional_wasserstein",
            l2=cfg.l2,
            rtol=cfg.rtol,
            atol=cfg.atol,
            solver=cfg.solver,
            controller=cfg.controller,
            saveat=ts,
            max_steps=2_000_000,
        )
    with progress.task("F_inf (longer, tighter solve)", total=None):
        fit = lojasiewicz_fit(traj, data=data, extend=cfg.extend)
    ed = energy_dissipation(traj)
    t = np.asarray(traj.ts)
    loss = np.asarray(traj.loss)
    gn = np.asarray(traj.grad_norm)
    path = cumulative_path_length(traj, "speed")
    poly = cumulative_path_length(traj, "polygon")
    i_dec = int(np.searchsorted(t, t[-1] / 10))
    last_decade = float((path[-1] - path[i_dec]) / path[-1])
    last_decade_poly = float((poly[-1] - poly[i_dec]) / poly[-1])
    final = traj.final
    theta = np.asarray(final.particle_positions())
    mass = 1.0 / (cfg.layers * cfg.particles)
    second_moment = float(mass * np.sum(theta**2))
    # per-particle stationarity: |∇_θ δF/δμ| = |∂F/∂θ_j| / m_j at the end
    grads = _particle_grads(final, data, cfg.l2)
    summary = {
        "risk": (
            "F = (1/2n) sum |f(x_i) - y_i|^2 + l2 * integral |theta|^2 dmu "
            "(paper's lambda/2 = our l2)"
        ),
        "geometry": "conditional_wasserstein",
        "activation": "tanh",
        "layers": cfg.layers,
        "particles": cfg.particles,
        "l2": cfg.l2,
        "t1": cfg.t1,
        "solver": cfg.solver,
        "controller": cfg.controller,
        "steps": int(np.asarray(traj.stats["num_steps"])),
        "rejected_steps": int(np.asarray(traj.stats["num_rejected_steps"])),
        "F0": float(loss[0]),
        "F_final": float(loss[-1]),
        "F_inf": fit.f_inf,
        "F_inf_source": fit.f_inf_source,
        "F_inf_solve": fit.f_inf_solve,
        "grad_norm_final": float(gn[-1]),
        "grad_norm_below_1e-10": bool(gn[-1] < 1e-10),
        "max_particle_stationarity_residual": float(np.max(grads)),
        "theta_lojasiewicz": fit.theta,
        "c_lojasiewicz": fit.c,
        "fit_r2": fit.r2,
        "fit_points": fit.n_points,
        "fit_window_gap": list(fit.window),
        "fit_window_t": list(fit.t_window),
        "decay_kind": fit.kind,
        "predicted_rate": fit.predicted_rate,
        "measured_rate": fit.measured_rate,
        "rate_relative_error": fit.rate_relative_error,
        "rate_curve_max_log10_error": fit.curve_log10_error,
        "rate_agrees": bool(fit.rate_relative_error < 0.1 and fit.curve_log10_error < 0.5),
        "pl_ratio_min_on_window": fit.pl_ratio_min,
        "path_length": float(path[-1]),
        "path_length_polygon": float(poly[-1]),
        "path_length_last_decade_fraction": last_decade,
        "path_length_last_decade_fraction_polygon": last_decade_poly,
        "path_length_converged": bool(last_decade < 0.01),
        "energy_dissipation": ed.as_dict(),
        "second_moment_final": second_moment,
        "second_moment_bound_F0_over_l2": float(loss[0] / cfg.l2),
        "max_particle_norm_sq": float(np.max(np.sum(theta**2, axis=-1))),
        "particle_norm_sq_bound": float(loss[0] / cfg.l2 / mass),
    }
    figures, captions = _loj_figures(cfg, t, loss, gn, fit, path, poly)
    notes = (
        "L2-regularised (λ = l2) conditional-Wasserstein gradient flow of a tanh mean-field "
        "ResNet, integrated to a long horizon. Theory (Łojasiewicz–Simon, analytic F): the flow "
        "converges to a critical point, |∇F| -> 0, the path length is finite, and F - F_inf decays "
        "exponentially if the fitted exponent ϑ is 1/2 (rate c² = the asymptotic PL ratio) and as "
        "t^(-1/(1-2ϑ)) otherwise. F_inf comes from a longer solve with tighter tolerances. The "
        "energy-dissipation residual certifies the solve: F(τ) + ∫|∇F|² dt = F(0). The tail is "
        "slow rather than stiff (the smallest Hessian eigenvalue in the flow's metric is small), "
        "so the explicit Tsit5 solver with a PID controller is the affordable choice; steps taken "
        "are in the summary."
    )
    return Result(summary=summary, trajectory=traj, figures=figures, captions=captions, notes=notes)


def _particle_grads(model, data, l2) -> np.ndarray:
    """|∇_θ (δF/δμ)(s_k, θ_{k,j})| = |∂F/∂θ_{k,j}| · L M for every particle."""
    from .._problem import GradientFlowProblem

    problem, params = GradientFlowProblem.from_model(model, data, l2=l2)
    g = jax.grad(problem.objective)(params)
    scale = model.layers * model.particles
    parts = [g.u, g.w] + ([g.b[..., None]] if model.bias else [])
    return np.asarray(scale * jnp.linalg.norm(jnp.concatenate(parts, axis=-1), axis=-1))


def _loj_figures(cfg, t, loss, gn, fit, path, poly):
    plt = _plt()
    figures, captions = {}, {}
    gap = loss - fit.f_inf
    ok = gap > 0
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.loglog(gap[ok], gn[ok], ".", ms=3, color="0.5", label="flow")
    lo, hi = fit.window
    sel = ok & (gap >= lo) & (gap <= hi)
    ax.loglog(gap[sel], gn[sel], ".", ms=4, color="C0", label="fit window")
    xs = np.geomspace(gap[ok].min(), gap[ok].max(), 50)
    ax.loglog(
        xs,
        fit.c * xs ** (1 - fit.theta),
        "C3-",
        lw=1,
        label=f"c (F−F∞)^(1−ϑ): ϑ={fit.theta:.3f}, c={fit.c:.3g}",
    )
    ax.set_xlabel("F − F∞")
    ax.set_ylabel("|∇F|_G")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    figures["lojasiewicz_fit"] = fig
    captions["lojasiewicz_fit"] = (
        "|∇F| against F − F∞ (log-log) along the flow with the fitted Łojasiewicz line "
        "|∇F| = c (F − F∞)^(1−ϑ); slope 1/2 means ϑ = 1/2 (PL, exponential convergence)."
    )
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.loglog(t[ok & (t > 0)], gap[ok & (t > 0)], "-", color="C0", label="F − F∞ (measured)")
    tw = t[sel]
    if tw.size:
        pred = (
            fit.predicted_gap(tw, tw[0], gap[sel][0])
            if fit.kind == "power"
            else (gap[sel][0] * np.exp(-fit.predicted_rate * (tw - tw[0])))
        )
        lab = (
            f"predicted exp(−{fit.predicted_rate:.3g} t)"
            if fit.kind == "exponential"
            else f"predicted ~ t^{fit.predicted_rate:.3g}"
        )
        ax.loglog(tw, pred, "--", color="C3", lw=1.5, label=lab)
    ax.set_xlabel("flow time t")
    ax.set_ylabel("F − F∞")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    figures["gap_decay"] = fig
    captions["gap_decay"] = (
        "F(t) − F∞ with the decay the fitted (ϑ, c) predict on the fit window "
        "(exponential with rate c² when ϑ = 1/2, t^(−1/(1−2ϑ)) otherwise)."
    )
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    pos = t > 0
    ax.semilogx(t[pos], path[pos], "-", label="∫|∇F|_G dt (speed)")
    ax.semilogx(t[pos], poly[pos], "--", label="polygon through saves")
    ax.set_xlabel("flow time t")
    ax.set_ylabel("cumulative path length (flow metric)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    figures["path_length"] = fig
    captions["path_length"] = (
        "Cumulative path length ∫_0^t |θ'|_G dt in the flow's own (conditional Wasserstein) "
        "metric: it levels off, i.e. the path has finite length as Łojasiewicz predicts."
    )
    return figures, captions


# ---------------------------------------------------------------------------------------------
# mean-field-limit


def _nested_sizes(field, values) -> None:
    """The sizes M and their doubles 2M must all divide the largest 2M (one compiled solve)."""
    sizes = sorted(set(values) | {2 * m for m in values})
    check(
        all(sizes[-1] % m == 0 for m in sizes),
        field,
        list(values),
        "sizes whose doubles all divide the largest (e.g. powers of two)",
    )


@dataclasses.dataclass(frozen=True)
class MeanFieldLimitConfig(ExperimentConfig):
    """Runs with M and 2M particles per layer (nested i.i.d. draws) compared at time t1."""

    QUICK = dict(particles=(4, 8), seeds=1, t1=5.0)
    TINY = dict(n=6, layers=2, particles=(2, 4), seeds=1, t1=1.0)

    n: int = param(12, "number of samples of the teacher data", check=count(), size=True)
    in_dim: int = param(2, "input dimension d", check=count(), size=True)
    out_dim: int = param(1, "output dimension d'", check=count(), size=True)
    layers: int = param(4, "number of layers L of the mean-field ResNet", check=count(), size=True)
    particles: tuple[int, ...] = param(
        (4, 8, 16, 32, 64, 128),
        "the sizes M compared with 2M (at least two; doubles dividing the largest)",
        check=items(count(), min_length=2, what="positive integers"),
        size=True,
    )
    init_scale: float = param(1.0, "spread of the Gaussian initial measure", check=number())
    t1: float = param(20.0, "the time at which the flows are compared", check=number())
    seeds: int = param(3, "number of independent draws", check=count(), size=True)
    rtol: float = param(1e-8, "relative tolerance of the flow", check=number())
    atol: float = param(1e-10, "absolute tolerance of the flow", check=number())

    def validate(self) -> None:
        super().validate()
        _nested_sizes("particles", self.particles)

    def estimated_bytes(self) -> float:
        dim = self.in_dim + self.out_dim + 1
        return _mean_field_bytes(self.n, self.layers, 2 * max(self.particles), dim, 41)


@register(
    "mean-field-limit",
    "particle-count sweep: W_C between the M- and 2M-particle flows shrinks as M grows",
    MeanFieldLimitConfig,
)
def run_mean_field_limit(config: MeanFieldLimitConfig, progress: RunContext) -> Result:
    cfg = config
    ms = sorted(set(cfg.particles))
    # the comparison pairs (M, 2M) need 2M too
    sizes = sorted(set(ms) | {2 * m for m in ms})
    m_max = max(sizes)
    for m in sizes:
        if m_max % m:
            raise ConfigError(
                "particles",
                cfg.particles,
                "sizes whose doubles all divide the largest (e.g. powers of two)",
            )
    key = jax.random.PRNGKey(cfg.seed)
    kdata, kmodel = jax.random.split(key)
    data = teacher_data(kdata, cfg.n, cfg.in_dim, cfg.out_dim)
    q = _state_dim(cfg)
    ts = np.linspace(0.0, cfg.t1, 41)
    rows, finals, initials, outputs = [], {}, {}, {}
    with progress.task("flows", total=cfg.seeds * len(sizes)) as advance:
        for seed in range(cfg.seeds):
            full = MeanFieldResNet(
                cfg.in_dim,
                q,
                cfg.layers,
                m_max,
                cfg.out_dim,
                key=jax.random.fold_in(kmodel, seed),
                init_scale=cfg.init_scale,
            )
            for m in sizes:
                # nested draws: the M-particle measure is the first M particles of every layer
                base = MeanFieldResNet(
                    cfg.in_dim,
                    q,
                    cfg.layers,
                    m,
                    cfg.out_dim,
                    positions=(full.u[:, :m], full.w[:, :m], full.b[:, :m]),
                )
                traj = flow(
                    base.replicate(m_max // m),
                    data,
                    cfg.t1,
                    geometry="conditional_wasserstein",
                    rtol=cfg.rtol,
                    atol=cfg.atol,
                    saveat=ts,
                )
                end = traj.final.deduplicate(m_max // m)
                finals[(seed, m)] = end
                initials[(seed, m)] = base
                outputs[(seed, m)] = np.asarray(end(data.x))
                for t, f in zip(np.asarray(traj.ts), np.asarray(traj.loss), strict=True):
                    rows.append({"seed": seed, "particles": m, "t": float(t), "loss": float(f)})
                advance()
    pairs = []
    for m in ms:
        wc_t, wc_0, out_d, coupled = [], [], [], []
        for seed in range(cfg.seeds):
            a, b = finals[(seed, m)], finals[(seed, 2 * m)]
            wc_t.append(conditional_wasserstein(a, b, method="exact"))
            wc_0.append(
                conditional_wasserstein(
                    initials[(seed, m)], initials[(seed, 2 * m)], method="exact"
                )
            )
            out_d.append(
                float(
                    np.sqrt(
                        np.mean(np.sum((outputs[(seed, m)] - outputs[(seed, 2 * m)]) ** 2, axis=-1))
                    )
                )
            )
            pa = np.asarray(a.particle_positions())
            pb = np.asarray(b.particle_positions())[:, :m]
            coupled.append(float(np.sqrt(np.mean(np.sum((pa - pb) ** 2, axis=-1)))))
        pairs.append(
            {
                "particles": m,
                "wc_final": float(np.mean(wc_t)),
                "wc_initial": float(np.mean(wc_0)),
                "wc_final_per_seed": wc_t,
                "output_distance": float(np.mean(out_d)),
                "coupled_distance": float(np.mean(coupled)),
            }
        )
    x = [p["particles"] for p in pairs]

    def slope(key_):
        ys = [p[key_] for p in pairs]
        if len(x) < 2 or min(ys) <= 0:
            return None
        return float(_slope(x, ys))

    dims = 2 * q + 1
    wc = [p["wc_final"] for p in pairs]
    summary = {
        "geometry": "conditional_wasserstein",
        "layers": cfg.layers,
        "t1": cfg.t1,
        "particle_dimension": dims,
        "seeds": cfg.seeds,
        "pairs": pairs,
        "wc_final_slope": slope("wc_final"),
        "wc_initial_slope": slope("wc_initial"),
        "output_distance_slope": slope("output_distance"),
        "coupled_distance_slope": slope("coupled_distance"),
        "wc_decreasing": bool(all(b < a for a, b in zip(wc[:-1], wc[1:], strict=True))),
        "theory": {
            "output_distance_slope": -0.5,
            "coupled_distance_slope": -0.5,
            "wc_slope_large_M": -1.0 / dims,
            "explanation": (
                "W_2 between two independent empirical measures of a smooth law in R^p shrinks "
                "like M^(-1/p) (p = particle dimension) for p > 4, so W_C between the M and 2M "
                "runs is dominated by the sampling of the initial measure, which the flow carries "
                "along; the flow itself converges at the Monte-Carlo rate M^(-1/2) (propagation "
                "of chaos), visible in the network outputs and in the synchronous coupling "
                "(distance between the trajectories of the shared particles)."
            ),
        },
    }
    figures, captions = _mfl_figures(cfg, pairs, pd.DataFrame(rows), dims)
    notes = (
        "Mean-field limit: the flow with M particles per layer against the one with 2M (the first "
        "M particles of each layer shared), at time t1. W_C(μ^M_t, μ^2M_t) decreases with M; the "
        "network outputs and the shared particles' trajectories converge at the Monte-Carlo rate "
        "1/√M; W_C itself is limited by the sampling of the initial measure in dimension "
        f"p = {dims} (rate M^(-1/p) for large M)."
    )
    return Result(
        summary=summary, metrics=pd.DataFrame(rows), figures=figures, captions=captions, notes=notes
    )


def _slope(xs, ys) -> float:
    from ..fits import loglog_slope

    return loglog_slope(xs, ys).slope


def _mfl_figures(cfg, pairs, frame, dims):
    plt = _plt()
    figures, captions = {}, {}
    x = np.array([p["particles"] for p in pairs], float)
    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    for key_, label, mk in (
        ("wc_final", f"W_C(μ^M, μ^2M) at t={cfg.t1:g}", "o-"),
        ("wc_initial", "W_C at t=0 (sampling)", "s--"),
        ("output_distance", "|f^M − f^2M| on the data", "^-"),
        ("coupled_distance", "shared particles' distance", "v-"),
    ):
        y = np.array([p[key_] for p in pairs])
        if np.all(y > 0):
            ax.loglog(x, y, mk, label=f"{label} (slope {_slope(x, y):.2f})")
    ref = pairs[0]["output_distance"] * (x / x[0]) ** -0.5
    ax.loglog(x, ref, "k:", lw=1, label="M^(-1/2)")
    ax.set_xlabel("particles per layer M")
    ax.set_ylabel("distance between the M and 2M runs")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    figures["mean_field_limit"] = fig
    captions["mean_field_limit"] = (
        "Distances between the flows with M and 2M particles per layer at the final time "
        f"(mean over seeds): conditional Wasserstein W_C (and at t = 0), output distance and "
        "synchronous-coupling distance, with slopes; W_C is limited by sampling in dimension "
        f"{dims}."
    )
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    cmap = plt.get_cmap("viridis")
    sizes = sorted(frame.particles.unique())
    for i, m in enumerate(sizes):
        g = frame[(frame.seed == 0) & (frame.particles == m)]
        ax.semilogy(g.t, g.loss, color=cmap(i / max(len(sizes) - 1, 1)), label=f"M={m}")
    ax.set_xlabel("flow time t")
    ax.set_ylabel("risk")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    figures["risk_by_particles"] = fig
    captions["risk_by_particles"] = (
        "Risk along the flow for each particle count (seed 0): the curves converge as M grows."
    )
    return figures, captions
