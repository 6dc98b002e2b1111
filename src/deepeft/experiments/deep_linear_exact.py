"""deep-linear-exact: exact finite-width statistics of deep linear networks (book Ch. 3,
``deepeft.theory.deep_linear``) against ensembles of explicit random networks (``deepeft.simulate``).

One task per width n: a bias-free linear MLP (C_b = 0, C_W per parameter, every layer of width n, depth L)
on N fixed inputs, ``sample_ensemble(..., vertex=True)`` over real weights. Per layer ℓ and input α:

* G_4^{(ℓ)} = E[z⁴]/3 (3.25), (3.47);
* excess kurtosis E[z⁴]/E[z²]² − 3 = 3(G_4 − G_2²)/G_2²;
* connected 4-pt G_4 − G_2² (3.28) from two estimators: single-neuron (n_{ℓ−1}/3)(E[z⁴] − 3E[z²]²) and
  neuron pairs n_{ℓ−1} Cov(z_i², z_j²) (4.77), each divided by n_{ℓ−1};
* Var O^{(ℓ)}, O = (1/n_ℓ) Σ_j z_j² (3.33), from the next layer's stochastic metric Ĝ^{(ℓ+1)} = C_W O^{(ℓ)}:
  Var O^{(ℓ)} = V^{(ℓ+1)}_{(αα)(αα)} / (n_ℓ C_W²) (4.76), ℓ = 1..L−1;
* the multi-input vertex V^{(ℓ)}_{(α1α2)(α3α4)} = n_{ℓ−1} Cov(Ĝ, Ĝ) (4.76), all distinct entries, ℓ ≥ 2.

The theory is exact at every width, so every check is a plain z-score |z| < max_z. The figure shows the
non-Gaussianity G_4/G_2² − 1 = (1 + 2/n)^{ℓ−1} − 1 (exact, dashed per width; points: ensembles) against
r = (ℓ − 1)/n, collapsing onto the double-scaling curve e^{2r} − 1 (3.56) as n grows (r = L/n of the book
up to the O(1/n) shift ℓ ↔ ℓ − 1, which is what makes finite widths collapse).

References:
  Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (2022), arXiv:2106.10165
  (docs/references.md)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DeepEFTInputError
from ..network import MLP
from ..statistics import Z_MAX
from ..theory import deep_linear as dl
from . import _foundation as fd
from .base import Experiment
from .checks import zcheck
from .config import param
from .registry import register


def _net(p, width: int) -> MLP:
    return MLP(input_dim=p.input_dim, widths=[width] * (p.depth - 1), output_dim=width, activation="linear", C_W=p.C_W)


def _vertex_entries(N: int) -> list[tuple[int, int, int, int]]:
    """Distinct V_(α1α2)(α3α4) under α1↔α2, α3↔α4 and (12)↔(34)."""
    pairs = fd.upper_pairs(N)
    return [(*pairs[i], *pairs[j]) for i in range(len(pairs)) for j in range(i, len(pairs))]


@register
class DeepLinearExact(Experiment):
    name = "deep-linear-exact"
    description = "deep linear networks: exact finite-width G4, kurtosis, connected 4-pt, Var O, vertex vs ensembles"
    references = "PDLT (3.15), (3.25), (3.28), (3.33), (3.47), (3.56), (4.76), (4.77)"
    order = 11

    @dataclasses.dataclass(frozen=True)
    class Params:
        widths: tuple[int, ...] = param((8, 16, 32), "widths n (every layer, output included)", min=2)
        depth: int = param(6, "number of layers L", min=2, max=64)
        n_inputs: int = param(2, "number of inputs N", min=1, max=6)
        input_dim: int = param(3, "input dimension n_0", min=1)
        C_W: float = param(1.0, "weight variance C_W (critical: 1)", min=0.0)
        n_networks: int = param(20_000, "networks per width", min=2)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            if len(set(self.widths)) != len(self.widths):
                raise DeepEFTInputError(f"parameter 'widths' has repeated entries {list(self.widths)}; list each once.")
            if self.C_W <= 0:
                raise DeepEFTInputError(f"parameter 'C_W' must be > 0, got {self.C_W}.")

    presets = {"quick": {}, "paper": {"widths": (8, 16, 32, 64), "depth": 8, "n_inputs": 3, "n_networks": 200_000}}

    def sweep(self, p):
        return {"width": list(p.widths)}

    def coords(self, p):
        return {
            "layer": list(range(1, p.depth + 1)),
            "input": list(range(p.n_inputs)),
            "entry": ["".join(map(str, e)) for e in _vertex_entries(p.n_inputs)],
        }

    def compute(self, p, task, ctx):
        """Exact theory and ensemble estimates (value, stderr) of every compared quantity."""
        from ..simulate.ensemble import default_micro_batch, sample_ensemble

        net = _net(p, task["width"])
        X = fd.fixed_inputs(p.n_inputs, p.input_dim)
        L, N = p.depth, p.n_inputs
        n_prev = np.asarray(net.n[:-1], dtype=np.float64)[:, None]  # n_{ℓ−1}, ℓ = 1..L
        B = default_micro_batch(net, N)
        ens = sample_ensemble(net, X, p.n_networks, fd.ensemble_seed(ctx), chunk_size=B, vertex=True)

        th = {k: np.zeros((L, N)) for k in ("G4", "kurtosis", "connected4", "varO")}
        for a in range(N):
            th["G4"][:, a] = dl.G2m(net, 2, X[a])
            th["kurtosis"][:, a] = dl.excess_kurtosis(net, X[a])
            th["connected4"][:, a] = dl.connected4(net, X[a])
            th["varO"][:, a] = dl.var_O(net, X[a])
        th["connected4_pairs"] = th["connected4"]

        idx = np.arange(N)
        Vd, Vd_se = ens.vertex.value[:, idx, idx, idx, idx], ens.vertex.stderr[:, idx, idx, idx, idx]
        scale = n_prev[1:] * p.C_W**2  # n_ℓ C_W^2 for ℓ = 1..L−1 (linear slope 1)
        nan_row = np.full((1, N), np.nan)
        sim = {
            "G4": (ens.z4.value / 3, ens.z4.stderr / 3),
            "kurtosis": (ens.kurtosis.value, ens.kurtosis.stderr),
            "connected4": (ens.vertex_kurtosis.value / n_prev, ens.vertex_kurtosis.stderr / n_prev),
            "connected4_pairs": (ens.vertex_pairs.value / n_prev, ens.vertex_pairs.stderr / n_prev),
            "varO": (np.vstack([Vd[1:] / scale, nan_row]), np.vstack([Vd_se[1:] / scale, nan_row])),
        }
        ents = np.array(_vertex_entries(N)).T
        V_th = dl.vertex(net, X)[(slice(None), *ents)]
        out = {
            "V_theory": (("layer", "entry"), V_th),
            "V_sim": (("layer", "entry"), ens.vertex.value[(slice(None), *ents)]),
            "V_stderr": (("layer", "entry"), ens.vertex.stderr[(slice(None), *ents)]),
            "G2": (("layer", "input"), np.stack([dl.G2m(net, 1, x) for x in X], axis=1)),
        }
        for k in th:
            out[f"{k}_theory"] = (("layer", "input"), th[k])
            out[f"{k}_sim"] = (("layer", "input"), sim[k][0])
            out[f"{k}_stderr"] = (("layer", "input"), sim[k][1])
        return out

    _LABELS = {
        "G4": "G_4 = E[z^4]/3",
        "kurtosis": "excess kurtosis",
        "connected4": "G_4 − G_2² (single neuron)",
        "connected4_pairs": "G_4 − G_2² (neuron pairs)",
        "varO": "Var O",
    }

    def analyze(self, p, ds):
        checks = []
        for n in p.widths:
            pt = ds.sel(width=n)
            for key, label in self._LABELS.items():
                for l in ds.layer.values:
                    for a in range(p.n_inputs):
                        s = pt[f"{key}_sim"].sel(layer=l, input=a)
                        if not np.isfinite(s):  # Var O of the last layer has no next-layer metric
                            continue
                        checks.append(
                            zcheck(
                                f"n={n}: {label} ℓ={l} x{a}",
                                pt[f"{key}_theory"].sel(layer=l, input=a),
                                s,
                                pt[f"{key}_stderr"].sel(layer=l, input=a),
                                max_z=p.max_z,
                            )
                        )
            for l in ds.layer.values[1:]:
                for e in ds.entry.values:
                    q = pt.sel(layer=l, entry=e)
                    checks.append(zcheck(f"n={n}: V^({l})_({e[:2]})({e[2:]})", q.V_theory, q.V_sim, q.V_stderr, max_z=p.max_z))
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10.0, 3.8), layout="constrained")
        ax, ax2 = fig.subplots(1, 2)
        layers = ds.layer.values.astype(float)
        rmax = (layers.max() - 1) / min(p.widths)
        r = np.linspace(0.0, rmax, 100)
        ax.plot(r, dl.double_scaling_connected4(r), "k-", lw=1.2, label="$e^{2r} - 1$ (3.56)")
        for n in p.widths:
            pt = ds.sel(width=n, input=0)
            G2sq = pt.G2.values**2
            y, se = pt.connected4_sim.values / G2sq, pt.connected4_stderr.values / G2sq
            rn = (layers - 1) / n
            (line,) = ax.plot(rn, pt.connected4_theory.values / G2sq, "--", lw=0.9)
            ax.errorbar(rn, y, yerr=se, fmt="o", ms=3.5, color=line.get_color(), label=f"n={n}: $(1+2/n)^{{\\ell-1}} - 1$")
        ax.set_xlabel("r = (ℓ − 1) / n  (hidden layers of width n passed, per unit width)")
        ax.set_ylabel("G_4/G_2² − 1")
        ax.set_title("non-Gaussianity collapses on the double-scaling curve", fontsize=9)
        ax.legend(fontsize=7)

        keys = list(self._LABELS)
        for j, key in enumerate(keys):
            z = ((ds[f"{key}_sim"] - ds[f"{key}_theory"]) / ds[f"{key}_stderr"]).values.ravel()
            z = z[np.isfinite(z)]
            ax2.plot(np.full(z.size, j) + np.linspace(-0.3, 0.3, z.size), z, "o", ms=2.5)
        zV = ((ds.V_sim - ds.V_theory) / ds.V_stderr).isel(layer=slice(1, None)).values.ravel()
        zV = zV[np.isfinite(zV)]
        ax2.plot(np.full(zV.size, len(keys)) + np.linspace(-0.3, 0.3, zV.size), zV, "o", ms=2.5)
        ax2.axhline(p.max_z, color="crimson", lw=0.8)
        ax2.axhline(-p.max_z, color="crimson", lw=0.8)
        ax2.set_xticks(range(len(keys) + 1), [*(self._LABELS[k] for k in keys), "vertex V"], rotation=25, fontsize=7)
        ax2.set_ylabel("z = (sim − exact) / stderr")
        ax2.set_title("z-scores of all checks", fontsize=9)
        return {"deep_linear.png": fig}
