"""kernel-vs-ensemble: the next-to-leading-order metric G^{(ℓ)} = K^{(ℓ)} + G^{1}(ℓ)/n_{ℓ−1} (4.104), (4.115)
(K^{(ℓ)} the infinite-width kernel (4.118), G^{1} from ``theory.nlo_metric``) against the
ensemble mean of the metric (1/n_ℓ) Σ_i z^{(ℓ)}_{i;α} z^{(ℓ)}_{i;β} (4.73) over random MLPs at criticality.

One task per (activation, width): an MLP of depth L with every layer of width n at the activation's
critical (C_b, C_W), N fixed inputs, ``sample_ensemble`` for the simulation and ``kernel`` (plus
``nlo_metric``) for the theory, both inside the task. When the NLO theory is unavailable the task fails
(no fallback to K alone).

Checks, every layer ℓ and entry α ≤ β: |sim − (K + G^{1}/n)| < max_z·stderr + c·√(K_αα K_ββ)·((ℓ−2)₊/n)²
(the O(1/n²) remainder, stated in each rule; layers 1–2 are exact at any width). Also the finite-width
slope: n·(sim − K) = G^{1} + O(1/n), fitted across widths (intercept of a line in 1/n) at the last layer,
against G^{1}.

References:
  Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (2022), arXiv:2106.10165
  (docs/references.md)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DeepEFTInputError
from ..statistics import Z_MAX
from ..theory.kernel import kernel
from . import _foundation as fd
from .base import Experiment
from .checks import zcheck
from .config import param
from .registry import register


@register
class KernelVsEnsemble(Experiment):
    name = "kernel-vs-ensemble"
    description = "kernel K^(l) (4.118) [+ G1/n (4.115)] vs ensemble mean metric of random MLPs at criticality"
    references = "PDLT (4.73), (4.104), (4.115), (4.118); critical (C_b, C_W) from §5"
    order = 10

    @dataclasses.dataclass(frozen=True)
    class Params:
        activations: tuple[str, ...] = param(("relu", "tanh", "gelu", "erf"), "activations, each at its critical point")
        widths: tuple[int, ...] = param((16, 48), "hidden (and output) widths n", min=2)
        depth: int = param(5, "number of layers L", min=2, max=64)
        n_inputs: int = param(3, "number of inputs N", min=1, max=8)
        input_dim: int = param(3, "input dimension n_0", min=1)
        n_networks: int = param(8192, "networks per (activation, width)", min=2)
        method: str = param("weights", "sample_ensemble method", choices=("weights", "metric"))
        bias_coef: float = param(1.0, "c in the allowance c·√(K_αα K_ββ)·((ℓ−2)₊/n)² for the O(1/n²) remainder of "
                                      "K + G1/n", min=0.0, analysis=True)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            fd.check_activations(self.activations)
            if len(set(self.widths)) != len(self.widths):
                raise DeepEFTInputError(f"parameter 'widths' has repeated entries {list(self.widths)}; list each once.")

    presets = {
        "quick": {},
        "paper": {"widths": (16, 32, 64, 128), "depth": 6, "n_inputs": 4, "n_networks": 100_000},
    }

    def sweep(self, p):
        return {"activation": list(p.activations), "width": list(p.widths)}

    def coords(self, p):
        return {"layer": list(range(1, p.depth + 1)), "alpha": list(range(p.n_inputs)), "beta": list(range(p.n_inputs))}

    def compute(self, p, task, ctx):
        """Theory K (and K + G1/n) and the ensemble mean metric with standard errors, (L, N, N) each."""
        from ..simulate.ensemble import default_micro_batch, sample_ensemble

        net = fd.critical_net(task["activation"], task["width"], p.depth, p.input_dim)
        X = fd.fixed_inputs(p.n_inputs, p.input_dim)
        K = kernel(net, X)
        G = fd.nlo_metric(net, X)  # K + G1/n; raises when the NLO theory is unavailable
        B = default_micro_batch(net, p.n_inputs, method=p.method)
        # chunk_size = micro_batch: a single compiled kernel per network shape (results do not depend on it)
        ens = sample_ensemble(net, X, p.n_networks, fd.ensemble_seed(ctx), chunk_size=B, vertex=False, method=p.method)
        dims = ("layer", "alpha", "beta")
        return {
            "K": (dims, K),
            "G_nlo": (dims, G),
            "simulation": (dims, ens.metric.value),
            "stderr": (dims, ens.metric.stderr),
        }

    def analyze(self, p, ds):
        if not np.all(np.isfinite(ds.G_nlo.values)):
            raise RuntimeError("kernel-vs-ensemble: the stored NLO metric K + G1/n has non-finite entries; rerun with "
                               "--overwrite (the comparison is always against K + G1/n, never K alone).")
        what, order = "(K + G1/n)", 2
        checks = []
        for a in p.activations:
            for n in p.widths:
                pt = ds.sel(activation=a, width=n)
                th = pt.G_nlo.values
                K = pt.K.values
                for li, l in enumerate(ds.layer.values):
                    for al, be in fd.upper_pairs(p.n_inputs):
                        checks.append(
                            fd.biased_check(
                                f"{a} n={n}: G^({l})_{al}{be}",
                                th[li, al, be],
                                pt.simulation.values[li, al, be],
                                pt.stderr.values[li, al, be],
                                scale=np.sqrt(K[li, al, al] * K[li, be, be]),
                                depth_factor=max(int(l) - 2, 0),
                                n=n,
                                order=order,
                                coef=p.bias_coef,
                                max_z=p.max_z,
                                what=what,
                            )
                        )
        if len(p.widths) >= 2 and p.depth >= 3:
            for a in p.activations:
                for al, be in fd.upper_pairs(p.n_inputs):
                    fit = self._slope_fit(ds, a, al, be)
                    checks.append(
                        zcheck(f"{a}: G1^({p.depth})_{al}{be} from n·(sim − K) vs 1/n", fit["G1"], fit["a"], fit["se_a"],
                               max_z=p.max_z)
                    )
        return checks

    def _slope_fit(self, ds, a, al, be) -> dict:
        """Intercept a of n·(sim − K) = a + b/n at the last layer, and G1 = n·(G_nlo − K) (width-independent)."""
        pt = ds.sel(activation=a, layer=ds.layer.values[-1], alpha=al, beta=be)
        n = pt.width.values.astype(float)
        y = n * (pt.simulation.values - pt.K.values)
        se = n * pt.stderr.values
        fa, sa, fb, sb = fd.intercept_fit(1.0 / n, y, se)
        G1 = n * (pt.G_nlo.values - pt.K.values)
        return {"n": n, "y": y, "se": se, "a": fa, "se_a": sa, "b": fb, "G1": float(G1[-1])}

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        acts = list(p.activations)
        entries = sorted({(0, 0), (0, min(1, p.n_inputs - 1)), (p.n_inputs - 1, p.n_inputs - 1)})
        layers = ds.layer.values
        fig = Figure(figsize=(3.6 * len(acts), 3.4), layout="constrained")
        axes = fig.subplots(1, len(acts), squeeze=False)[0]
        for ax, a in zip(axes, acts, strict=True):
            for k, (al, be) in enumerate(entries):
                K = ds.K.sel(activation=a, alpha=al, beta=be).isel(width=0).values
                (line,) = ax.plot(layers, K, "-", lw=1.2, label=f"K_{al}{be}")
                for j, n in enumerate(p.widths):
                    pt = ds.sel(activation=a, width=n, alpha=al, beta=be)
                    off = 0.08 * (j - (len(p.widths) - 1) / 2)
                    ax.errorbar(
                        layers + off, pt.simulation, yerr=pt.stderr, fmt="os^dv<>"[j % 7], ms=3, color=line.get_color(),
                        label=f"n={n}" if k == 0 else None, ls="none",
                    )
                    if j == 0:
                        ax.plot(layers, pt.G_nlo, ":", lw=1.0, color=line.get_color())
            ax.set_xlabel("layer ℓ")
            ax.set_title(f"{a}: lines K (4.118), dotted K+G1/n (smallest n)", fontsize=8)
            ax.set_xticks(layers)
        axes[0].set_ylabel("E[(1/n) Σ z_α z_β]")
        axes[0].legend(fontsize=6)
        out = {"kernel.png": fig}

        if len(p.widths) >= 2 and p.depth >= 3:
            rfig = Figure(figsize=(3.6 * len(acts), 3.2), layout="constrained")
            raxes = rfig.subplots(1, len(acts), squeeze=False)[0]
            xs = np.linspace(0.0, 1.0 / min(p.widths), 40)
            for ax, a in zip(raxes, acts, strict=True):
                for al, be in entries:
                    f = self._slope_fit(ds, a, al, be)
                    eb = ax.errorbar(1.0 / f["n"], f["y"], yerr=f["se"], fmt="o", ms=3.5, capsize=2,
                                     label=f"entry {al}{be}: n(sim−K) ± n·stderr")
                    c = eb[0].get_color()
                    line, band = fd.line_fit_band(1.0 / f["n"], f["y"], f["se"], xs)
                    ax.plot(xs, line, "-", lw=0.8, color=c)
                    ax.fill_between(xs, line - band, line + band, color=c, alpha=0.15, lw=0)
                    ax.plot(xs, np.full_like(xs, f["G1"]), "--", lw=0.8, color=c)
                    ax.plot([0.0], [f["G1"]], "*", ms=9, color=c, mec="k", mew=0.4)
                ax.axhline(0.0, color="0.6", lw=0.6)
                ax.set_xlabel("1/n")
                ax.set_xlim(-0.05 * xs[-1], 1.08 * xs[-1])
                ax.set_title(f"{a}, ℓ = {p.depth}", fontsize=9)
            exact = "; with 2 widths the line passes through both points (no check of linearity)" if len(p.widths) == 2 else ""
            rfig.suptitle(f"finite-width residual n·(sim − K) vs 1/n, fit a + b/n ± 1σ{exact}", fontsize=8.5)
            raxes[0].set_ylabel("n · (sim − K)")
            from matplotlib.lines import Line2D
            from matplotlib.patches import Patch

            keys = [Line2D([], [], color="0.3", lw=0.8, label="weighted fit a + b/n"),
                    Patch(color="0.3", alpha=0.15, label="fit ± 1σ (intercept a is checked)"),
                    Line2D([], [], color="0.3", ls="--", marker="*", mec="k", mew=0.4, lw=0.8,
                           label="theory G1 (4.115), width-independent")]
            handles, _ = raxes[0].get_legend_handles_labels()
            raxes[0].legend(handles=handles + keys, fontsize=6.5)
            out["residual.png"] = rfig

        zfig = Figure(figsize=(7.0, 3.4), layout="constrained")
        ax = zfig.subplots()
        for j, a in enumerate(acts):
            for k, (var, mk, lab) in enumerate((("K", "o", "vs K"), ("G_nlo", "s", "vs K + G1/n"))):
                z = ((ds.simulation - ds[var]) / ds.stderr).sel(activation=a).transpose("width", "layer", "alpha", "beta")
                z = z.values.reshape(len(p.widths), -1)
                for w in range(len(p.widths)):
                    v = z[w][np.isfinite(z[w])]
                    x = j + 0.4 * (k - 0.5) + 0.15 * (w - (len(p.widths) - 1) / 2) + np.linspace(-0.05, 0.05, v.size)
                    ax.plot(x, v, mk, ms=2.5, mfc="none" if var == "K" else None, color=f"C{k}",
                            label=lab if (j, w) == (0, 0) else None)
        ax.axhline(p.max_z, color="crimson", lw=0.8)
        ax.axhline(-p.max_z, color="crimson", lw=0.8)
        ax.set_xticks(range(len(acts)), acts)
        ax.set_ylabel("z = (sim − theory) / stderr")
        ax.set_title(f"all layers and entries, widths {list(p.widths)}: the 1/n bias of K vs K + G1/n", fontsize=8)
        ax.legend(fontsize=7)
        out["zscores.png"] = zfig
        return out
