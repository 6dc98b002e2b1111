"""six-point-vertex: the first O(1/n²) coupling of Ch. ε — the single-input six-point vertex U^{(ℓ)} — against
ensembles of random MLPs.

One task per (activation, width n): an MLP of depth L at the activation's critical (C_b, C_W), one input with
K^{(1)} = C_W|x|²/n_0. The ensemble side (:func:`deepeft.simulate.metric_cumulants`) measures, per layer, the
stochastic metric Ĝ^{(ℓ)} (4.70) of every network and its cumulants: G = E[Ĝ], V = n k₂(Ĝ) (4.76) and
U = n² k₃(Ĝ) (Ch. ε; = n²[E[z_i²z_j²z_k²] − 3E[z_i²z_j²]E[z²] + 2E[z²]³]), with jackknife standard errors.

Sampler (``sampler``): "metric" (default) draws each network's layers from the exact conditional chain (4.70)–(4.71),
z^{(ℓ)} = √Ĝ^{(ℓ)} ξ — the same joint law of Ĝ^{(1..L)} as running the weights ("weights"), with n× fewer random
numbers. κ₃'s sampling error is what limits U: at 8 000 weight-sampled networks U was measured to 5–10 % per layer
(only U × 1.25 failed). The quick preset draws 2 048 000 chain networks per width (≈ 9 s per run on a quiet 2-core
machine after compilation; 512 000 took ≈ 2.2 s) and measures U to 0.4–0.5 % at ℓ = 2, 3 (0.9–1.6 % at ℓ = 4..6), V
to 0.12–0.4 %. Quick runs, seeds 0–3 (max |z| of the predictions): U × 1.03 fails every seed (|z| 6.5, 9.1, 7.6, 8.2),
V × 1.02 every seed (|z| 15.8–22.7); unperturbed, all 32 predictions pass (max |z| 2.1–2.9). (At 512 000 networks
U × 1.05 failed only three seeds of four.)

Checks:

* ReLU — U, V, G per layer ℓ ≥ 2 against the exact finite-width cumulant recursion (theory/complexity.py,
  [derived] from (4.70): Ĝ⁺ = Ĝ·T with T independent of Ĝ): |z| < max_z (prediction). The leading-order (ε.20)
  recursion reproduces the closed form [75(ℓ − 1)(ℓ − 2) + 44(ℓ − 1)]K³ (regression), and its 1/n remainder is
  what separates it from the data (reported, figure).
* tanh (any activation without a closed form) — at ℓ = 2, U = C_W³κ₃(σ(z)²) with z ~ N(0, K^{(1)}) by Gauss–Hermite
  quadrature (prediction, exact at any width); across widths, n²κ₃(Ĝ)/G³ = U/K³ collapses (ε.19): the difference
  between the widest and narrowest runs within max_z·SE + c·|U/K³|·(ℓ − 1)/n_min, the stated allowance for
  U's own O(ℓ/n) correction (prediction).

Figure: U/(n²K³) against ℓ per width — ensembles (points), the exact ReLU recursion (solid), (ε.20) (dashed),
75ℓ²/n² (dotted) — and the z-scores.

References:
  Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (2022), arXiv:2106.10165, (4.70)–(4.76), (ε.19)–(ε.22)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..errors import DeepEFTInputError
from ..network import MLP
from ..statistics import Z_MAX, agrees, zscore
from ..theory.complexity import six_point_relu_critical, six_point_vertex_relu
from . import _foundation as fd
from .base import Experiment
from .checks import Check, close_check, zcheck
from .config import param
from .registry import register

__all__ = ["SixPointVertex"]

_INPUT_DIM = 4


def _net(act: str, n: int, L: int) -> MLP:
    C_b, C_W = fd.critical_hyperparameters(act)
    return MLP(input_dim=_INPUT_DIM, widths=[n] * (L - 1), output_dim=n, activation=act, C_b=C_b, C_W=C_W)


def _sigma_sq_k3(act: str, K: float, C_W: float) -> float:
    """C_W³κ₃(σ(z)²), z ~ N(0, K): U^{(2)} at any width (one layer of iid neurons), by Gauss–Hermite quadrature."""
    from ..activations import activation

    z, w = np.polynomial.hermite_e.hermegauss(160)
    w = w / w.sum()
    s2 = activation(act).numpy(np.sqrt(K) * z) ** 2
    m1, m2, m3 = (float(np.dot(w, s2**k)) for k in (1, 2, 3))
    return C_W**3 * (m3 - 3 * m2 * m1 + 2 * m1**3)


@register
class SixPointVertex(Experiment):
    name = "six-point-vertex"
    description = "six-point vertex U (Ch. ε): ReLU exact finite-width recursion and (ε.20) vs ensembles; tanh measured"
    references = "PDLT (4.70)–(4.76), (ε.19)–(ε.22)"
    order = 30

    @dataclasses.dataclass(frozen=True)
    class Params:
        activations: tuple[str, ...] = param(("relu",), "activations (ReLU has the exact recursion)")
        widths: tuple[int, ...] = param((24, 48), "hidden widths n (every layer)", min=2)
        depth: int = param(6, "number of layers L", min=2, max=64)
        n_networks: int = param(2_048_000, "networks per task", min=16)
        sampler: str = param("metric", "exact conditional chain (4.70)–(4.71), n× cheaper, or the weights",
                             choices=("metric", "weights"))
        c_collapse: float = param(1.0, "allowance c of the width collapse of U/K³ (tanh)", min=0.0, analysis=True)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            if len(set(self.widths)) != len(self.widths):
                raise DeepEFTInputError(f"parameter 'widths' has repeated entries {list(self.widths)}; list each once.")
            for a in self.activations:
                fd.critical_hyperparameters(a)

    presets = {
        "quick": {},
        "paper": {"activations": ("relu", "tanh"), "widths": (16, 32, 64), "depth": 10, "n_networks": 8_192_000},
    }

    def sweep(self, p):
        return {"activation": list(p.activations), "width": list(p.widths)}

    def coords(self, p):
        return {"layer": list(range(1, p.depth + 1))}

    def compute(self, p, task, ctx):
        from ..simulate.metric_cumulants import metric_cumulants

        act, n, L = task["activation"], task["width"], p.depth
        net = _net(act, n, L)
        x = np.ones(_INPUT_DIM)
        mc = metric_cumulants(net, x, p.n_networks, fd.ensemble_seed(ctx), method=p.sampler)
        K1 = net.C_b[0] + net.C_W[0]
        nan = np.full(L, np.nan)
        if act == "relu":
            ex = six_point_vertex_relu(L, K1=K1, C_b=net.C_b, C_W=net.C_W, n=n)
            lo = six_point_vertex_relu(L, K1=K1, C_b=net.C_b, C_W=net.C_W)
            th = {"K_exact": ex.K, "V_exact": ex.V, "U_exact": ex.U, "U_lo": lo.U, "U_closed": six_point_relu_critical(
                np.arange(1, L + 1), K1) if net.C_W[0] == 2.0 and net.C_b[0] == 0.0 else nan}
        else:
            th = {"K_exact": nan, "V_exact": nan, "U_exact": nan, "U_lo": nan, "U_closed": nan}
        u2 = _sigma_sq_k3(act, K1, net.C_W[1]) if L > 1 else np.nan
        out: dict[str, Any] = {k: (("layer",), np.asarray(v, dtype=np.float64)) for k, v in th.items()}
        for name, est in (("G", mc.G), ("V", mc.V), ("U", mc.U), ("Unorm", mc.U_normalized)):
            out[f"{name}_sim"] = (("layer",), np.asarray(est.value))
            out[f"{name}_stderr"] = (("layer",), np.asarray(est.stderr))
        out["U2_quadrature"] = ((), np.asarray(u2))
        return out

    def analyze(self, p, ds):
        checks: list[Check] = []
        layers = ds.layer.values
        for act in p.activations:
            for n in p.widths:
                q = ds.sel(activation=act, width=n)
                tag = f"{act} n={n}"
                checks.append(zcheck(f"{tag}: U^(2) = C_W³κ₃(σ²) (quadrature)", q.U2_quadrature, q.U_sim.sel(layer=2),
                                     q.U_stderr.sel(layer=2), max_z=p.max_z))
                if act != "relu":
                    continue
                for l in layers[1:]:
                    r = q.sel(layer=l)
                    checks.append(zcheck(f"{tag}: U^({l}) exact recursion", r.U_exact, r.U_sim, r.U_stderr, max_z=p.max_z))
                    checks.append(zcheck(f"{tag}: V^({l}) exact recursion", r.V_exact, r.V_sim, r.V_stderr, max_z=p.max_z))
                    checks.append(zcheck(f"{tag}: G^({l}) = K (exact)", r.K_exact, r.G_sim, r.G_stderr, max_z=p.max_z))
            if act == "relu":
                q = ds.sel(activation=act, width=p.widths[0])
                if np.all(np.isfinite(q.U_closed.values)):
                    checks.append(close_check("relu: (ε.20) recursion vs closed form [75(ℓ−1)(ℓ−2)+44(ℓ−1)]K³ at ℓ = L",
                                              q.U_closed.values[-1], q.U_lo.values[-1], rtol=1e-12, kind="regression"))
            elif len(p.widths) > 1:
                a, b = min(p.widths), max(p.widths)
                for l in layers[2:]:
                    A, B = ds.sel(activation=act, width=a, layer=l), ds.sel(activation=act, width=b, layer=l)
                    ua, ub = a**2 * float(A.Unorm_sim), b**2 * float(B.Unorm_sim)
                    se = float(np.hypot(a**2 * A.Unorm_stderr, b**2 * B.Unorm_stderr))
                    allow = p.c_collapse * max(abs(ua), abs(ub)) * (l - 1) / a
                    checks.append(Check(f"{act}: U/K³ at ℓ={l}, n={a} vs n={b} (1/n² scaling (ε.19))", ub, ua, se,
                                        zscore(ua - ub, se), bool(agrees(ua - ub, se, max_z=p.max_z, allowance=allow)),
                                        f"|Δ| < {p.max_z:g}·SE + {p.c_collapse:g}·|U/K³|·(ℓ−1)/n_min (U's O(ℓ/n) correction)"))
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10.0, 3.8), layout="constrained")
        ax, ax2 = fig.subplots(1, 2)
        ell = ds.layer.values.astype(float)[1:]  # U^(1) = 0
        for act in p.activations:
            for n in p.widths:
                q = ds.sel(activation=act, width=n).isel(layer=slice(1, None))
                (line,) = ax.plot([], [])
                c = line.get_color()
                ax.errorbar(ell, q.Unorm_sim, yerr=q.Unorm_stderr, fmt="o", ms=3.5, color=c, label=f"{act} n={n} ensembles")
                if act == "relu":
                    K3 = q.K_exact.values**3 * n**2
                    ax.plot(ell, q.U_exact / K3, "-", color=c, lw=1.0, label="exact finite-n recursion")
                    ax.plot(ell, q.U_lo / K3, "--", color=c, lw=0.8, label="(ε.20)")
                    ax.plot(ell, 75 * ell**2 / n**2, ":", color=c, lw=0.8, label="75ℓ²/n² (ε.21)")
        ax.set_xlabel("layer ℓ")
        ax.set_ylabel("U/(n²K³) = κ₃(Ĝ)/E[Ĝ]³")
        ax.set_yscale("log")
        ax.legend(fontsize=6)
        ax.set_title("six-point vertex: O(ℓ²/n²) growth", fontsize=9)
        zs = []
        for act in p.activations:
            if act != "relu":
                continue
            for n in p.widths:
                q = ds.sel(activation=act, width=n).isel(layer=slice(1, None))
                zs.append(((q.U_sim - q.U_exact) / q.U_stderr).values)
        if zs:
            z = np.concatenate(zs)
            ax2.plot(np.arange(z.size), z, "o", ms=3)
        ax2.axhline(p.max_z, color="crimson", lw=0.8)
        ax2.axhline(-p.max_z, color="crimson", lw=0.8)
        ax2.set_ylabel("z = (U_sim − U_exact)/SE (ReLU)")
        ax2.set_title("z-scores", fontsize=9)
        return {"six_point_vertex.png": fig}
