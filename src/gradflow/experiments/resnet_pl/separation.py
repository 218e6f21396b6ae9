"""Which m/n separate, in `resnet-pl`, (1) a singular from a positive-definite tangent kernel at
init and (2) converging from stalling flows, with a sentence saying it."""

from __future__ import annotations

SEPARATION_NOTE = (
    "Two separations. (1) Worst case at init (Prop. 5's mechanism): at the tied init "
    "(V = 0, W_k = W) the tangent kernel in the flow's metric is K_G = (1/m) ΦΦᵀ ⊗ I "
    "with features Φ_i = σ(W x_i/√q) ∈ R^m, so (2/n) λ_min(K_G), the PL constant valid "
    "for every target, is positive iff the n×m feature matrix has rank n, i.e. m ≥ n. "
    "(2) Along the flow on these targets: converging = ℓ below target within t_max with "
    "the PL ratio |∇F|_G²/F > pl_floor all the way; the actual residual need not lie in "
    "the kernel's null space, and W moves, so narrow networks may converge too"
)


def _m_over_n(frame) -> list[float]:
    return sorted(float(v) for v in frame.m_over_n)


def _split(frame, yes) -> dict:
    """Whether the widths where `yes` holds all lie above those where it does not, and the
    separating pair [largest m/n without, smallest m/n with] when both occur."""
    no = ~yes
    monotone = bool(
        not (yes.any() and no.any()) or frame[no].m_over_n.max() < frame[yes].m_over_n.min()
    )
    return {
        "monotone": monotone,
        "separating_m_over_n": (
            [float(frame[no].m_over_n.max()), float(frame[yes].m_over_n.min())]
            if yes.any() and no.any() and monotone
            else None
        ),
    }


def _kernel_words(kernel, full) -> str:
    if kernel["separating_m_over_n"]:
        lo, hi = kernel["separating_m_over_n"]
        return (
            f"The worst-case PL constant at the tied init is 0 for m/n ≤ {lo:.3g} and positive "
            f"for m/n ≥ {hi:.3g} (theory: the threshold is m/n = 1)."
        )
    return (
        "The worst-case PL constant at the tied init is "
        + ("positive" if full.all() else "0" if (~full).all() else "not monotone in m")
        + " for every width swept."
    )


def _flow_words(frame, flow, converging, target_risk, pl_floor) -> str:
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
        return (
            f"Along the flow, ℓ < {target_risk:g} with the PL ratio > {pl_floor:g} "
            f"for m/n ≥ {hi:.3g} and not for m/n ≤ {lo:.3g} ({stops})."
        )
    if converging.all():
        return (
            f"Along the flow every width reached ℓ < {target_risk:g} with the PL ratio > "
            f"{pl_floor:g}: on these data the flow does not need m ≥ n."
        )
    return (
        "Along the flow the converging widths are m/n ∈ "
        f"{flow['m_over_n_converging']} ({stops or 'none stopped'})."
    )


def separation(frame, target_risk: float, pl_floor: float) -> dict:
    """{'tangent_kernel_at_init', 'flow', 'statement'} from the per-width `frame`."""
    full = frame.kernel_rank_init == frame.kernel_size
    converging = frame.reached_target & frame.keeps_pl
    kernel = {
        "m_over_n_full_rank": _m_over_n(frame[full]),
        "m_over_n_singular": _m_over_n(frame[~full]),
        **_split(frame, full),
    }
    flow = {
        "m_over_n_converging": _m_over_n(frame[converging]),
        "m_over_n_not_converging": _m_over_n(frame[~converging]),
        **_split(frame, converging),
    }
    words = [
        _kernel_words(kernel, full),
        _flow_words(frame, flow, converging, target_risk, pl_floor),
    ]
    return {"tangent_kernel_at_init": kernel, "flow": flow, "statement": " ".join(words)}
