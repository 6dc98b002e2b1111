"""criticality: book Ch. 5 — criticality curves (analogues of Figs 5.1–5.3), the kernel K^{(ℓ)} below, at and
above the critical C_W against ensembles of random networks, and the book's printed constants recomputed live.

* **Figures 5.1–5.3** (theory): the χ_⊥* = 1 and χ_∥* = 1 lines of tanh in the (C_W, C_b) plane and the ratio
  χ_⊥/χ_∥ (5.73) against K* for tanh, sigmoid, softplus, SWISH and GELU, drawn by
  ``theory.plots_criticality`` on the critical points of ``theory.criticality.criticality``.
* **Phases** (simulation): one task per (activation, C_W/C_W*), (C_b*, C_W*) the critical point PRINTED in the
  book (:data:`BOOK_CRITICAL`, not the solver under test): an MLP of depth L and width n at C_b = C_b* and
  C_W = r·C_W*, one input with |x|²/n₀ = 1. Theory: the single-input recursion (5.108), (5.110) →
  E[z²] = K^{(ℓ)} + G^{1}(ℓ)/n (4.104); simulation: E[Ĝ^{(ℓ)}] from ``sample_ensemble``. Check per layer
  ℓ ≥ 2: |sim − (K + G1/n)| < max_z·SE + c·K^{(ℓ)}·((ℓ−2)₊/n)² (``_foundation.biased_check``).
* **Criticality located from the ensembles** (simulation): per (activation, C_W/C_W*) a two-layer probe ensemble
  with C_W^{(1)} = C_W*, C_W^{(2)} = r·C_W* (printed values) and one input with K^{(1)} = K* (printed; tanh:
  K* = 0, probed at K = 1e-6), whose layer Jacobians give χ̂_⊥ = ‖W^{(2)} diag σ′(z^{(1)})‖²_F / n
  (``simulate.empirical_chi_perp``, drawn weights, not C_W). Check per r: χ̂_⊥ vs C_W⟨σ′σ′⟩_{K*} (5.50). Then a
  weighted fit χ̂_⊥ = a·r (exact: z^{(1)} does not depend on r) locates χ_⊥ = 1 at Ĉ_W = C_W*/â ± SE, checked
  against the criticality solver's C_W* (the code under test): a 1 % slip in the solver is a ≳ 10σ failure.
* **Book constants**: SWISH (5.101) and GELU (5.105) critical points and ã₁, GELU's (−a₁) = −6/π, the tanh
  V/K², bare G^{1}, ℓK and (V/K²)/ℓ tables, the softplus ratio, each against the printed number with the
  tolerance of its last printed digit (half a unit in the last place).

References:
  Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (2022), arXiv:2106.10165
  (docs/references.md)
"""

from __future__ import annotations

import dataclasses
import decimal
import math

import numpy as np

from ..errors import DeepEFTInputError
from ..network import MLP
from ..statistics import Z_MAX
from . import _foundation as fd
from .base import Experiment
from .checks import Check, zcheck
from .config import param
from .registry import register

__all__ = ["BOOK_CONSTANTS", "BOOK_CRITICAL", "CriticalityCurves", "book_constants", "book_critical"]

# (label, printed value, where it is printed[, tolerance]). The computed value comes from ``_computed`` under the
# same label; the tolerance defaults to half a unit in the printed last digit.
BOOK_CONSTANTS: tuple[tuple, ...] = (
    ("SWISH K*", "14.32017362", "(5.101)"),
    ("SWISH C_b", "0.55514317", "(5.101)"),
    ("SWISH C_W", "1.98800468", "(5.101)"),
    ("SWISH (−ã₁)", "-2.84979219e-6", "§5.3.4"),
    ("GELU K*", "3.56155281", "(3+√17)/2, §5.3.4"),
    ("GELU C_b", "0.17292239", "(5.105)"),
    ("GELU C_W", "1.98305826", "(5.105)"),
    ("GELU (−ã₁)", "1.43626419e-4", "§5.3.4"),
    ("GELU (−a₁) at K*=0", repr(-6.0 / math.pi), "§5.3.4: exactly −6/π", 1e-12),
    ("tanh C_W", "1", "(5.90): exactly 1", 1e-12),
    ("ReLU C_W", "2", "(5.67): exactly 2", 1e-12),
    ("tanh V/K² ℓ=2", "0.627", "digest §5 (K¹ = 1)"),
    ("tanh V/K² ℓ=3", "1.213", "digest §5"),
    ("tanh V/K² ℓ=5", "2.408", "digest §5"),
    ("tanh V/K² ℓ=10", "5.52", "digest §5"),
    ("tanh V/K² ℓ=30", "18.5", "digest §5"),
    ("tanh V/K² ℓ=100", "64.8", "digest §5"),
    ("tanh G1 ℓ=3", "-0.031", "digest §5 (bare)"),
    ("tanh G1 ℓ=5", "-0.068", "digest §5"),
    ("tanh G1 ℓ=10", "-0.107", "digest §5"),
    ("tanh G1 ℓ=30", "-0.143", "digest §5"),
    ("tanh G1 ℓ=100", "-0.159", "digest §5"),
    ("tanh ℓK ℓ=1e2", "0.512", "digest §5"),
    ("tanh ℓK ℓ=1e3", "0.5017", "digest §5"),
    ("tanh ℓK ℓ=1e4", "0.5002", "digest §5"),
    ("tanh (V/K²)/ℓ ℓ=1e2", "0.648", "digest §5"),
    ("tanh (V/K²)/ℓ ℓ=1e3", "0.664", "digest §5"),
    ("tanh (V/K²)/ℓ ℓ=1e4", "0.6664", "digest §5"),
    ("softplus χ⊥/χ∥ K→0", "0.59", "digest §4 (K = 1e-7)"),
    ("softplus χ⊥/χ∥ K=1", "0.65", "digest §4"),
    ("softplus χ⊥/χ∥ K=10", "0.79", "digest §4"),
    ("softplus χ⊥/χ∥ K=50", "0.89", "digest §4"),
)


# (C_b, C_W) of each activation's critical point as printed in the book: the simulated networks use these, not the
# values computed by ``theory.criticality`` (the code under test, checked against the same numbers above), so a slip
# in the criticality solver cannot move the simulations along with the theory.
BOOK_CRITICAL: dict[str, tuple[float, float]] = {
    "tanh": (0.0, 1.0),  # (5.90)
    "relu": (0.0, 2.0),  # (5.67)
    "gelu": (0.17292239, 1.98305826),  # (5.105)
    "swish": (0.55514317, 1.98800468),  # (5.101)
}


# K* printed with those critical points (tanh: the K* = 0 class; ReLU: scale-invariant, any K* — 1 is used).
BOOK_K_STAR: dict[str, float] = {"tanh": 0.0, "relu": 1.0, "gelu": 3.56155281, "swish": 14.32017362}
PROBE_K_MIN = 1e-6  # the tanh probe's K^{(1)} (K* = 0 itself has σ′ ≡ 1 and no fluctuation): bias 2K ≪ SE


def book_critical(name: str) -> tuple[float, float]:
    """(C_b, C_W) of ``name``'s critical point as printed in the book (:data:`BOOK_CRITICAL`)."""
    if name not in BOOK_CRITICAL:
        raise DeepEFTInputError(f"criticality: activation {name!r} has no critical point printed in the book; "
                                f"use one of {', '.join(BOOK_CRITICAL)}.")
    return BOOK_CRITICAL[name]


def _half_ulp(printed: str) -> float:
    """Half a unit in the last printed place of ``printed`` (the rounding tolerance of a printed number)."""
    exponent = decimal.Decimal(printed).as_tuple().exponent
    assert isinstance(exponent, int), printed  # a finite printed number
    return 0.5 * 10.0**exponent


def _computed() -> dict[str, float]:
    """Every BOOK_CONSTANTS label computed now (criticality and single-input recursions, float64)."""
    from ..theory.criticality import criticality
    from ..theory.single_input import helper_functions, single_input_recursion

    out: dict[str, float] = {}
    for name, lab in (("swish", "SWISH"), ("gelu", "GELU")):
        crit = criticality(name, exponents=False)
        p = crit.critical
        assert p is not None and p.K_star is not None and p.a1_tilde is not None  # printed in (5.101), (5.105)
        out[f"{lab} K*"], out[f"{lab} C_b"], out[f"{lab} C_W"] = p.K_star, p.C_b, p.C_W
        out[f"{lab} (−ã₁)"] = -p.a1_tilde
        if name == "gelu":
            zero = [q for q in crit.points if q.K_star == 0.0]
            out["GELU (−a₁) at K*=0"] = -float(zero[0].a1_tilde) if zero and zero[0].a1_tilde is not None else math.nan
    for name, lab in (("tanh", "tanh"), ("relu", "ReLU")):
        q = criticality(name, exponents=False).critical
        out[f"{lab} C_W"] = q.C_W if q is not None else math.nan
    r = single_input_recursion("tanh", 1.0, 10_000, C_b=0.0, C_W=1.0)
    vk = r.V / r.K**2
    for l in (2, 3, 5, 10, 30, 100):
        out[f"tanh V/K² ℓ={l}"] = vk[l - 1]
    for l in (3, 5, 10, 30, 100):
        out[f"tanh G1 ℓ={l}"] = r.G1[l - 1]
    for e in (2, 3, 4):
        l = 10**e
        out[f"tanh ℓK ℓ=1e{e}"] = l * r.K[l - 1]
        out[f"tanh (V/K²)/ℓ ℓ=1e{e}"] = vk[l - 1] / l
    ratio = helper_functions("softplus", np.array([1e-7, 1.0, 10.0, 50.0]), 1.0).ratio
    for lab, v in zip(("K→0", "K=1", "K=10", "K=50"), ratio, strict=True):
        out[f"softplus χ⊥/χ∥ {lab}"] = v
    return {k: float(v) for k, v in out.items()}


def book_constants() -> list[tuple[str, float, float, float, str]]:
    """(label, printed, computed, tolerance, source) for every entry of :data:`BOOK_CONSTANTS`."""
    comp = _computed()
    return [(e[0], float(e[1]), comp[e[0]], e[3] if len(e) > 3 else _half_ulp(e[1]), e[2]) for e in BOOK_CONSTANTS]


@register
class CriticalityCurves(Experiment):
    name = "criticality"
    description = "Figs 5.1-5.3 criticality curves; K^(l) below/at/above critical C_W vs ensembles; book constants recomputed"
    references = "PDLT (5.55)-(5.105), (5.108)-(5.110), Figs 5.1-5.3"
    order = 21

    @dataclasses.dataclass(frozen=True)
    class Params:
        activations: tuple[str, ...] = param(("tanh",), "activations of the phase sweep (each needs a critical point)")
        cw_ratios: tuple[float, ...] = param((0.8, 1.0, 1.25), "C_W / C_W* (below, at, above critical)", min=0.01)
        width: int = param(64, "hidden (and output) width n", min=2)
        depth: int = param(10, "number of layers L", min=2, max=200)
        input_dim: int = param(4, "input dimension n_0 (one input, |x|²/n_0 = 1)", min=1)
        n_networks: int = param(8192, "networks per (activation, C_W)", min=2)
        probe_networks: int = param(4096, "networks per (activation, C_W) of the χ_⊥ probe (criticality located "
                                          "from the ensembles)", min=2)
        bias_coef: float = param(2.0, "c in the allowance c·K·((ℓ−2)₊/n)² for the O(1/n²) remainder", min=0.0, analysis=True)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            fd.check_activations(self.activations)
            if len(set(self.cw_ratios)) != len(self.cw_ratios):
                raise DeepEFTInputError(f"parameter 'cw_ratios' has repeated entries {list(self.cw_ratios)}; list each once.")

    presets = {
        "quick": {},
        "paper": {
            "activations": ("tanh", "relu", "gelu"),  # relu: E[z²] = K exactly at any width
            "cw_ratios": (0.8, 0.9, 1.0, 1.1, 1.25),
            "width": 256,
            "depth": 30,
            "n_networks": 100_000,
        },
    }

    def sweep(self, p):
        for a in p.activations:  # before any task runs
            book_critical(a)  # raises DeepEFTInputError for activations without a printed critical point
        return {"activation": list(p.activations), "cw_ratio": list(p.cw_ratios)}

    def coords(self, p):
        return {"layer": list(range(1, p.depth + 1))}

    @staticmethod
    def net(p, act: str, ratio: float) -> MLP:
        C_b, C_W = book_critical(act)  # printed values: independent of the criticality solver under test
        return MLP(input_dim=p.input_dim, widths=[p.width] * (p.depth - 1), output_dim=p.width, activation=act, C_b=C_b,
                   C_W=ratio * C_W)

    @staticmethod
    def probe_K(act: str, C_b: float) -> float:
        return max(BOOK_K_STAR[act], PROBE_K_MIN + C_b)

    def chi_probe(self, p, act: str, ratio: float, seed: int):
        """χ̂_⊥^{(1)} of a two-layer probe: C_W^{(1)} = C_W*, C_W^{(2)} = ratio·C_W*, input with K^{(1)} = K*."""
        from ..simulate.susceptibility import empirical_chi_perp

        C_b, C_W = book_critical(act)
        probe = MLP(input_dim=p.input_dim, widths=[p.width], output_dim=p.width, activation=act, C_b=C_b,
                    C_W=(C_W, ratio * C_W))
        x = np.full(p.input_dim, math.sqrt((self.probe_K(act, C_b) - C_b) / C_W))  # K^{(1)} = C_b + C_W|x|²/n₀
        return empirical_chi_perp(probe, x, p.probe_networks, seed)

    def compute(self, p, task, ctx):
        """K^{(ℓ)} and K + G1/n (single-input recursion) and the ensemble E[z²] with its standard error."""
        from ..simulate.ensemble import default_micro_batch, sample_ensemble
        from ..theory.single_input import single_input

        net = self.net(p, task["activation"], task["cw_ratio"])
        X = fd.fixed_inputs(1, p.input_dim)
        rec = single_input(net, X[0])
        B = default_micro_batch(net, 1, method="metric")
        ens = sample_ensemble(net, X, p.n_networks, fd.ensemble_seed(ctx), chunk_size=B, vertex=False, method="metric")
        sm = ens.stochastic_metric
        chi = self.chi_probe(p, task["activation"], task["cw_ratio"], fd.ensemble_seed(ctx))
        return {
            "chi_probe": ((), float(chi.value[0])),
            "chi_probe_se": ((), float(chi.stderr[0])),
            "K": (("layer",), rec.K),
            "G": (("layer",), rec.metric()),
            "simulation": (("layer",), sm.value[:, 0, 0]),
            "stderr": (("layer",), sm.stderr[:, 0, 0]),
        }

    def assemble(self, p, tasks, results):
        ds = super().assemble(p, tasks, results)
        rows = book_constants()
        ds = ds.assign_coords(constant=[r[0] for r in rows])
        ds["const_printed"] = (("constant",), np.array([r[1] for r in rows]))
        ds["const_computed"] = (("constant",), np.array([r[2] for r in rows]))
        ds["const_tol"] = (("constant",), np.array([r[3] for r in rows]))
        return ds

    def analyze(self, p, ds):
        checks: list[Check] = []
        for a in p.activations:
            for r in p.cw_ratios:
                pt = ds.sel(activation=a, cw_ratio=r)
                for li in range(1, p.depth):
                    l = li + 1
                    K = float(pt.K.values[li])
                    checks.append(
                        fd.biased_check(
                            f"{a} C_W={r:g}·C_W*: E[z²]^({l})", pt.G.values[li], pt.simulation.values[li], pt.stderr.values[li],
                            scale=K, depth_factor=max(l - 2, 0), n=p.width, order=2, coef=p.bias_coef, max_z=p.max_z,
                            what="(K + G1/n)", scale_text="K",
                        )
                    )
        checks += self.locate_checks(p, ds)
        src = {e[0]: e[2] for e in BOOK_CONSTANTS}
        for lab, pr, co, tol in zip(
            ds.constant.values, ds.const_printed.values, ds.const_computed.values, ds.const_tol.values, strict=True
        ):
            ok = math.isfinite(co) and abs(co - pr) <= tol * (1 + 1e-9)
            checks.append(
                Check(f"book {lab} {src.get(str(lab), '')}", float(pr), float(co), None, None, ok,
                      f"|computed − printed| ≤ {tol:g} (printed precision)", "regression")
            )
        return checks

    def locate_checks(self, p, ds) -> list[Check]:
        """χ̂_⊥ per C_W ratio vs (5.50), and C_W* located from the ensembles vs the criticality solver."""
        from ..theory.criticality import criticality
        from ..theory.single_input import helper_functions

        out: list[Check] = []
        for a in p.activations:
            C_b, C_W = book_critical(a)
            K = self.probe_K(a, C_b)
            r = np.asarray(p.cw_ratios, dtype=float)
            chi = np.array([float(ds.chi_probe.sel(activation=a, cw_ratio=x)) for x in p.cw_ratios])
            se = np.array([float(ds.chi_probe_se.sel(activation=a, cw_ratio=x)) for x in p.cw_ratios])
            theory = helper_functions(a, K, r * C_W).chi_perp
            for x, t, c, e in zip(p.cw_ratios, theory, chi, se, strict=True):
                out.append(zcheck(f"{a} χ_⊥ probe C_W={x:g}·C_W*, K={K:g} (5.50)", t, c, e, max_z=p.max_z))
            w = 1.0 / se**2  # weighted least squares χ̂ = a·r through the origin
            a_hat, a_se = float(np.sum(w * chi * r) / np.sum(w * r * r)), float(1.0 / math.sqrt(np.sum(w * r * r)))
            located, located_se = C_W / a_hat, C_W * a_se / a_hat**2
            crit_pt = criticality(a, exponents=False).critical
            solver = crit_pt.C_W if crit_pt is not None else math.nan  # no critical point: the check fails
            out.append(zcheck(f"{a} critical C_W located from ensembles (χ_⊥ = 1) vs solver", solver, located,
                              located_se, max_z=p.max_z))
        return out

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        from ..theory.plots_criticality import plot_criticality_lines, plot_criticality_ratio

        out = {}
        panels = {
            "fig5_1.png": (("lines", "tanh", None), ("ratio", ["tanh"], (1e-3, 1e1))),
            "fig5_2.png": (("ratio", ["sigmoid"], (1e-3, 1e1)), ("ratio", ["softplus"], (1e-3, 1e2))),
            "fig5_3.png": (("ratio", ["swish"], (1e-2, 1e2)), ("ratio", ["gelu"], (1e-2, 1e2))),
        }
        for fname, specs in panels.items():
            fig = Figure(figsize=(9.0, 3.6), layout="constrained")
            for ax, (kind, acts, kr) in zip(fig.subplots(1, 2), specs, strict=True):
                if kind == "lines":
                    plot_criticality_lines(acts, ax=ax)
                else:
                    plot_criticality_ratio(acts, K_range=kr, ax=ax)
            out[fname] = fig

        acts = list(p.activations)
        layers = ds.layer.values
        fig = Figure(figsize=(4.0 * len(acts), 3.6), layout="constrained")
        axes = fig.subplots(1, len(acts), squeeze=False)[0]
        for ax, a in zip(axes, acts, strict=True):
            for k, r in enumerate(p.cw_ratios):
                pt = ds.sel(activation=a, cw_ratio=r)
                lab = "critical" if r == 1.0 else ("below" if r < 1.0 else "above")
                ax.plot(layers, pt.K, "-", lw=1.2, color=f"C{k}", label=f"C_W = {r:g}·C_W* ({lab})")
                ax.plot(layers, pt.G, ":", lw=1.0, color=f"C{k}")
                ax.errorbar(layers, pt.simulation, pt.stderr, fmt="o", ms=3, ls="none", color=f"C{k}")
            ax.set_yscale("log")
            ax.set_xlabel("layer ℓ")
            ax.set_title(f"{a}, n = {p.width}: K^(ℓ) (lines), K+G1/n (dotted), ensemble (dots)", fontsize=8)
        axes[0].set_ylabel("E[z²]")
        from matplotlib.lines import Line2D

        styles = [Line2D([], [], color="0.3", lw=1.2, label="K^(ℓ) (4.118)"),
                  Line2D([], [], color="0.3", lw=1.0, ls=":", label="K + G1/n (4.115)"),
                  Line2D([], [], color="0.3", marker="o", ms=3, ls="none", label="ensemble ± stderr")]
        handles, _ = axes[0].get_legend_handles_labels()
        axes[0].legend(handles=handles + styles, fontsize=7)
        out["kernel_phases.png"] = fig
        return out
