"""ntk-evolution: how the NTK and the penultimate-layer features of real finite-width networks move under
gradient descent, against the dNTK/ddNTK expansions (PDLT (11.9)–(11.10), (∞.4), (∞.6), (∞.9)).

One task per (activation, width): critical MLPs (λ_b = λ_W = 1) of depth L with one output, N training inputs
(:func:`_foundation.fixed_inputs`) and fixed targets y = ½ sin(Σ_j x_j); ``n_networks`` networks, each trained
by ``train_steps`` full-batch GD steps (MSE, step ``eta_train``). At initialization and after training, one
more GD step of size η is taken for every η on a ladder η_k = eta_max·2^{−k} and the measured changes are
compared with the expansions in that network's own tensors (:func:`deepeft.one_step_prediction`):

* output z^{(L)} by (∞.4) with Ĥ, dĤ, dd_IĤ: remainder O(η⁴);
* output NTK Ĥ^{(L)} by (∞.6) with dĤ, dd_IĤ, dd_IIĤ: remainder O(η³);
* output dNTK dĤ^{(L)} by (∞.9) with dd_IĤ, dd_IIĤ: remainder O(η²);
* penultimate features z^{(L−1)} by (∞.4) with Ĥ^{(L−1)}, dĤ^{(L−1)} and the error factor ε^{(L−1)} (∞.3):
  remainder O(η³); their NTK Ĥ^{(L−1)} by (11.10): remainder O(η²).

Checks (kind "resolution": the order of the remainder of each expansion, known to the resolution of the η
ladder): for every network, the slope of log max|measured − predicted| against log η over the ladder must be
within ``slope_tol`` of the order (4, 3, 2, 3, 2). The slopes are deterministic (one network, no sampling), so
there is no standard error: their deviation from the order is the next-order bias of a finite ladder (local
slopes converge to the order linearly in η, e.g. 3.979, 3.990, 3.995; a least-squares SE from the fit's residuals
measures that curvature, not noise — |z| ≈ 4.8 for every passing slope at the quick size), and ±0.3 is an allowance
on that resolution, not an error bar. A wrong coefficient of any term of order < the remainder's (e.g. the η²
term off by 3 %) leaves an O(η^{k}) piece with k one lower and the slope falls by ~1 on the small-η end.
After training the error on y is nearly gone, so the probing step at the second record point uses the targets
−y (an O(1) error factor; the tensors are the trained network's). Recorded (not checked): the relative change
of the output NTK, of the feature NTK and of the features over training, ‖X(T) − X(0)‖/‖X(0)‖ per network —
the representation learning a frozen NTK would not have.

References:
  Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (2022), arXiv:2106.10165, §11.1, §∞.1.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..activations import require_smooth
from ..errors import DeepEFTInputError
from . import _foundation as fd
from .base import Experiment
from .checks import Check
from .config import param
from .registry import register

__all__ = ["NTKEvolution"]

# (name, output key, book equation, order of the remainder)
QUANTITIES = (
    ("z_out", "output z^(L) by (∞.4)", 4),
    ("H_out", "output NTK by (∞.6)", 3),
    ("dH_out", "output dNTK by (∞.9)", 2),
    ("z_feat", "features z^(L−1) by (∞.4) to η²", 3),
    ("H_feat", "feature NTK by (11.10)", 2),
)
RECORDS = ("init", "trained")


def _targets(X: np.ndarray) -> np.ndarray:
    return 0.5 * np.sin(X.sum(axis=1, keepdims=True))


def _rel(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@register
class NTKEvolution(Experiment):
    name = "ntk-evolution"
    description = ("one GD step of real networks vs the dNTK/ddNTK expansions (∞.4), (∞.6), (∞.9), (11.10): remainder orders; "
                   "NTK and feature change over training")
    references = "PDLT (11.9)-(11.10), (∞.3)-(∞.9)"
    order = 26

    @dataclasses.dataclass(frozen=True)
    class Params:
        activations: tuple[str, ...] = param(("tanh", "gelu"), "smooth activations, each at its critical point")
        widths: tuple[int, ...] = param((8, 16), "hidden widths n (the feature tensors cost (nN)² × #θ memory)", min=2, max=64)
        depth: int = param(3, "number of layers L", min=2, max=8)
        n_inputs: int = param(3, "number of training inputs N", min=1, max=6)
        input_dim: int = param(3, "input dimension n_0", min=1)
        n_networks: int = param(3, "networks per (activation, width)", min=1)
        train_steps: int = param(20, "GD steps before the second record point", min=1)
        eta_train: float = param(0.05, "GD step during training", min=0.0)
        eta_max: float = param(0.04, "largest η of the one-step ladder", min=0.0)
        n_eta: int = param(4, "ladder points η_k = eta_max·2^-k", min=3, max=12)
        slope_tol: float = param(0.3, "allowed |fitted slope − order| per network (η-ladder resolution)", min=0.0, analysis=True)
        seed: int = param(0, "experiment seed", min=0)

        def __post_init__(self):
            fd.check_activations(self.activations)
            for a in self.activations:
                require_smooth(a, "The ntk-evolution experiment (dNTK/ddNTK expansions)")
            if len(set(self.widths)) != len(self.widths):
                raise DeepEFTInputError(f"parameter 'widths' has repeated entries {list(self.widths)}; list each once.")

    presets = {
        "quick": {},
        "paper": {"activations": ("tanh", "gelu", "swish"), "widths": (8, 16, 32, 64), "depth": 4, "n_networks": 16,
                  "train_steps": 100, "n_eta": 6},
    }

    def sweep(self, p):
        return {"activation": list(p.activations), "width": list(p.widths)}

    def coords(self, p):
        return {"network": list(range(p.n_networks)), "record": list(RECORDS), "quantity": [q[0] for q in QUANTITIES],
                "eta": [p.eta_max * 2.0**-k for k in range(p.n_eta)]}

    def compute(self, p, task, ctx):
        import jax.numpy as jnp

        from .._x64 import x64
        from ..simulate.forward import sample_params
        from ..simulate.ntk_tensors import compare_step, empirical_tensors, error_factor, mse_step

        net = fd.critical_net(task["activation"], int(task["width"]), p.depth, p.input_dim, output_dim=1)
        X = fd.fixed_inputs(p.n_inputs, p.input_dim)
        Y = _targets(X)
        etas = [p.eta_max * 2.0**-k for k in range(p.n_eta)]
        seed = fd.ensemble_seed(ctx)
        resid = np.zeros((p.n_networks, len(RECORDS), len(QUANTITIES), p.n_eta))
        rel = np.zeros((p.n_networks, 3))
        layers = (net.L, net.L - 1)
        for s in range(p.n_networks):
            q0 = sample_params(net, seed, s, dtype="float64")
            qT = q0
            for _ in range(p.train_steps):
                qT = mse_step(net, qT, X, Y, p.eta_train)
            for r, params in enumerate((q0, qT)):
                # after training the error on Y is nearly gone: the probing step uses the targets −Y (an O(1) error)
                Yr = Y if r == 0 else -Y
                t0 = [empirical_tensors(net, params, X, layer=l, ddntk=(l == net.L)) for l in layers]
                with x64():
                    pj = tuple((jnp.asarray(W), jnp.asarray(b)) for W, b in params)
                    eps = [np.asarray(error_factor(net, pj, jnp.asarray(X), jnp.asarray(Yr), l)) for l in layers]
                for k, eta in enumerate(etas):
                    p1 = mse_step(net, params, X, Yr, eta)
                    o, f = (compare_step(t0[i], empirical_tensors(net, p1, X, layer=l, ddntk=False), eps[i], eta)
                            for i, l in enumerate(layers))
                    resid[s, r, :, k] = [np.abs(o.dz_actual - o.dz_predicted).max(), np.abs(o.dH_actual - o.dH_predicted).max(),
                                         np.abs(o.ddH_actual - o.ddH_predicted).max(), np.abs(f.dz_actual - f.dz_predicted).max(),
                                         np.abs(f.dH_actual - f.dH_predicted).max()]
            T0, TT = (empirical_tensors(net, prm, X, layer=net.L - 1, ddntk=False) for prm in (q0, qT))
            H0, HT = (empirical_tensors(net, prm, X, ddntk=False).ntk for prm in (q0, qT))
            rel[s] = [_rel(HT, H0), _rel(TT.ntk, T0.ntk), _rel(TT.z, T0.z)]
        return {
            "residual": (("network", "record", "quantity", "eta"), resid),
            "rel_change_ntk_out": (("network",), rel[:, 0]),
            "rel_change_ntk_feat": (("network",), rel[:, 1]),
            "rel_change_features": (("network",), rel[:, 2]),
        }

    @staticmethod
    def slopes(p, ds) -> np.ndarray:
        """Fitted log-log slopes of the residuals against η: (activation, width, network, record, quantity)."""
        le = np.log(np.asarray(ds.eta.values, dtype=float))
        r = np.log(np.asarray(ds.residual.values, dtype=float))
        lc = le - le.mean()
        return ((r - r.mean(-1, keepdims=True)) * lc).sum(-1) / (lc**2).sum()

    def analyze(self, p, ds):
        checks: list[Check] = []
        sl = self.slopes(p, ds)
        for ai, a in enumerate(p.activations):
            for wi, w in enumerate(p.widths):
                for ri, rec in enumerate(RECORDS):
                    for qi, (_, what, order) in enumerate(QUANTITIES):
                        s = sl[ai, wi, :, ri, qi]
                        ok = bool(np.all(np.isfinite(s)) and np.max(np.abs(s - order)) < p.slope_tol)
                        worst = float(s[np.argmax(np.abs(s - order))])
                        checks.append(Check(
                            f"{a} n={w} {rec}: {what}, remainder slope", float(order), worst, None, None, ok,
                            f"every network's log-log slope of max|measured − predicted| vs η within ±{p.slope_tol:g} "
                            f"of {order} (ladder resolution, no sampling error; worst network shown; {p.n_eta} η from "
                            f"{p.eta_max:g} halving)", kind="resolution"))
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        fig = Figure(figsize=(4 * len(QUANTITIES), 3.4))
        axes = fig.subplots(1, len(QUANTITIES))
        eta = ds.eta.values
        for qi, (key, what, order) in enumerate(QUANTITIES):
            ax = axes[qi]
            for a in p.activations:
                for w in p.widths:
                    r = ds.residual.sel(activation=a, width=w, record="init", quantity=key).values
                    ax.loglog(eta, r.mean(0), "o-", ms=3, label=f"{a} n={w}")
            ref = ds.residual.sel(record="init", quantity=key).values.mean()
            ax.loglog(eta, ref * (eta / eta.mean()) ** order, "k--", lw=0.8, label=f"∝ η^{order}")
            ax.set_title(what, fontsize=8)
            ax.set_xlabel("η")
        axes[0].set_ylabel("max |measured − predicted|")
        axes[0].legend(fontsize=6)
        fig.tight_layout()
        return {"ntk_evolution.png": fig}
