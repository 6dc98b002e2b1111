"""vertex-vs-ensemble: the finite-width effective theory of Ch. 4 — the NLO metric G = K + G^{1}/n_{ℓ−1}
(4.104), (4.115) and the four-point vertex V^{(ℓ)} (4.119), every index pattern — against ensembles of random
MLPs (``deepeft.simulate.sample_ensemble``, which never imports the theory).

One task per (activation, architecture): an MLP of depth L at the activation's critical (C_b, C_W) (§5), N ≥ 3
fixed inputs, equal widths n (several n) or one unequal-width profile (n_1, …, n_L), which also varies C_W across
layers (C_W^{(ℓ)} = m_ℓ·C_W*, ``cw_profile``) so that a C_W^{(ℓ)} vs C_W^{(ℓ+1)} slip in a recursion shows. Theory is
``theory.vertex.vertex_flow(net, X, nlo=True)``; simulation is E[Ĝ^{(ℓ)}] (4.70), (4.73) and
V^{(ℓ)} = n_{ℓ−1} Cov(Ĝ^{(ℓ)}_{α1α2}, Ĝ^{(ℓ)}_{α3α4}) (4.76), both with delta-method standard errors.

Checks (rule of ``tests/simulate/test_vertex_vs_ensemble.py``, additive form of ``_foundation.biased_check``), layers
ℓ = 2..L, every distinct entry:

* metric, α ≤ β:  |sim − (K + G^{1}/n)| < max_z·SE + c_G·max_γ|K_γγ|·((ℓ−2)₊/n)²  (the O(1/n²) remainder);
* vertex, (α1 ≤ α2) ≤ (α3 ≤ α4): |sim − V| < max_z·SE + c_V·max|V^{(ℓ)}|·((ℓ−2)₊/n)  (V's own 1/n correction);

with n the smallest width n_1..n_{ℓ−1}; layer 2 is exact at any width (z^{(1)} is Gaussian), so there the rule is
the plain |z| < max_z. Finite-width scaling, from the equal-width networks at the last layer ℓ = L:

* per entry, the intercept a of n·(sim − K) = a + b/n (weighted least squares in 1/n) against G^{1}_{αβ};
* per activation, the slope s of log|sim − K| against log n on the entry with the largest |G^{1}_αβ|/√V_(αβ)(αβ)
  (the expected signal-to-noise, chosen from theory alone): s = −1 within max_z·SE_s + c_G·(L−2)/n_min (the 1/n² term
  bends the line). This check exists only where the residual is resolved — sign(G^{1})·(sim − K) > 2·SE at every
  width — since a logarithm of noise has no slope; the figure says "unresolved" otherwise.

Figures: metric and vertex per layer (theory lines, ensemble points), the collapse of the normalised vertex
V/(n_{ℓ−1}K²) against Σ_{ℓ'<ℓ} 1/n_{ℓ'} (= (ℓ−1)/n for equal widths) across widths, the 1/n residual fits, and
all z-scores.

References:
  Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (2022), arXiv:2106.10165
  (docs/references.md)
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from ..activations import activation
from ..errors import DeepEFTInputError
from ..network import MLP
from ..statistics import Z_MAX
from . import _foundation as fd
from .base import Experiment
from .checks import Check, zcheck
from .config import param
from .registry import register

__all__ = ["CUSTOM_ACTIVATIONS", "VertexVsEnsemble", "experiment_activation"]


def _tanh_bump(z):
    import jax.numpy as jnp

    return jnp.tanh(z) + 0.2 * z**2 / (1.0 + z**2)


#: Custom activations this experiment accepts by name (a user-defined σ, not in the registry): name → callable.
CUSTOM_ACTIVATIONS = {"tanh_bump": _tanh_bump}  # σ(z) = tanh z + 0.2 z²/(1 + z²): smooth, σ(0) = 0, σ″(0) ≠ 0


@functools.lru_cache(maxsize=16)
def experiment_activation(name: str):
    """A registry activation by name, or one of :data:`CUSTOM_ACTIVATIONS` (wrapped once, so it is hashable
    and the compiled kernels are reused)."""
    if name in CUSTOM_ACTIVATIONS:
        return activation(CUSTOM_ACTIVATIONS[name], name=name)
    return activation(name)


def check_experiment_activations(names, key: str = "activations") -> None:
    """Registered or custom names, each once."""
    for a in names:
        if a not in CUSTOM_ACTIVATIONS:
            try:
                activation(a)
            except DeepEFTInputError as exc:
                raise DeepEFTInputError(f"{exc} (custom activations of this experiment: {sorted(CUSTOM_ACTIVATIONS)})") from None
    if len(set(names)) != len(names):
        raise DeepEFTInputError(f"parameter {key!r} has repeated entries {list(names)}; list each once.")


@functools.lru_cache(maxsize=16)
def _critical(name: str) -> tuple[float, float]:
    """(C_b, C_W) at the critical point (``theory.criticality``), custom activations included."""
    if name not in CUSTOM_ACTIVATIONS:
        return fd.critical_hyperparameters(name)
    from ..theory.criticality import criticality

    point = criticality(experiment_activation(name), exponents=False).critical
    if point is None:
        raise DeepEFTInputError(f"custom activation {name!r} has no critical point; choose another activation.")
    return float(point.C_b), float(point.C_W)


def arch_label(widths) -> str:
    """'32' for equal widths 32, '64-32-96-64' for an unequal profile."""
    ws = tuple(int(w) for w in widths)
    return str(ws[0]) if len(set(ws)) == 1 else "-".join(map(str, ws))


def arch_widths(label: str, depth: int) -> tuple[int, ...]:
    """(n_1, …, n_L) of an architecture label."""
    ws = tuple(int(s) for s in str(label).split("-"))
    return ws * depth if len(ws) == 1 else ws


def build_net(name: str, widths, input_dim: int, cw_profile=None) -> MLP:
    """MLP with layer widths (n_1..n_L) (the output too, so layer L's metric averages n_L neurons), critical; with
    ``cw_profile`` (m_1..m_L) the weight variances vary across layers, C_W^{(ℓ)} = m_ℓ·C_W*."""
    C_b, C_W = _critical(name)
    ws = tuple(widths)
    cw = C_W if cw_profile is None else [C_W * float(m) for m in cw_profile]
    return MLP(input_dim=input_dim, widths=list(ws[:-1]), output_dim=ws[-1], activation=experiment_activation(name),
               C_b=C_b, C_W=cw)


def vertex_pairs(N: int) -> list[tuple[int, int, int, int]]:
    """Distinct index patterns of V_(α1α2)(α3α4): α1 ≤ α2, α3 ≤ α4, (α1, α2) ≤ (α3, α4) (21 for N = 3)."""
    pairs = fd.upper_pairs(N)
    return [(*pairs[i], *pairs[j]) for i in range(len(pairs)) for j in range(i, len(pairs))]


_RESOLVED = 2.0  # the log-log slope is fitted only when sign(G1)·(sim − K) > 2·SE at every width


def _log_slope(n, r, se) -> tuple[float, float]:
    """Slope and its error of log r = c + s·log n (weighted by se/r); requires r > 0."""
    _, _, s, se_s = fd.intercept_fit(np.log(n), np.log(r), se / r)
    return s, se_s


@register
class VertexVsEnsemble(Experiment):
    name = "vertex-vs-ensemble"
    description = "NLO metric K + G1/n (4.115) and four-point vertex V (4.119), all index patterns, vs ensembles; 1/n scaling"
    references = "PDLT (4.70), (4.76), (4.104), (4.115), (4.117), (4.119); critical (C_b, C_W) from §5"
    order = 20

    @dataclasses.dataclass(frozen=True)
    class Params:
        activations: tuple[str, ...] = param(
            ("relu", "tanh", "gelu", "tanh_bump"),
            "activations at their critical points; 'tanh_bump' = custom tanh z + 0.2z²/(1+z²)",
        )
        widths: tuple[int, ...] = param((32, 128), "equal widths n (every layer, output included)", min=2)
        unequal_widths: tuple[int, ...] = param((64, 32, 96, 48), "one extra unequal-width profile n_1..n_L (len = depth)", min=2)
        cw_profile: tuple[float, ...] = param(
            (1.0, 1.3, 0.75, 1.15), "C_W^(ℓ)/C_W* per layer ℓ = 1..L of the unequal-width architecture (len = depth; "
            "(1,) for critical everywhere): a C_W^(ℓ) vs C_W^(ℓ+1) slip in the recursions shows", min=0.01)
        depth: int = param(4, "number of layers L", min=2, max=32)
        n_inputs: int = param(3, "number of inputs N", min=1, max=6)
        input_dim: int = param(3, "input dimension n_0", min=1)
        n_networks: int = param(16384, "networks per (activation, architecture)", min=2)
        metric_bias_coef: float = param(2.0, "c_G in the metric allowance c_G·max|K|·((ℓ−2)₊/n)²", min=0.0, analysis=True)
        vertex_bias_coef: float = param(4.0, "c_V in the vertex allowance c_V·max|V|·(ℓ−2)₊/n", min=0.0, analysis=True)
        max_z: float = param(Z_MAX, "z-score bound", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            check_experiment_activations(self.activations)
            if len(set(self.widths)) != len(self.widths):
                raise DeepEFTInputError(f"parameter 'widths' has repeated entries {list(self.widths)}; list each once.")
            if len(self.unequal_widths) not in (1, self.depth):
                raise DeepEFTInputError(
                    f"parameter 'unequal_widths' has {len(self.unequal_widths)} entries but depth = {self.depth}: give n_1..n_L "
                    f"({self.depth} widths), or one width already in 'widths' to skip the unequal architecture."
                )
            if len(self.cw_profile) not in (1, self.depth):
                raise DeepEFTInputError(
                    f"parameter 'cw_profile' has {len(self.cw_profile)} entries but depth = {self.depth}: give "
                    f"C_W^(ℓ)/C_W* for ℓ = 1..{self.depth}, or (1,) for C_W* in every layer."
                )

    presets = {
        "quick": {},
        "paper": {
            "widths": (32, 64, 128, 256),
            "unequal_widths": (128, 48, 96, 64, 160, 80),
            "cw_profile": (1.0, 1.3, 0.75, 1.15, 0.9, 1.1),
            "depth": 6,
            "n_inputs": 4,
            "n_networks": 200_000,
        },
    }

    # -- sweep ------------------------------------------------------------------------------------
    def archs(self, p) -> list[str]:
        labels = [arch_label((n,) * p.depth) for n in p.widths]
        extra = arch_label(arch_widths(arch_label(p.unequal_widths), p.depth))
        return labels + ([extra] if extra not in labels else [])

    def cw_profile(self, p, arch: str):
        """C_W^(ℓ)/C_W* of architecture ``arch``: ``p.cw_profile`` for the unequal-width one, None (critical) else."""
        equal = {arch_label((n,) * p.depth) for n in p.widths}
        if arch in equal or len(p.cw_profile) == 1:
            return None
        return tuple(p.cw_profile)

    def sweep(self, p):
        for a in p.activations:  # fail before any task runs when an activation has no critical point
            _critical(a)
        return {"activation": list(p.activations), "arch": self.archs(p)}

    def coords(self, p):
        idx = list(range(p.n_inputs))
        return {"layer": list(range(1, p.depth + 1)), "alpha": idx, "beta": idx, "gamma": idx, "delta": idx}

    def compute(self, p, task, ctx):
        """Theory (K, K + G1/n, V) and the ensemble E[Ĝ], V with standard errors."""
        from ..simulate.ensemble import default_micro_batch, sample_ensemble
        from ..theory.vertex import vertex_flow

        widths = arch_widths(task["arch"], p.depth)
        net = build_net(task["activation"], widths, p.input_dim, self.cw_profile(p, task["arch"]))
        X = fd.fixed_inputs(p.n_inputs, p.input_dim)
        flow = vertex_flow(net, X, nlo=True)
        B = default_micro_batch(net, p.n_inputs, method="metric")
        ens = sample_ensemble(net, X, p.n_networks, fd.ensemble_seed(ctx), chunk_size=B, vertex=True, method="metric")
        m2, v4 = ("layer", "alpha", "beta"), ("layer", "alpha", "beta", "gamma", "delta")
        return {
            "n_prev": (("layer",), np.asarray(net.n[:-1], dtype=np.float64)),  # n_{ℓ−1}, ℓ = 1..L
            "K": (m2, flow.K),
            "G": (m2, flow.metric()),
            "V": (v4, flow.V),
            "metric_sim": (m2, ens.stochastic_metric.value),
            "metric_se": (m2, ens.stochastic_metric.stderr),
            "vertex_sim": (v4, ens.vertex.value),
            "vertex_se": (v4, ens.vertex.stderr),
        }

    # -- analysis ---------------------------------------------------------------------------------
    @staticmethod
    def _n_min(pt, l: int) -> float:
        """Smallest width among n_1..n_{ℓ−1} (the widths whose 1/n corrections reach layer ℓ)."""
        return float(np.min(pt.n_prev.values[1:l])) if l >= 2 else math.inf

    def analyze(self, p, ds):
        checks: list[Check] = []
        upper, quads = fd.upper_pairs(p.n_inputs), vertex_pairs(p.n_inputs)
        for a in p.activations:
            for arch in ds.arch.values:
                pt = ds.sel(activation=a, arch=arch)
                for li in range(1, p.depth):
                    l = li + 1
                    n = self._n_min(pt, l)
                    K, G = pt.K.values[li], pt.G.values[li]
                    Kmax = float(np.max(np.abs(np.diagonal(K))))
                    for al, be in upper:
                        checks.append(
                            fd.biased_check(
                                f"{a} n={arch}: E[zz]^({l})_{al}{be}", G[al, be], pt.metric_sim.values[li, al, be],
                                pt.metric_se.values[li, al, be], scale=Kmax, depth_factor=max(l - 2, 0), n=n, order=2,
                                coef=p.metric_bias_coef, max_z=p.max_z, what="(K + G1/n)", scale_text="max_γ K_γγ",
                            )
                        )
                    V = pt.V.values[li]
                    Vmax = float(np.max(np.abs(V)))
                    for q in quads:
                        checks.append(
                            fd.biased_check(
                                f"{a} n={arch}: V^({l})_({q[0]}{q[1]})({q[2]}{q[3]})", V[q], pt.vertex_sim.values[(li, *q)],
                                pt.vertex_se.values[(li, *q)], scale=Vmax, depth_factor=max(l - 2, 0), n=n, order=1,
                                coef=p.vertex_bias_coef, max_z=p.max_z, what="V", scale_text="max|V^(ℓ)|",
                            )
                        )
        if len(p.widths) >= 2 and p.depth >= 3:
            for a in p.activations:
                checks.extend(self._scaling_checks(p, ds, a))
        return checks

    def _equal(self, p, ds, a):
        """The equal-width points at the last layer: widths n (ascending) and the dataset slice."""
        labels = [arch_label((n,) * p.depth) for n in p.widths]
        order = np.argsort(p.widths)
        sub = ds.sel(activation=a, arch=[labels[i] for i in order]).isel(layer=-1)
        return np.asarray(p.widths, dtype=float)[order], sub

    def residual_fits(self, p, ds, a) -> dict:
        """n·(sim − K) = a + b/n per entry (α ≤ β), and the log-log slope of the selected entry."""
        n, sub = self._equal(p, ds, a)
        upper = fd.upper_pairs(p.n_inputs)
        K = sub.K.values[0]
        G1 = n[0] * (sub.G.values[0] - K)  # G^{1}(L): width-independent for equal widths
        out = {"n": n, "G1": G1, "entries": {}}
        for al, be in upper:
            r = sub.metric_sim.values[:, al, be] - K[al, be]
            se = sub.metric_se.values[:, al, be]
            fa, sa, fb, sb = fd.intercept_fit(1.0 / n, n * r, n * se)
            out["entries"][(al, be)] = {"r": r, "se": se, "a": fa, "se_a": sa, "b": fb}
        V = sub.V.values[0]  # Var(Ĝ_αβ) ≈ V_(αβ)(αβ)/n (4.76): the signal-to-noise of entry αβ is ∝ |G1_αβ|/√V_(αβ)(αβ)
        rel = [abs(G1[al, be]) / math.sqrt(V[al, be, al, be]) for al, be in upper]
        sel = upper[int(np.argmax(rel))]
        e = out["entries"][sel]
        r = math.copysign(1.0, G1[sel]) * e["r"]
        resolved = bool(np.all(r > _RESOLVED * e["se"]))
        slope, se_s = _log_slope(n, r, e["se"]) if resolved else (math.nan, math.nan)
        out.update(selected=sel, slope=slope, se_slope=se_s, signed_r=r, resolved=resolved)
        return out

    def _scaling_checks(self, p, ds, a) -> list[Check]:
        fit = self.residual_fits(p, ds, a)
        L = p.depth
        out = []
        for (al, be), e in fit["entries"].items():
            c = zcheck(f"{a}: G1^({L})_{al}{be} = intercept of n·(sim − K) vs 1/n", fit["G1"][al, be], e["a"], e["se_a"],
                       max_z=p.max_z)
            rule = (f"|z| < {p.max_z:g}, z = (a − G1)/SE_a; weighted fit n·(sim − K) = a + b/n, "
                    f"n = {list(map(int, fit['n']))}")
            out.append(dataclasses.replace(c, rule=rule))
        if fit["resolved"]:
            al, be = fit["selected"]
            out.append(
                fd.biased_check(
                    f"{a}: slope of log|sim − K|^({L})_{al}{be} vs log n", -1.0, fit["slope"], fit["se_slope"], scale=1.0,
                    depth_factor=L - 2, n=float(fit["n"][0]), order=1, coef=p.metric_bias_coef, max_z=p.max_z, what="(−1)",
                    scale_text="1",
                )
            )
        return out

    # -- figures ----------------------------------------------------------------------------------
    def figures(self, p, ds):
        from matplotlib.figure import Figure

        acts, archs = list(p.activations), list(ds.arch.values)
        layers = ds.layer.values
        N = p.n_inputs
        entries = sorted({(0, 0), (0, min(1, N - 1)), (N - 1, N - 1)})
        m1 = min(1, N - 1)
        quads = sorted({(0, 0, 0, 0), (0, m1, 0, m1), (0, 0, N - 1, N - 1), (0, m1, m1, N - 1)})
        mk = "os^dv<>p"
        out = {}

        def grid(rows):
            fig = Figure(figsize=(3.4 * len(acts), 3.0 * rows), layout="constrained")
            return fig, fig.subplots(rows, len(acts), squeeze=False)

        # metric and vertex per layer: theory lines, ensemble points
        fig, axes = grid(2)
        for j, a in enumerate(acts):
            for k, e in enumerate(entries):
                for i, arch in enumerate(archs):
                    pt = ds.sel(activation=a, arch=arch)
                    off = 0.06 * (i - (len(archs) - 1) / 2)
                    (ln,) = axes[0, j].plot(layers, pt.G.values[:, e[0], e[1]], "-" if i == 0 else ":", lw=1, color=f"C{k}")
                    axes[0, j].errorbar(layers + off, pt.metric_sim.values[:, e[0], e[1]], pt.metric_se.values[:, e[0], e[1]],
                                        fmt=mk[i % 8], ms=3, ls="none", color=f"C{k}", label=(f"n={arch}" if k == 0 else None))
            for k, q in enumerate(quads):
                for i, arch in enumerate(archs):
                    pt = ds.sel(activation=a, arch=arch)
                    off = 0.06 * (i - (len(archs) - 1) / 2)
                    axes[1, j].plot(layers, pt.V.values[(slice(None), *q)], "-" if i == 0 else ":", lw=1, color=f"C{k}",
                                    label=(f"V({q[0]}{q[1]})({q[2]}{q[3]})" if i == 0 else None))
                    axes[1, j].errorbar(layers + off, pt.vertex_sim.values[(slice(None), *q)],
                                        pt.vertex_se.values[(slice(None), *q)], fmt=mk[i % 8], ms=3, ls="none", color=f"C{k}")
            axes[0, j].set_title(f"{a}: E[zz] (lines K+G1/n, entries {entries})", fontsize=8)
            axes[1, j].set_title(f"{a}: V (4.119) lines, ensemble points", fontsize=8)
            for r in (0, 1):
                axes[r, j].set_xticks(layers)
                axes[r, j].set_xlabel("layer ℓ")
        axes[0, 0].legend(fontsize=6)
        axes[1, 0].legend(fontsize=6)
        out["metric_vertex.png"] = fig

        # collapse: V/(n K²) vs Σ_{ℓ'<ℓ} 1/n_ℓ'
        fig, axes = grid(1)
        for j, a in enumerate(acts):
            ax = axes[0, j]
            for i, arch in enumerate(archs):
                pt = ds.sel(activation=a, arch=arch)
                nprev = pt.n_prev.values
                x = np.concatenate([[0.0], np.cumsum(1.0 / nprev[1:])])
                for al in range(N):
                    K2 = pt.K.values[:, al, al] ** 2
                    th = pt.V.values[:, al, al, al, al] / (nprev * K2)
                    sim = pt.vertex_sim.values[:, al, al, al, al] / (nprev * K2)
                    se = pt.vertex_se.values[:, al, al, al, al] / (nprev * K2)
                    ax.plot(x, th, "-", lw=0.8, color=f"C{i}", alpha=0.7)
                    ax.errorbar(x, sim, se, fmt=mk[al % 8], ms=3, ls="none", color=f"C{i}",
                                label=(f"n={arch}" if al == 0 else None))
            ax.set_xlabel("Σ_{ℓ'<ℓ} 1/n_ℓ'  (= (ℓ−1)/n)")
            ax.set_title(f"{a}: V_(αα)(αα)/(n_(ℓ−1) K_αα²), all inputs", fontsize=8)
        axes[0, 0].set_ylabel("normalised vertex")
        axes[0, 0].legend(fontsize=6)
        out["vertex_collapse.png"] = fig

        if len(p.widths) >= 2 and p.depth >= 3:
            fig, axes = grid(2)
            for j, a in enumerate(acts):
                f = self.residual_fits(p, ds, a)
                n = f["n"]
                xs = np.linspace(0.0, 1.0 / n[0], 20)
                for k, e in enumerate(entries):
                    d = f["entries"][e]
                    axes[0, j].errorbar(1.0 / n, n * d["r"], n * d["se"], fmt="o", ms=3, color=f"C{k}", label=f"({e[0]}{e[1]})")
                    line, band = fd.line_fit_band(1.0 / n, n * d["r"], n * d["se"], xs)
                    axes[0, j].plot(xs, line, "-", lw=0.8, color=f"C{k}")
                    axes[0, j].fill_between(xs, line - band, line + band, color=f"C{k}", alpha=0.15, lw=0)
                    axes[0, j].plot([0.0], [f["G1"][e]], "*", ms=9, color=f"C{k}", mec="k", mew=0.4)
                axes[0, j].axhline(0.0, color="0.6", lw=0.6)
                axes[0, j].set_xlabel("1/n")
                axes[0, j].set_title(f"{a}, ℓ={p.depth}: n(sim − K) = a + b/n, band ±1σ (★ theory G1)", fontsize=8)
                sel = f["selected"]
                d = f["entries"][sel]
                ax = axes[1, j]
                ok = f["signed_r"] > 0
                ax.errorbar(n[ok], f["signed_r"][ok], d["se"][ok], fmt="o", ms=3.5, label=f"|sim − K|_{sel[0]}{sel[1]}")
                ng = np.geomspace(n[0] / 1.3, n[-1] * 1.3, 20)
                ax.plot(ng, abs(f["G1"][sel]) / ng, "k--", lw=0.8, label="|G1|/n")
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_xlabel("n")
                slope_title = f"slope {f['slope']:.2f} ± {f['se_slope']:.2f} (expect −1)"
                title = slope_title if f["resolved"] else "slope: residual unresolved"
                ax.set_title(title, fontsize=8)
                ax.legend(fontsize=6)
            axes[0, 0].set_ylabel("n · (sim − K)")
            axes[0, 0].legend(fontsize=6)
            out["residual.png"] = fig

        zfig = Figure(figsize=(7.0, 3.4), layout="constrained")
        ax = zfig.subplots()
        for j, a in enumerate(acts):
            sub = ds.sel(activation=a)
            for k, (sim, se, th, lab) in enumerate(
                (("metric_sim", "metric_se", "G", "E[zz] vs K+G1/n"), ("metric_sim", "metric_se", "K", "E[zz] vs K"),
                 ("vertex_sim", "vertex_se", "V", "V"))
            ):
                z = ((sub[sim] - sub[th]) / sub[se]).values.ravel()
                z = z[np.isfinite(z)]
                ax.plot(j + 0.25 * (k - 1) + np.linspace(-0.08, 0.08, z.size), z, ".", ms=2, color=f"C{k}",
                        label=lab if j == 0 else None)
        ax.axhline(p.max_z, color="crimson", lw=0.8)
        ax.axhline(-p.max_z, color="crimson", lw=0.8)
        ax.set_xticks(range(len(acts)), acts)
        ax.set_ylabel("(sim − theory)/stderr")
        ax.set_title("raw z of every layer and entry (checks add the O(1/n) allowance)", fontsize=8)
        ax.legend(fontsize=7)
        out["zscores.png"] = zfig
        return out
