"""aspect-ratio: mutual information between two groups of neurons in a layer against the depth-to-width ratio
(book §A.3), from ensembles and from the exact single-input law, against the finite-width formulas (A.53), (A.67)
and the optimal aspect ratio r* (A.72)–(A.74).

For one input, the m neurons of layer ℓ are, given layer ℓ − 1, iid N(0, Ĝ^{(ℓ)}) (4.70)–(4.71): their law is exactly
a Gaussian scale mixture over the law of the stochastic metric Ĝ^{(ℓ)}, whose mutual information
(theory/information_exact.py) needs no 1/n expansion. One task per activation: a critical MLP of width n and depth L,
one input; per layer ℓ:

* ensembles — Ĝ^{(ℓ)} of every network (:func:`deepeft.simulate.stochastic_metric_samples`, each layer drawn from
  its exact conditional law given Ĝ^{(ℓ)} (4.71)); the information of the empirical mixture and x = Var(Ĝ)/E[Ĝ]²
  with jackknife standard errors;
* theory — x^{(ℓ)} = Var(Ĝ)/E[Ĝ]² to relative O(1/n²): V/(nG²) (A.68) with G = K + G^{1}/n and V's own 1/n
  correction (:func:`deepeft.theory.metric_moments.stochastic_metric_moments`), and (A.53), (A.67) at that x;
* exact law — for ReLU and linear networks (C_b = 0) the exact law of Ĝ^{(ℓ)} (no sampling), also at the widths
  n·2^k, k < ``LADDER`` (the width ladder, layers ℓ = 2, 3).

Checks (kinds as in :mod:`deepeft.experiments.checks`):

* prediction (ReLU, linear with ensembles): I and x of the ensembles against the exact law, |z| < max_z;
* prediction: x_sim (or x_exact) vs x^{(ℓ)}: |Δ| < max_z·SE + c_x·x·((ℓ − 2)/n)² (the O(1/n²) remainder; none at
  ℓ = 2, where Ĝ^{(2)} is a sum of n iid terms; measured at n = 24, 2×10⁵ networks: ≤ 0.06·x·((ℓ − 2)/n)², and 0 for
  ReLU and linear σ, where the recursion is exact), plus 10⁻⁴·x for the exact law's grid;
* prediction (ReLU, linear): (A.67) is exact through x³ — on the width ladder the remainder Δ = I_exact − (A.67)
  falls like x⁴: the local power p = log(Δ_k/Δ_{k+1})/log(x_k/x_{k+1}) of the last two rungs is 4 within twice its
  change from the rung before (its O(x) bend, geometric in x); a slip of (A.67) by a factor 1 + δ leaves
  Δ ≈ −δ·(m₁m₂/8)x² (p → 2);
* for x ≤ ``x_nlo`` (where the series is usable) the measured (or exact) information vs (A.67) at the measured x:
  |Δ| < max_z·SE + |the x³ term| (the size of the last kept term bounds the O(x⁴) remainder) — prediction;
* finding: the information keeps growing through r* — I at the deepest layer exceeds I at the layer nearest the
  NLO maximum (z ≥ 3), and there exceeds I_max (A.74), the maximum of the truncated series. (A.67) is confirmed
  where it is perturbative; its maximum at r* is a property of the truncation, where the x³ term is 2/3 of the x²
  term, not of the exact information (docs/information.md).

Figure: I against r_eff = x/ν (= ℓ/n at large depth; the NLO curve peaks at r_eff = r*), ensembles (points), exact
law (solid), (A.53) and (A.67) (dashed), r* and I_max (grey).

References:
  Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (2022), arXiv:2106.10165, (4.70)–(4.76), (A.53)–(A.74)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..errors import DeepEFTInputError
from ..network import MLP
from ..statistics import Z_MAX, agrees, zscore
from ..theory import information as info
from ..theory import information_exact as ie
from . import _foundation as fd
from .base import Experiment
from .checks import Check, greater_check, zcheck
from .config import param
from .registry import register

__all__ = ["AspectRatio"]

_INPUT_DIM = 4
_EXACT = ("relu", "linear")
LADDER = 6  # rungs n·2^k, k = 0..5, of the width ladder (exact law): x from ≈ 5/n down to 5/(32 n) for ReLU
_LADDER_LAYERS = (2, 3)
_GRID_REL = 1e-4  # relative accuracy of x from the exact law's log grid (cloud-in-cell rebinning, information_exact)


def _net(act: str, n: int, L: int) -> MLP:
    C_b, C_W = fd.critical_hyperparameters(act)
    return MLP(input_dim=_INPUT_DIM, widths=[n] * (L - 1), output_dim=n, activation=act, C_b=C_b, C_W=C_W)


@register
class AspectRatio(Experiment):
    name = "aspect-ratio"
    description = "mutual information of neuron groups vs depth/width: ensembles and exact law vs (A.67), r* (A.72)"
    references = "PDLT (4.70)–(4.76), (A.53), (A.66)–(A.74)"
    order = 31

    @dataclasses.dataclass(frozen=True)
    class Params:
        activations: tuple[str, ...] = param(("tanh", "relu"), "activations (K* = 0 or scale-invariant)")
        widths: tuple[int, ...] = param((24, 128), "hidden width n per activation (same order)", min=2)
        depths: tuple[int, ...] = param((12, 8), "depth L per activation (layers ℓ = 2..L are analysed)", min=2)
        groups: tuple[int, ...] = param((2, 2), "neuron counts (m1, m2) of the two groups", min=1)
        n_networks: tuple[int, ...] = param((50_000, 0), "networks per activation (0: exact law only; ReLU/linear)",
                                            min=0)
        x_nlo: float = param(0.08, "largest x = V/(nG²) at which (A.67) is compared", min=0.0, analysis=True)
        c_x: float = param(0.25, "allowance c_x·x·((ℓ−2)/n)² for the O(1/n²) remainder of x", min=0.0, analysis=True)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            k = len(self.activations)
            if not (len(self.widths) == len(self.depths) == len(self.n_networks) == k):
                raise DeepEFTInputError("parameters 'widths', 'depths' and 'n_networks' need one entry per activation.")
            if len(self.groups) != 2:
                raise DeepEFTInputError(f"parameter 'groups' must be (m1, m2), got {list(self.groups)}.")
            for a, S in zip(self.activations, self.n_networks, strict=True):
                info.vertex_coefficient(a)  # a class with ν (raises otherwise)
                if S == 0 and a not in _EXACT:
                    raise DeepEFTInputError(f"activation {a!r} has no exact law: give it n_networks >= 16.")
                if 0 < S < 16:
                    raise DeepEFTInputError(f"n_networks must be 0 or >= 16, got {S}.")

    presets = {
        "quick": {},
        "paper": {"activations": ("tanh", "relu", "linear"), "widths": (48, 128, 64), "depths": (24, 12, 16),
                  "n_networks": (400_000, 100_000, 100_000)},
    }

    def tasks(self, p):
        return [{"activation": a} for a in p.activations]

    def sweep(self, p):
        return {"activation": list(p.activations)}

    def coords(self, p):
        return {"layer": list(range(1, max(p.depths) + 1)), "ladder_layer": list(_LADDER_LAYERS), "rung": list(range(LADDER))}

    def compute(self, p, task, ctx):
        act = task["activation"]
        i = list(p.activations).index(act)
        n, L, S = p.widths[i], p.depths[i], p.n_networks[i]
        Lmax = max(p.depths)
        m1, m2 = p.groups
        net = _net(act, n, L)
        x_in = np.ones(_INPUT_DIM)
        fw_info = info.finite_width_information(net, groups=(m1, m2), x=x_in, vertex="nlo")
        out = {k: np.full(Lmax, np.nan) for k in ("x_theory", "I_lo", "I_nlo", "x_sim", "x_stderr", "I_sim",
                                                 "I_stderr", "I_nlo_at_sim", "x_exact", "I_exact", "I_nlo_at_exact")}
        out["x_theory"][:L] = fw_info.x
        out["I_lo"][:L] = fw_info.mutual_information_lo
        out["I_nlo"][:L] = fw_info.mutual_information
        if S:
            from ..simulate.metric_cumulants import stochastic_metric_samples
            from ..statistics import jackknife

            g = stochastic_metric_samples(net, x_in, S, fd.ensemble_seed(ctx), method="metric")
            for l in range(2, L + 1):
                xs = jackknife(lambda a: a.var(ddof=1) / a.mean() ** 2, g[:, l - 1], blocks=16)
                Is = ie.metric_samples_information(g[:, l - 1], (m1, m2), blocks=16, points_per_sd=20)
                out["x_sim"][l - 1], out["x_stderr"][l - 1] = xs.value, xs.stderr
                out["I_sim"][l - 1], out["I_stderr"][l - 1] = Is.value, Is.stderr
                out["I_nlo_at_sim"][l - 1] = info.finite_width_mutual_information(m1, m2, xs.value)
        if act in _EXACT:
            K1 = net.C_W[0] * float(np.mean(x_in**2))
            for l in range(2, L + 1):
                mix = ie.exact_mixture(act, [n] * (l - 1), C_W=net.C_W[1:l], K1=K1)
                out["x_exact"][l - 1] = mix.x
                out["I_exact"][l - 1] = ie.mixture_mutual_information(mix, m1, m2)
                out["I_nlo_at_exact"][l - 1] = info.finite_width_mutual_information(m1, m2, mix.x)
        res: dict[str, Any] = {k: (("layer",), v) for k, v in out.items()}
        lad_x, lad_I = np.full((len(_LADDER_LAYERS), LADDER), np.nan), np.full((len(_LADDER_LAYERS), LADDER), np.nan)
        if act in _EXACT:  # the width ladder: exact law of Ĝ^(ℓ) at widths n·2^k
            K1 = net.C_W[0] * float(np.mean(x_in**2))
            for i, l in enumerate(_LADDER_LAYERS):
                for k in range(LADDER if l <= L else 0):
                    mix = ie.exact_mixture(act, [n * 2**k] * (l - 1), C_W=net.C_W[1:l], K1=K1)
                    lad_x[i, k], lad_I[i, k] = mix.x, ie.mixture_mutual_information(mix, m1, m2)
        res["ladder_x"] = (("ladder_layer", "rung"), lad_x)
        res["ladder_I"] = (("ladder_layer", "rung"), lad_I)
        res["nu"] = ((), np.asarray(info.vertex_coefficient(act)))
        res["width"] = ((), np.asarray(float(n)))
        return res

    def analyze(self, p, ds):
        m1, m2 = p.groups
        r_star_x = 4.0 / (20.0 + 3.0 * (m1 + m2))  # x* = ν r* (A.72)
        I_max = info.max_mutual_information(m1 + m2, groups=(m1, m2))
        checks: list[Check] = []
        for act in p.activations:
            q = ds.sel(activation=act)
            n = float(q.width)
            ls = [int(l) for l in q.layer.values if l >= 2 and np.isfinite(q.x_theory.sel(layer=l))]
            both = [l for l in ls if np.isfinite(q.I_sim.sel(layer=l)) and np.isfinite(q.I_exact.sel(layer=l))]
            for l in both:  # ensembles against the exact law (ReLU, linear): no allowance
                r = q.sel(layer=l)
                checks.append(zcheck(f"{act} n={n:g}: I^({l}) ensembles vs exact law", r.I_exact, r.I_sim, r.I_stderr,
                                     max_z=p.max_z))
                checks.append(zcheck(f"{act} n={n:g}: x^({l}) ensembles vs exact law", r.x_exact, r.x_sim, r.x_stderr,
                                     max_z=p.max_z))
            for src in ("sim", "exact"):
                I = q[f"I_{src}"]
                if not np.any(np.isfinite(I.sel(layer=ls))):
                    continue
                se = q.I_stderr if src == "sim" else _zero(q.I_stderr)
                x = q[f"x_{src}"]
                for l in ls:  # layer 2 is exact at any width (z^(1) is Gaussian): no allowance there
                    xs, xt = float(x.sel(layer=l)), float(q.x_theory.sel(layer=l))
                    xse = float(q.x_stderr.sel(layer=l)) if src == "sim" else 0.0
                    # the exact law (ReLU, linear) has no O(1/n²) remainder against the recursion (exact for them,
                    # module doc; measured ≤ 5.1e-5·x at n = 24, ℓ ≤ 12: the law's grid), so only the grid allowance
                    allow = p.c_x * xt * ((l - 2) / n) ** 2 if src == "sim" else _GRID_REL * xt
                    grid = (f"{p.c_x:g}·x·((ℓ−2)/n)² (the O(1/n²) remainder" if src == "sim" else
                            f"{_GRID_REL:g}·x (the exact law's grid; the recursion is exact here")
                    what = "ensembles" if src == "sim" else "exact law"
                    ok = bool(agrees(xs - xt, xse, max_z=p.max_z, allowance=allow))
                    checks.append(Check(f"{act} n={n:g}: x^({l}) = V/(nG²) {what} vs NLO recursion", xt, xs, xse or None,
                                        zscore(xs - xt, xse) if xse else None, ok,
                                        f"|Δ| < {p.max_z:g}·SE + {grid}; = {allow / xt:.2%} of x)",
                                        kind="prediction"))
                for l in ls:
                    xv = float(x.sel(layer=l))
                    if not xv <= p.x_nlo:
                        continue
                    Iv, sv = float(I.sel(layer=l)), float(se.sel(layer=l))
                    th = float(q[f"I_nlo_at_{src}"].sel(layer=l))
                    allow = abs(m1 * m2 * (20 + 3 * m1 + 3 * m2) / 48 * xv**3)
                    checks.append(Check(f"{act} n={n:g}: I^({l}) {src} vs (A.67) at x = {xv:.4f}", th, Iv, sv if sv else None,
                                        zscore(Iv - th, sv), bool(agrees(Iv - th, sv, max_z=p.max_z, allowance=allow)),
                                        f"|Δ| < {p.max_z:g}·SE + |x³ term of (A.67)| (its O(x⁴) remainder)"))
                xs_all = np.array([float(x.sel(layer=l)) for l in ls])
                if xs_all.max() > r_star_x:  # the run crosses the NLO maximum
                    k = ls[int(np.argmin(np.abs(xs_all - r_star_x)))]
                    a, b = q.sel(layer=ls[-1]), q.sel(layer=k)
                    checks.append(greater_check(f"{act} ({src}): I(ℓ={ls[-1]}) > I(ℓ={k}, x ≈ νr*)", a[f"I_{src}"],
                                                se.sel(layer=ls[-1]), b[f"I_{src}"], se.sel(layer=k),
                                                what="I past r* minus I at r*"))
                    checks.append(greater_check(f"{act} ({src}): I(ℓ={k}, x ≈ νr*) > I_max (A.74) = {I_max:.3g}",
                                                b[f"I_{src}"], se.sel(layer=k), I_max, 0.0,
                                                what="I at r* minus the NLO maximum I_max"))
            if act in _EXACT:
                checks.extend(_ladder_checks(q, m1, m2, p.depths[list(p.activations).index(act)]))
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        m1, m2 = p.groups
        r_star_x = 4.0 / (20.0 + 3.0 * (m1 + m2))
        I_max = info.max_mutual_information(m1 + m2, groups=(m1, m2))
        k = len(p.activations)
        fig = Figure(figsize=(4.6 * k, 3.8), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, k))
        for ax, act in zip(axes, p.activations, strict=True):
            q = ds.sel(activation=act)
            nu = float(q.nu)
            r = q.x_theory.values / nu
            ok = np.isfinite(r) & (q.layer.values >= 2)
            xx = np.linspace(0, np.nanmax(r[ok]) * 1.05, 200) * nu
            ax.plot(xx / nu, info.finite_width_mutual_information(m1, m2, xx, "lo"), "--", color="grey", lw=0.8,
                    label="(A.53) LO")
            ax.plot(xx / nu, np.maximum(info.finite_width_mutual_information(m1, m2, xx), 0), "--", color="k", lw=1.0,
                    label="(A.67) NLO")
            if np.any(np.isfinite(q.I_sim.values)):
                rs = q.x_sim.values / nu
                ax.errorbar(rs[ok], q.I_sim.values[ok], yerr=q.I_stderr.values[ok], fmt="o", ms=3.5,
                            label="ensembles (exact mixture)")
            if np.any(np.isfinite(q.I_exact.values)):
                ax.plot(q.x_exact.values[ok] / nu, q.I_exact.values[ok], "-", color="C3", lw=1.2, label="exact law")
            ax.axvline(r_star_x / nu, color="grey", lw=0.8)
            ax.axhline(I_max, color="grey", lw=0.8, ls=":")
            ax.set_xlabel("r_eff = x/ν  (x = V/(nG²); = ℓ/n at large ℓ)")
            ax.set_ylabel(f"I[{m1} ; {m2} neurons]")
            ax.set_title(f"{act}, n = {float(q.width):g}: r* = {r_star_x / nu:.3g} (A.72)", fontsize=9)
            ax.legend(fontsize=7)
        return {"aspect_ratio.png": fig}


def ladder_powers(xs, I_exact, m1: int, m2: int) -> np.ndarray:
    """Local powers p_k = log(Δ_k/Δ_{k+1})/log(x_k/x_{k+1}) of the remainder Δ = I_exact − (A.67) along a width
    ladder (NaN where Δ changes sign or vanishes)."""
    d = np.asarray(I_exact) - np.asarray(info.finite_width_mutual_information(m1, m2, np.asarray(xs)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(d[:-1] / d[1:]) / np.log(np.asarray(xs)[:-1] / np.asarray(xs)[1:])


def _ladder_checks(q, m1: int, m2: int, depth: int) -> list[Check]:
    out = []
    n = float(q.width)
    for l in q.ladder_layer.values:
        if l > depth:  # a network of depth 2 has no layer 3: that rung row is not computed (not a failure)
            continue
        xs, Is = q.ladder_x.sel(ladder_layer=l).values, q.ladder_I.sel(ladder_layer=l).values
        if not np.all(np.isfinite(xs)) or not np.all(np.isfinite(Is)):  # a broken exact law fails, never skips
            out.append(Check(f"{q.activation.item()}: I^({int(l)}) − (A.67) = O(x⁴), exact law at n = {n:g}·2^k", 4.0,
                             float("nan"), None, None, False, "the width ladder's exact x or I is not finite",
                             kind="prediction"))
            continue
        pw = ladder_powers(xs, Is, m1, m2)
        last, bend = float(pw[-1]), 2.0 * abs(float(pw[-1] - pw[-2]))
        ok = bool(np.isfinite(last) and np.isfinite(bend) and abs(last - 4.0) <= bend)
        out.append(Check(
            f"{q.activation.item()}: I^({int(l)}) − (A.67) = O(x⁴), exact law at n = {n:g}·2^k (x → {xs[-1]:.2g})", 4.0,
            last, None, None, ok, f"|p − 4| ≤ 2·|p_K − p_(K−1)| = {bend:.2g} (the O(x) bend); p_k = {np.round(pw, 3).tolist()}",
            kind="prediction",
        ))  # fmt: skip
    return out


def _zero(like):
    """Zeros shaped like an xarray DataArray (exact values carry no standard error)."""
    return like.fillna(0.0) * 0.0
