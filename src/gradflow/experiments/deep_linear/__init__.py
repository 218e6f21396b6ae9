"""`deep-linear`: the saddle-to-saddle gradient flow of a deep linear network, certified.

A whitened linear teacher with well-separated singular values s_1 > ... > s_r (or your data,
`--set data=FILE.npz`), a deep linear network from a small random init (per-layer scale ε; or
your weights, `--set init=FILE.npz`), integrated to convergence with `gf.flow_in_pieces`
(checkpointed: an interrupted run resumes). The flow passes near the critical points
J = ∅, {1}, {1, 2}, ... whose values are F_J = ½ Σ_{j∉J} s_j² + const (docs/deep-linear.md),
learning mode j after a plateau of length ~ log(1/ε)/s_j (H = 2) or ~ ε^{−(H−2)}/((H−2) s_j)
(H ≥ 3). The run reports:

- the learning order and times, against the balanced prediction u' = H u^{2−2/H}(s − u)
  (`escapes`);
- the loss on each plateau against the critical value it sits at;
- the Hessian spectrum at each visited saddle (strict or not) and at the atlas point it
  represents (`gf.diagnostics.critical_points`);
- the conservation drift max_t |C_k(t) − C_k(0)| (the integrator's certificate) and solver
  statistics.

**Stiffness.** After a mode is learned the Hessian has eigenvalues ~ H s^{2−2/H} while the next
plateau lasts ~ ε^{−(H−2)}/s: with `solver="auto"` (`gf.choose_solver`) the explicit Tsit5 is used
when the estimated number of stability-limited steps is modest, the implicit Kvaerno5 otherwise
(e.g. depth 4 with ε = 1e-4, a horizon of ~10⁸).

Files: `config.py` (the fields), `run.py` (the composition), `escapes.py` (dense re-solves of
each escape, balanced predictions), `figures.py`.
"""

from .config import DeepLinearConfig as DeepLinearConfig
from .run import run as run

__all__ = ["DeepLinearConfig", "run"]
