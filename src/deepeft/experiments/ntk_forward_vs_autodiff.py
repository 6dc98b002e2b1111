"""ntk-forward-vs-autodiff: the empirical NTK Ĥ^{(ℓ)} of single networks by the forward equation (8.12)
against its definition (8.5)–(8.7) by automatic differentiation, and the ensemble-mean NTK against the
frozen NTK Θ^{(ℓ)} (9.5).

One task per (activation, width): an MLP of depth L, every layer of width n, at the activation's critical
(C_b, C_W) with λ_b = λ_W = 1, on N fixed inputs.

* Forward vs autodiff, float64, ``n_check_networks`` networks of the task's ensemble, every layer:
  max_{i1 i2 α1 α2} |Ĥ_fwd − Ĥ_ad| / max |Ĥ_ad| must be < 1e-10 (both are exact; expect ~1e-14).
* E[(1/n_ℓ) Σ_i Ĥ^{(ℓ)}_{ii;αβ}] over the ensemble vs Θ^{(ℓ)}_{αβ}: |sim − Θ| < max_z·stderr +
  c·√(Θ_αα Θ_ββ)·(ℓ−2)₊/n — the mean NTK has an O(1/n) correction (Ch. 8–9) that Θ does not contain;
  layers 1–2 are exact at any width.

References:
  Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (2022), arXiv:2106.10165
  (docs/references.md)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..errors import DeepEFTInputError
from ..statistics import Z_MAX
from ..theory.kernel import frozen_ntk
from . import _foundation as fd
from .base import Experiment
from .checks import Check
from .config import param
from .registry import register

_REL_TOL = 1e-10


@register
class NTKForwardVsAutodiff(Experiment):
    name = "ntk-forward-vs-autodiff"
    description = "empirical NTK: forward equation (8.12) vs autodiff (float64); ensemble-mean NTK vs frozen NTK (9.5)"
    references = "PDLT (8.5)-(8.7), (8.12), (8.23), (9.5)"
    order = 12

    @dataclasses.dataclass(frozen=True)
    class Params:
        activations: tuple[str, ...] = param(("relu", "tanh", "gelu", "erf"), "activations, each at its critical point")
        widths: tuple[int, ...] = param((32,), "hidden (and output) widths n", min=2)
        depth: int = param(4, "number of layers L", min=2, max=32)
        n_inputs: int = param(3, "number of inputs N", min=1, max=8)
        input_dim: int = param(3, "input dimension n_0", min=1)
        n_check_networks: int = param(2, "networks whose NTK is computed both ways (float64)", min=1)
        n_networks: int = param(4096, "ensemble size for the mean NTK", min=2)
        bias_coef: float = param(1.0, "c in the finite-width allowance c·√(Θ_αα Θ_ββ)·(ℓ−2)₊/n", min=0.0, analysis=True)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            fd.check_activations(self.activations)
            if len(set(self.widths)) != len(self.widths):
                raise DeepEFTInputError(f"parameter 'widths' has repeated entries {list(self.widths)}; list each once.")

    presets = {
        "quick": {},
        "paper": {"widths": (32, 64, 128), "depth": 6, "n_inputs": 4, "n_check_networks": 4, "n_networks": 50_000},
    }

    def sweep(self, p):
        return {"activation": list(p.activations), "width": list(p.widths)}

    def coords(self, p):
        return {"layer": list(range(1, p.depth + 1)), "alpha": list(range(p.n_inputs)), "beta": list(range(p.n_inputs))}

    def compute(self, p, task, ctx):
        """Max relative forward/autodiff difference per layer; Θ; ensemble mean NTK with standard errors."""
        from ..simulate.ensemble import default_micro_batch, sample_ensemble
        from ..simulate.ntk import empirical_ntk

        net = fd.critical_net(task["activation"], task["width"], p.depth, p.input_dim)
        X = fd.fixed_inputs(p.n_inputs, p.input_dim)
        seed = fd.ensemble_seed(ctx)
        rel = np.zeros(p.depth)
        for i in range(p.n_check_networks):
            kw: dict[str, Any] = {"seed": seed, "index": i, "all_layers": True, "dtype": "float64"}
            Hf = empirical_ntk(net, X, method="forward", **kw)
            Ha = empirical_ntk(net, X, method="autodiff", **kw)
            for li in range(p.depth):
                rel[li] = max(rel[li], float(np.max(np.abs(Hf[li] - Ha[li])) / np.max(np.abs(Ha[li]))))
        B = default_micro_batch(net, p.n_inputs, ntk=True)
        ens = sample_ensemble(net, X, p.n_networks, seed, chunk_size=B, vertex=False, ntk=True)
        dims = ("layer", "alpha", "beta")
        return {
            "rel_diff": (("layer",), rel),
            "theta": (dims, frozen_ntk(net, X)),
            "simulation": (dims, ens.ntk.value),
            "stderr": (dims, ens.ntk.stderr),
        }

    def analyze(self, p, ds):
        checks = []
        for a in p.activations:
            for n in p.widths:
                pt = ds.sel(activation=a, width=n)
                r = float(pt.rel_diff.max())
                checks.append(
                    Check(
                        f"{a} n={n}: NTK forward (8.12) vs autodiff, max rel diff over layers, {p.n_check_networks} nets",
                        0.0,
                        r,
                        None,
                        None,
                        bool(np.isfinite(r) and r < _REL_TOL),
                        f"max|H_fwd − H_ad| / max|H_ad| < {_REL_TOL:g} (float64)",
                    )
                )
                T = pt.theta.values
                for li, l in enumerate(ds.layer.values):
                    for al, be in fd.upper_pairs(p.n_inputs):
                        checks.append(
                            fd.biased_check(
                                f"{a} n={n}: E[H^({l})]_{al}{be} vs Θ",
                                T[li, al, be],
                                pt.simulation.values[li, al, be],
                                pt.stderr.values[li, al, be],
                                scale=np.sqrt(T[li, al, al] * T[li, be, be]),
                                depth_factor=max(int(l) - 2, 0),
                                n=n,
                                order=1,
                                coef=p.bias_coef,
                                max_z=p.max_z,
                                what="Θ",
                                scale_text="√(Θ_αα Θ_ββ)",
                            )
                        )
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        acts = list(p.activations)
        layers = ds.layer.values
        fig = Figure(figsize=(3.4 * (len(acts) + 1), 3.4), layout="constrained")
        axes = fig.subplots(1, len(acts) + 1, squeeze=False)[0]
        ax = axes[0]
        for j, n in enumerate(p.widths):
            r = ds.rel_diff.sel(width=n).max("layer").values
            w = 0.8 / len(p.widths)
            ax.bar(np.arange(len(acts)) + (j - (len(p.widths) - 1) / 2) * w, np.maximum(r, 1e-18), width=w, label=f"n={n}")
        ax.axhline(_REL_TOL, color="crimson", lw=0.8, label=f"tolerance {_REL_TOL:g}")
        ax.set_yscale("log")
        ax.set_xticks(range(len(acts)), acts, fontsize=8)
        ax.set_ylabel("max rel |H_fwd − H_ad|")
        ax.set_title("forward (8.12) vs autodiff, float64", fontsize=8)
        ax.legend(fontsize=6)
        entries = sorted({(0, 0), (0, min(1, p.n_inputs - 1))})
        for ax, a in zip(axes[1:], acts, strict=True):
            for al, be in entries:
                T = ds.theta.sel(activation=a, alpha=al, beta=be).isel(width=0).values
                (line,) = ax.plot(layers, T, "-", lw=1.2, label=f"Θ_{al}{be}")
                for j, n in enumerate(p.widths):
                    pt = ds.sel(activation=a, width=n, alpha=al, beta=be)
                    off = 0.08 * (j - (len(p.widths) - 1) / 2)
                    ax.errorbar(
                        layers + off, pt.simulation, yerr=pt.stderr, fmt="os^dv<>"[j % 7], ms=3, ls="none",
                        color=line.get_color(), label=f"n={n}" if (al, be) == entries[0] else None,
                    )
            ax.set_xticks(layers)
            ax.set_xlabel("layer ℓ")
            ax.set_title(f"{a}: lines Θ (9.5), points ensemble mean NTK", fontsize=8)
            ax.legend(fontsize=6)
        return {"ntk.png": fig}
