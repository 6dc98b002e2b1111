"""gnn-oversmoothing: collapse of node representations in deep graph-convolution networks, theory vs ensembles.

One task per (graph, (C_W, γ)): a tanh GCN (:class:`deepeft.graph.GCN`, row-stochastic Â = D⁻¹(A + I)) on the
karate club (networkx) and on a two-block stochastic block model, node features fixed Gaussian. Theory: the node
kernel K^{(ℓ)} (``de.kernel``, theory/gnn.py) and its collapse measure 1 − ρ̄ (``gnn.mean_decorrelation``);
the spectral-gap prediction of the asymptotic rate r = (χ_⊥λ₂² + γ²)k/k⁺ (``gnn.collapse_rate``, docs/gnn.md).
Simulation: ``de.sample_ensemble`` of random GCNs of width n in G independent groups; 1 − ρ̄ of each group's
mean metric, mean ± standard error over groups (batch means).

Checks:

* prediction, every (task, layer ℓ ≥ 2): |c_sim − c_th| < max_z·SE + coef·c_th·(ℓ−1)/n. The O(ℓ/n) finite-width
  shift of the mean metric (the NLO metric G^{1}/n, implemented for GCNs but costing C(N+3, 4) Gaussian integrals
  per layer — too many for 32–34 nodes) is an allowance. Its size, measured with coef = 0 on the quick preset
  (seed 0): c_sim is systematically *below* c_th by 0.27–0.58·c_th·(ℓ−1)/n where resolved (largest for tanh at
  C_W = 6, whose |z| reaches 18 without the allowance); coef = 1 covers that with a factor ≈ 1.7 and fails a 3 %
  shift of the correlations (tests/experiments/test_experiments_gnn.py);
* prediction, every task: the slope of ln c_sim over the last ``fit_layers`` layers (weighted fit, SE from the
  group errors) vs the infinite-width curve's slope there, allowance rate_coef·|slope|·L/n;
* finding, tasks beyond the critical line (r > 1): the ensemble's 1 − ρ̄ at layer L exceeds 0.05 (z ≥ 3) and the
  infinite-width curve has settled (|slope| ≤ 0.01 per layer over its last 10 layers);
* prediction (deterministic), every task with r < 1: the spectral-gap rate ln r against the slope of the infinite-width curve
  continued to ``theory_depth`` layers (last 10 resolved layers), within ``rate_rtol``·|ln r| (the transients of
  the next eigenmodes). Measured on the quick preset: 0.0–0.3 % for γ = 0 and 2.0–2.2 % for γ = 0.6, whose mixed
  modes u₁u_jᵀ decay at a² close to r (docs/gnn.md, "A transient"; the paper preset's γ = 0.9 is slower still), so
  5 % is the transient's size, not slack; a 5 % error in r fails (test_experiments_gnn.py).

* finding, karate tasks in ``train_settings``, every depth D in ``train_depths``: GCNs of depth D (one-hot node
  features, width ``train_width``) trained by full-batch GD (:func:`deepeft.simulate.gnn_training.train_gcn_ensemble`,
  η = 1/λ_max(Θ_𝒜𝒜) from the infinite-width NTK, MSE on ±1 faction labels of ``train_per_class`` nodes per faction)
  classify the held-out nodes above chance (mean accuracy − 0.5 ≥ 3 SE). Stored alongside: the infinite-width
  collapse 1 − ρ̄ of the last hidden layer and the accuracy of the infinite-width NTK-regression predictor (t → ∞).

Figures: collapse vs depth (theory lines, ensemble points) per graph; the phase diagram r(C_W, γ) at C_b with
the critical line r = 1 and the tasks marked; trained accuracy vs depth (``training.png``) with 1 − ρ̄.

References: Kipf & Welling arXiv:1609.02907; PDLT (4.118), (5.48), (5.51), (B.11); Epping et al., NeurIPS 2024.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import DeepEFTInputError
from ..statistics import Z_MAX
from . import _foundation as fd
from .base import Experiment
from .checks import Check, close_check, greater_check
from .config import param
from .registry import register

__all__ = ["GNNOversmoothing", "graph_adjacency"]

_GRAPHS = ("karate", "sbm")


def graph_adjacency(name: str) -> np.ndarray:
    """The 0/1 adjacency of a named graph: networkx's karate club (34 nodes) or a fixed two-block SBM (largest
    connected component)."""
    import networkx as nx

    if name == "karate":
        G = nx.karate_club_graph()
    elif name == "sbm":
        G = nx.stochastic_block_model([16, 16], [[0.35, 0.04], [0.04, 0.35]], seed=7)
        G = G.subgraph(max(nx.connected_components(G), key=len)).copy()
    else:
        raise DeepEFTInputError(f"unknown graph {name!r}; choose from {_GRAPHS}.")
    return nx.to_numpy_array(G, weight=None)


def _pairs(flat) -> list[tuple[float, float]]:
    if len(flat) % 2:
        raise DeepEFTInputError(f"parameter 'cw_gamma' must list (C_W, γ) pairs flattened, got {len(flat)} numbers.")
    return [(float(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)]


@register
class GNNOversmoothing(Experiment):
    name = "gnn-oversmoothing"
    description = "GCN node-kernel collapse vs depth (karate club, SBM): theory vs ensembles, spectral-gap rate, phase diagram"
    references = "theory/gnn.py, docs/gnn.md; PDLT (4.118), (B.11); Kipf & Welling arXiv:1609.02907"
    order = 60

    @dataclasses.dataclass(frozen=True)
    class Params:
        graphs: tuple[str, ...] = param(_GRAPHS, "graphs: 'karate' (networkx karate club), 'sbm' (two-block SBM)")
        activation: str = param("tanh", "activation")
        C_b: float = param(0.1, "bias variance C_b", min=0.0)
        cw_gamma: tuple[float, ...] = param((1.0, 0.0, 2.0, 0.0, 1.0, 0.6, 6.0, 0.0), "(C_W, γ) pairs, flattened", min=0.0)
        depth: int = param(10, "number of layers L", min=3, max=200)
        width: int = param(64, "hidden width n (every layer, output included)", min=2)
        input_dim: int = param(8, "node-feature dimension n_0", min=1)
        n_networks: int = param(256, "networks per group", min=2)
        groups: int = param(4, "independent ensemble groups (batch means for the collapse measure's SE)", min=2)
        fit_layers: int = param(4, "last layers used for the decay-rate fits", min=2)
        theory_depth: int = param(30, "depth of the infinite-width curve for the asymptotic-rate check", min=10, max=400)
        collapse_coef: float = param(1.0, "allowance coef·c_th·(ℓ−1)/n on 1 − ρ̄ (measured need ≤ 0.58, module doc)",
                                     min=0.0, analysis=True)
        rate_coef: float = param(0.5, "allowance coef·|slope|·L/n on the ensemble decay rate", min=0.0, analysis=True)
        rate_rtol: float = param(0.05, "tolerance of the deep infinite-width slope vs ln r (transients)", min=0.0,
                                 analysis=True)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        train_depths: tuple[int, ...] = param((2, 6), "depths of the trained GCNs (karate club node classification)",
                                              min=2, max=64)
        train_settings: tuple[int, ...] = param((2,), "indices into the (C_W, γ) pairs that are trained", min=0)
        train_width: int = param(32, "width of the trained GCNs", min=2)
        train_networks: int = param(8, "trained networks per (setting, depth)", min=2)
        train_steps: int = param(100, "full-batch GD steps", min=1)
        train_per_class: int = param(3, "labelled nodes per faction", min=1, max=10)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            _pairs(self.cw_gamma)
            for g in self.graphs:
                if g not in _GRAPHS:
                    raise DeepEFTInputError(f"unknown graph {g!r} in 'graphs'; choose from {_GRAPHS}.")
            if self.fit_layers >= self.depth:
                raise DeepEFTInputError(f"fit_layers = {self.fit_layers} must be < depth = {self.depth}.")
            n_pairs = len(self.cw_gamma) // 2
            if any(s >= n_pairs for s in self.train_settings):
                raise DeepEFTInputError(f"train_settings {list(self.train_settings)} must index the {n_pairs} (C_W, γ) pairs.")

    presets = {
        "quick": {},
        "paper": {"depth": 24, "width": 256, "n_networks": 2000, "groups": 10, "fit_layers": 8, "theory_depth": 120,
                  "cw_gamma": (1.0, 0.0, 1.5, 0.0, 2.0, 0.0, 1.0, 0.6, 1.0, 0.9, 6.0, 0.0, 3.0, 0.6),
                  "train_depths": (2, 4, 8, 16, 24), "train_settings": (0, 3, 5), "train_width": 128,
                  "train_networks": 32, "train_steps": 400},
    }

    def sweep(self, p):
        return {"graph": list(p.graphs), "setting": list(range(len(_pairs(p.cw_gamma))))}

    def coords(self, p):
        return {"layer": list(range(1, p.depth + 1)), "group": list(range(p.groups)),
                "deep_layer": list(range(1, max(p.theory_depth, p.depth))), "train_depth": list(p.train_depths),
                "train_net": list(range(p.train_networks))}

    def _net(self, p, graph: str, setting: int, depth: int):
        from ..graph import GCN, normalize_adjacency

        C_W, gamma = _pairs(p.cw_gamma)[setting]
        A = normalize_adjacency(graph_adjacency(graph), "rw")
        return GCN(A, p.input_dim, [p.width] * (depth - 1), p.width, p.activation, C_b=p.C_b, C_W=C_W, gamma=gamma)

    def compute(self, p, task, ctx):
        import warnings

        from ..errors import DeepEFTWarning
        from ..simulate.ensemble import sample_ensemble
        from ..theory import gnn
        from ..theory.kernel import kernel

        net = self._net(p, task["graph"], task["setting"], p.depth)
        deep = self._net(p, task["graph"], task["setting"], max(p.theory_depth, p.depth))
        C_W, gamma = _pairs(p.cw_gamma)[task["setting"]]
        X = fd.fixed_inputs(net.N_nodes, p.input_dim)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeepEFTWarning)  # a collapsing kernel is the subject here
            K = kernel(net, X)
            c_deep = gnn.mean_decorrelation(kernel(deep, X)[:-1])  # hidden layers (the readout has no skip)
            lam2 = gnn.spectral_gap(net)[1]
            rate = gnn.collapse_rate(p.activation, C_W, p.C_b, gamma, lam2, depth=deep.L - 1,
                                     k1=float(np.mean(np.diagonal(K[0]))))
            base = fd.ensemble_seed(ctx)
            sims = [gnn.mean_decorrelation(sample_ensemble(net, X, p.n_networks, (base + g) % 2**32, vertex=False).metric.value)
                    for g in range(p.groups)]
        D = len(p.train_depths)
        acc, c_tr, acc_ntk = np.full((D, p.train_networks), np.nan), np.full(D, np.nan), np.full(D, np.nan)
        if task["graph"] == "karate" and task["setting"] in p.train_settings:
            acc, c_tr, acc_ntk = self._train(p, task["setting"], base)
        return {
            "accuracy": (("train_depth", "train_net"), acc),
            "c_train_theory": (("train_depth",), c_tr),
            "accuracy_ntk": (("train_depth",), acc_ntk),
            "c_theory": (("layer",), gnn.mean_decorrelation(K)),
            "c_deep": (("deep_layer",), c_deep),
            "rate": (("deep_layer",), np.append(rate.r, np.nan)),  # r^(ℓ): the step ℓ → ℓ+1 (none after the last)
            "c_group": (("group", "layer"), np.asarray(sims)),
            "lambda2": lam2,
            "n_nodes": float(net.N_nodes),
        }

    @staticmethod
    def train_split(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        """(±1 faction labels of the karate club's 34 nodes, labelled node indices): a fixed choice of ``per_class``
        nodes per faction (part of the experiment's definition, not of its seed)."""
        import networkx as nx

        G = nx.karate_club_graph()
        y = np.array([1.0 if G.nodes[i]["club"] == "Mr. Hi" else -1.0 for i in G])
        rng = np.random.default_rng(16)
        idx = [rng.choice(np.nonzero(y == s)[0], per_class, replace=False) for s in (1.0, -1.0)]
        return y, np.sort(np.concatenate(idx))

    def _train(self, p, setting: int, seed: int):
        import warnings

        from ..errors import DeepEFTWarning
        from ..graph import GCN, normalize_adjacency
        from ..simulate.gnn_training import train_gcn_ensemble
        from ..theory import gnn
        from ..theory.kernel import kernels

        C_W, gamma = _pairs(p.cw_gamma)[setting]
        A = normalize_adjacency(graph_adjacency("karate"), "rw")
        N = A.shape[0]
        X = np.eye(N)
        y, tr = self.train_split(p.train_per_class)
        te = np.setdiff1d(np.arange(N), tr)
        acc, c_tr, acc_ntk = [], [], []
        for D in p.train_depths:
            net = GCN(A, N, [p.train_width] * (D - 1), 1, p.activation, C_b=p.C_b, C_W=C_W, gamma=gamma)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeepEFTWarning)
                K, T = kernels(net, X)
            T = T[-1]
            Taa = T[np.ix_(tr, tr)]
            f = T[:, tr] @ np.linalg.lstsq(Taa, y[tr], rcond=1e-12)[0]  # infinite-width NTK regression, t → ∞
            acc_ntk.append(float(np.mean(np.sign(f[te]) == y[te])))
            c_tr.append(float(gnn.mean_decorrelation(K[-2])))  # last hidden layer
            res = train_gcn_ensemble(net, X, y, tr, p.train_networks, steps=p.train_steps,
                                     eta=1.0 / float(np.linalg.eigvalsh(Taa).max()), seed=(seed + 7919 * D) % 2**32)
            acc.append(res.accuracy)
        return np.asarray(acc), np.asarray(c_tr), np.asarray(acc_ntk)

    # -- analysis ---------------------------------------------------------------------------------
    @staticmethod
    def _sim(pt):
        c = pt.c_group.values
        return c.mean(0), c.std(0, ddof=1) / math.sqrt(c.shape[0])

    def analyze(self, p, ds):
        checks: list[Check] = []
        pairs = _pairs(p.cw_gamma)
        layers = np.arange(1, p.depth + 1, dtype=float)
        for g in p.graphs:
            for s, (cw, gm) in enumerate(pairs):
                pt = ds.sel(graph=g, setting=s)
                tag = f"{g} C_W={cw:g} γ={gm:g}"
                th = pt.c_theory.values
                m, se = self._sim(pt)
                for li in range(1, p.depth):
                    checks.append(fd.biased_check(
                        f"{tag}: 1−ρ̄^({li + 1})", th[li], m[li], se[li], scale=th[li], depth_factor=li, n=p.width,
                        order=1, coef=p.collapse_coef, max_z=p.max_z, what="1−ρ̄", scale_text="(1−ρ̄)_th"))
                # the spectral-gap rate against the deep infinite-width curve (last 10 hidden layers): the [derived] formula
                cd, rr = pt.c_deep.values, pt.rate.values
                ok = np.isfinite(cd) & (cd > 1e-13)
                last = np.nonzero(ok)[0][-10:] if np.count_nonzero(ok) >= 10 else np.nonzero(ok)[0]
                ln_r_inf = float(np.log(rr[np.isfinite(rr)][-1]))
                if ln_r_inf > 0:  # beyond the critical line: no oversmoothing, 1 − ρ̄ settles at a finite value
                    checks.append(greater_check(
                        f"{tag}: no collapse (r = {math.exp(ln_r_inf):.3f} > 1): ensemble 1−ρ̄^({p.depth}) > 0.05", m[-1],
                        se[-1], 0.05, 0.0, what="1−ρ̄ − 0.05", kind="finding"))
                    checks.append(dataclasses.replace(
                        close_check(f"{tag}: infinite-width 1−ρ̄ settles (r > 1): slope over the last 10 layers", 0.0,
                                    float(np.polyfit(np.arange(10.0), np.log(cd[-10:]), 1)[0]), atol=0.01, kind="finding"),
                        rule="|slope of ln(1−ρ̄)| ≤ 0.01 per layer: a finite-correlation phase, not a slow collapse"))
                elif last.size >= 3:
                    slope_deep = float(np.polyfit(last + 1.0, np.log(cd[last]), 1)[0])
                    ln_r = float(np.mean(np.log(rr[last[:-1]])))
                    checks.append(dataclasses.replace(
                        close_check(f"{tag}: asymptotic slope of ln(1−ρ̄) (infinite width, ℓ ≤ {last[-1] + 1}) vs ln r",
                                    ln_r, slope_deep, rtol=p.rate_rtol),
                        rule=f"|slope − ln r| ≤ {p.rate_rtol:g}·|ln r|, r = (χ_⊥λ₂² + γ²)k/k⁺ (docs/gnn.md); the allowance "
                             "covers the transients of the next modes"))
                # the ensemble's decay rate over the last layers against the infinite-width curve's
                fit = slice(p.depth - p.fit_layers, p.depth)
                slope_th = float(np.polyfit(layers[fit], np.log(th[fit]), 1)[0])
                if ln_r_inf < 0 and np.all(m[fit] > 2 * se[fit]):
                    _, _, b, se_b = fd.intercept_fit(layers[fit], np.log(m[fit]), se[fit] / m[fit])
                    checks.append(fd.biased_check(
                        f"{tag}: ensemble decay rate of 1−ρ̄, layers {fit.start + 1}–{p.depth}", slope_th, b, se_b,
                        scale=abs(slope_th), depth_factor=p.depth, n=p.width, order=1, coef=p.rate_coef, max_z=p.max_z,
                        what="infinite-width slope", scale_text="|slope|"))
        if "karate" in p.graphs:
            for s in p.train_settings:
                cw, gm = pairs[s]
                pt = ds.sel(graph="karate", setting=s)
                for D in p.train_depths:
                    a = pt.accuracy.sel(train_depth=D).values
                    checks.append(greater_check(
                        f"karate C_W={cw:g} γ={gm:g}: trained depth-{D} GCN accuracy above chance (1−ρ̄_th = "
                        f"{float(pt.c_train_theory.sel(train_depth=D)):.1e}, NTK regression "
                        f"{float(pt.accuracy_ntk.sel(train_depth=D)):.2f})", a.mean(), a.std(ddof=1) / math.sqrt(a.size),
                        0.5, 0.0, what="accuracy − 0.5", kind="finding"))
        return checks

    # -- figures ----------------------------------------------------------------------------------
    def figures(self, p, ds):
        from matplotlib.figure import Figure

        from ..theory import gnn

        pairs = _pairs(p.cw_gamma)
        layers = ds.layer.values
        fig = Figure(figsize=(4.0 * len(p.graphs), 3.4), layout="constrained")
        axes = fig.subplots(1, len(p.graphs), squeeze=False)[0]
        for j, g in enumerate(p.graphs):
            ax = axes[j]
            for s, (cw, gm) in enumerate(pairs):
                pt = ds.sel(graph=g, setting=s)
                m, se = self._sim(pt)
                ax.semilogy(layers, pt.c_theory.values, "-", color=f"C{s}", lw=1, label=f"C_W={cw:g}, γ={gm:g}")
                ax.errorbar(layers, m, se, fmt="o", ms=3, color=f"C{s}", ls="none")
            lam2 = float(ds.sel(graph=g).lambda2.values.ravel()[0])
            ax.set_title(f"{g} (N={int(ds.sel(graph=g).n_nodes.values.ravel()[0])}, λ₂={lam2:.3f}): 1−ρ̄", fontsize=8)
            ax.set_xlabel("layer ℓ")
        axes[0].set_ylabel("1 − mean node correlation")
        axes[0].legend(fontsize=6)
        out = {"collapse.png": fig}

        fig = Figure(figsize=(4.0 * len(p.graphs), 3.4), layout="constrained")
        axes = fig.subplots(1, len(p.graphs), squeeze=False)[0]
        cws = np.linspace(0.25, 8.0, 32)
        gms = np.linspace(0.0, 0.95, 20)
        CW, GM = np.meshgrid(cws, gms)
        for j, g in enumerate(p.graphs):
            lam2 = float(ds.sel(graph=g).lambda2.values.ravel()[0])
            rate = gnn.collapse_rate(p.activation, CW, p.C_b, GM, lam2, depth=60)
            ax = axes[j]
            im = ax.pcolormesh(CW, GM, np.log(np.clip(rate.r_inf, 1e-6, None)), cmap="coolwarm", vmin=-2, vmax=2,
                               shading="auto")
            ax.contour(CW, GM, rate.r_inf, levels=[1.0], colors="k", linewidths=1.2)
            for s, (cw, gm) in enumerate(pairs):
                ax.plot(cw, gm, "o", color=f"C{s}", mec="k")
            ax.set_title(f"{g}: ln r (r = 1 black: oversmoothing ↔ not)", fontsize=8)
            ax.set_xlabel("C_W")
            ax.set_ylabel("γ")
            fig.colorbar(im, ax=ax, fraction=0.05)
        out["phase.png"] = fig
        if "karate" in p.graphs and p.train_settings:
            fig = Figure(figsize=(4.6, 3.4), layout="constrained")
            ax = fig.subplots()
            ax2 = ax.twinx()
            for s in p.train_settings:
                cw, gm = pairs[s]
                pt = ds.sel(graph="karate", setting=s)
                a = pt.accuracy.values
                ax.errorbar(p.train_depths, a.mean(1), a.std(1, ddof=1) / math.sqrt(a.shape[1]), fmt="o-", ms=3,
                            color=f"C{s}", label=f"trained, C_W={cw:g}, γ={gm:g}")
                ax.plot(p.train_depths, pt.accuracy_ntk.values, "x:", color=f"C{s}", lw=0.8)
                ax2.semilogy(p.train_depths, pt.c_train_theory.values, "--", color=f"C{s}", lw=0.8)
            ax.axhline(0.5, color="gray", lw=0.5)
            ax.set_xlabel("depth L")
            ax.set_ylabel("held-out accuracy (x: NTK regression)")
            ax2.set_ylabel("1 − ρ̄ (infinite width, dashed)")
            ax.set_title("karate club factions: trained GCN accuracy vs depth", fontsize=8)
            ax.legend(fontsize=6)
            out["training.png"] = fig
        return out
