"""lattice-finite-n: the leading O(1/N) correction to the lattice model's mean field, several inputs (overlaps).

The factorial mean field of the lattice paper (Poole et al.'s q-map, the N → ∞ saddle of (9)) gives the overlaps
E[z^l_i·z^l_j/N] = K^{(l+1)}_{ij} (the book's kernel (4.118); lattice layer l is the MLP layer ℓ = l + 1 with C_W = σ_w²,
C_b = σ_b², widths N). Its leading correction is O(1/N): E[z_i·z_j/N] = K_ij + G^{1}_ij/N + O(1/N²) with G^{1} the NLO
metric (4.115) (``theory.vertex.vertex_flow(nlo=True)``), which the factorial theory neglects (it drops the
fluctuations of Σ^l). Measured against exact-conditional ensembles (``lattice.sample_conditional``, J_D = 0) at
N = 100 … 800, P inputs.

Checks, at the layers in ``layers`` and every pair i ≤ j:
* per N: |sim − (K + G¹/N)| < max_z·SE + c·max K·((ℓ−2)₊/N)² (prediction);
* across N: the intercept a of N·(sim − K) = a + b/N (weighted least squares) against G¹_ij (prediction);
* the loss as a perturbation (J_D → 0): the linear response dE_J[z^l_0·z^l_0/N]/dJ_D = −½Cov₀(z^l_0·z^l_0/N, |z^{L−1}_0|²)
  (loss on input 0, ``lattice.perturbed.loss_response``) against its large-N value −½(Π_{k=ℓ}^{L−1}χ_∥^{(k)})(2K_ℓ² + V_ℓ)
  [derived] per N (allowance c·|R|·ℓ/N) and as the N → ∞ intercept of R(N) = a + b/N (b, the O(1/N) coefficient, is
  reported in the rule);
* the correction is resolved: at the smallest N and deepest checked layer, sign(G¹)·(sim − K) > 0 at z ≥ 3 (finding:
  the mean field alone is rejected).

References:
  Schoenholz, Pennington & Sohl-Dickstein (2017), arXiv:1710.06570, eq. (9); Roberts, Yaida & Hanin (2022),
  arXiv:2106.10165, (4.104), (4.115) (docs/references.md)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import lattice as dl
from ..errors import DeepEFTInputError
from ..lattice import perturbed as lp
from ..network import MLP
from ..statistics import Z_CLAIM, Z_MAX
from . import _foundation as fd
from . import _lattice_common as lc
from .base import Experiment
from .checks import Check, greater_check, zcheck
from .config import param
from .lattice_perturbed import lattice_inputs
from .registry import register

__all__ = ["LatticeFiniteN"]


@register
class LatticeFiniteN(Experiment):
    name = "lattice-finite-n"
    description = "leading O(1/N) correction G1/N to the lattice mean field, multi-input overlaps, N = 100..800"
    references = "Schoenholz et al. 2017 (arXiv:1710.06570) eq. (9); PDLT (4.104), (4.115)"
    order = 204

    @dataclasses.dataclass(frozen=True)
    class Params:
        activation: str = param("tanh", "activation φ")
        sigma_w2: float = param(1.0, "weight variance σ_w² (tanh: 1 is critical)", min=0.0)
        sigma_b2: float = param(0.0, "bias variance σ_b²", min=0.0)
        Ns: tuple[int, ...] = param((100, 200, 400, 800), "widths N", min=2)
        L: int = param(16, "lattice layers L", min=2)
        layers: tuple[int, ...] = param((3, 7, 15), "lattice layers l checked (0-based)", min=0)
        n_inputs: int = param(2, "inputs P", min=1, max=4)
        n_networks: int = param(2000, "networks per N", min=16)
        bias_coef: float = param(4.0, "c in the O(1/N²) allowance c·max K·((ℓ−2)₊/N)²", min=0.0, analysis=True)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed", min=0)

        def __post_init__(self):
            if len(set(self.Ns)) != len(self.Ns) or len(self.Ns) < 2:
                raise DeepEFTInputError("parameter 'Ns' must list at least two distinct widths.")
            if max(self.layers) >= self.L:
                raise DeepEFTInputError(f"parameter 'layers' must lie in 0..L−1 = 0..{self.L - 1}.")

    presets = {
        "quick": {},
        "paper": {"L": 64, "layers": (7, 15, 31, 63), "n_inputs": 3, "n_networks": 40_000},
    }

    def sweep(self, p):
        return {"N": list(p.Ns)}

    def coords(self, p):
        return {"layer": list(range(p.L)), "i": list(range(p.n_inputs)), "j": list(range(p.n_inputs))}

    def theory(self, p):
        """(K, G1) (L, P, P) of the equivalent MLP (lattice layer l = MLP layer l + 1; equal widths, so both are
        independent of N)."""
        from ..theory.vertex import vertex_flow

        X = lattice_inputs(p.n_inputs)
        N = int(min(p.Ns))
        net = MLP(input_dim=X.shape[1], widths=[N] * (p.L - 1), output_dim=N, activation=p.activation, C_b=p.sigma_b2,
                  C_W=p.sigma_w2)
        flow = vertex_flow(net, X, nlo=True)
        assert flow.G1 is not None
        return flow.K, flow.G1

    def assemble(self, p, tasks, results):
        ds = super().assemble(p, tasks, results)
        K, G1 = self.theory(p)
        d3 = ("layer", "i", "j")
        ds["K"], ds["G1"] = (d3, K), (d3, G1)
        ds["resp_theory"] = (("layer",), lp.loss_response_theory(p.activation, p.sigma_w2, p.sigma_b2, p.L))
        return ds

    def compute(self, p, task, ctx):
        N = int(task["N"])
        X = lattice_inputs(p.n_inputs)
        s = dl.sample_conditional(p.activation, p.sigma_w2, p.sigma_b2, N=N, L=p.L, n_networks=p.n_networks,
                                  seed=lc.sampler_seed(ctx), X=X, dtype="float64")
        ov = lp.overlaps(s)
        if ov.shape[-1] != p.n_inputs:  # one input: r²/N as a 1×1 overlap
            ov = ov[..., None]
        d3 = ("layer", "i", "j")
        resp = lp.loss_response(s, labelled=0)
        return {"sim": (d3, ov.mean(0)), "se": (d3, ov.std(0, ddof=1) / np.sqrt(ov.shape[0])),
                "resp": (d3, resp.value), "resp_se": (d3, resp.stderr)}

    def analyze(self, p, ds):
        checks: list[Check] = []
        P = p.n_inputs
        Ns = np.asarray(p.Ns, dtype=float)
        for l in p.layers:
            ell = l + 1
            for i in range(P):
                for j in range(i, P):
                    e = ds.isel(layer=l, i=i, j=j)
                    K, G1 = float(e.K), float(e.G1)
                    Kmax = float(np.max(np.abs(np.diagonal(ds.K.values[l]))))
                    for k, N in enumerate(p.Ns):
                        checks.append(fd.biased_check(
                            f"N={N}: E[z^{l}_{i}·z^{l}_{j}/N] vs K + G1/N", K + G1 / N, e.sim.values[k], e.se.values[k],
                            scale=Kmax, depth_factor=max(ell - 2, 0), n=N, order=2, coef=p.bias_coef, max_z=p.max_z,
                            what="(K + G1/N)", scale_text="max K_ii"))
                    a, se_a, _, _ = fd.intercept_fit(1.0 / Ns, Ns * (e.sim.values - K), Ns * e.se.values)
                    checks.append(zcheck(f"layer {l}, ({i},{j}): G1 = intercept of N·(sim − K) vs 1/N", G1, a, se_a,
                                         max_z=p.max_z))
        for l in p.layers:  # the loss as a perturbation: dE_J[z_0·z_0/N]/dJ_D at 0 vs its large-N value
            e = ds.isel(layer=l, i=0, j=0)
            R = float(ds.resp_theory.values[l])
            for k, N in enumerate(p.Ns):
                checks.append(fd.biased_check(
                    f"N={N}: dE_J[z^{l}_0·z^{l}_0/N]/dJ_D at J_D=0 vs −½(Πχ_∥)(2K² + V)", R, e.resp.values[k],
                    e.resp_se.values[k], scale=abs(R), depth_factor=l + 1, n=N, order=1, coef=p.bias_coef,
                    max_z=p.max_z, what="R", scale_text="|R|"))
            a, se_a, b, se_b = fd.intercept_fit(1.0 / Ns, e.resp.values, e.resp_se.values)
            c = zcheck(f"layer {l}: N → ∞ intercept of the loss response vs −½(Πχ_∥)(2K² + V)", R, a, se_a, max_z=p.max_z)
            checks.append(dataclasses.replace(c, rule=f"{c.rule}; fit R(N) = a + b/N, b = {b:.3g} ± {se_b:.2g} "
                                                      "(the measured O(1/N) coefficient)"))
        l = max(p.layers)
        e = ds.isel(layer=l, i=0, j=0)
        k = int(np.argmin(Ns))
        sgn = float(np.sign(e.G1)) or 1.0
        checks.append(greater_check(f"N={p.Ns[k]}, layer {l}: the O(1/N) correction is resolved (mean field rejected)",
                                    sgn * float(e.sim.values[k]), float(e.se.values[k]), sgn * float(e.K), 0.0,
                                    min_z=Z_CLAIM, what="sign(G1)·(sim − K)"))
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        P = p.n_inputs
        pairs = [(i, j) for i in range(P) for j in range(i, P)]
        fig = Figure(figsize=(3.6 * len(pairs), 3.3), layout="constrained")
        axes = fig.subplots(1, len(pairs), squeeze=False)[0]
        Ns = np.asarray(p.Ns, dtype=float)
        xs = np.linspace(0.0, 1.0 / Ns.min(), 20)
        for a, (i, j) in zip(axes, pairs):
            for c, l in enumerate(p.layers):
                e = ds.isel(layer=l, i=i, j=j)
                K, G1 = float(e.K), float(e.G1)
                a.errorbar(1.0 / Ns, Ns * (e.sim.values - K), Ns * e.se.values, fmt="o", ms=3, color=f"C{c}",
                           label=f"l={l}")
                line, band = fd.line_fit_band(1.0 / Ns, Ns * (e.sim.values - K), Ns * e.se.values, xs)
                a.plot(xs, line, "-", color=f"C{c}", lw=0.8)
                a.fill_between(xs, line - band, line + band, color=f"C{c}", alpha=0.15, lw=0)
                a.plot([0.0], [G1], "*", ms=9, color=f"C{c}", mec="k", mew=0.4)
            a.axhline(0.0, color="0.6", lw=0.6)
            a.set_xlabel("1/N")
            a.set_title(f"N·(E[z_{i}·z_{j}/N] − K) (★ G1, (4.115))", fontsize=8)
        axes[0].legend(fontsize=7)
        return {"finite_n.png": fig}
