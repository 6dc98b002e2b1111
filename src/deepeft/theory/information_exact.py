"""Exact (non-perturbative) information of the single-input preactivation distribution: Gaussian scale mixtures.

For one input, the m preactivations of layer ℓ are, given layer ℓ − 1, iid N(0, Ĝ^{(ℓ)}) with the stochastic
metric Ĝ^{(ℓ)} = C_b + (C_W/n_{ℓ−1}) Σ_j σ(z_j^{(ℓ−1)})² (4.70)–(4.71). Their law is therefore *exactly* the
scale mixture p_m(z) = E_s[N(z; 0, s I_m)] over the law of s = Ĝ^{(ℓ)}, with G = E[s] and V/n = Var(s) (4.76),
so x = V/(nG²) = Var(s)/E[s]² (A.68). No 1/n expansion enters.

With ρ = |z|², the KL divergence from the Gaussian of the same variance is a one-dimensional integral,

    D_m ≡ (m/2) log(2πeG) − 𝒮_m = ∫ dρ f_m(ρ) log R_m(ρ),   R_m = E_s[(G/s)^{m/2} e^{−ρ(1/s − 1/G)/2}],

f_m the density of ρ (a mixture of scaled χ²_m). The Gaussian part of 𝒮 is additive in m, so
I[𝓜₁, 𝓜₂] = D_{m₁+m₂} − D_{m₁} − D_{m₂} (A.14) and I₃ by (A.24). We integrate in y = log ρ with the
trapezoid rule (spectrally accurate for these smooth, fast-decaying integrands; the mixing law is a set of
nodes s_k with weights w_k), in float64 with log-sum-exp.

Mixing laws: exact for deep linear networks and ReLU networks with C_b = 0 (s = K^{(1)} Π_ℓ (C_W/n_ℓ) χ²_{k_ℓ},
k_ℓ = n_ℓ (linear) or k_ℓ ~ Binomial(n_ℓ, ½) (ReLU), a product law built by convolution on a log grid);
from ensembles for any activation (samples of Ĝ^{(L)}, binned on a log grid; jackknife standard errors).

References:
    Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory* (arXiv:2106.10165), (4.70)–(4.76), App. A.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.special import gammainccinv, gammaincinv, gammaln, logsumexp

from .. import _validate as v
from ..activations import activation as _activation
from ..errors import DeepEFTInputError
from ..statistics import Estimate, check_samples, jackknife

__all__ = [
    "ScaleMixture",
    "exact_mixture",
    "mixture_divergence",
    "mixture_entropy",
    "mixture_mutual_information",
    "mixture_tripartite_information",
    "metric_samples_information",
    "scale_mixture",
]

_TAIL = 1e-17  # χ² tail probability beyond which a factor's log-density grid stops


def _chi2_ppf(q: float, k: float) -> float:
    """Lower-tail quantile of χ²_k (scipy.special only: ``import deepeft`` does not load scipy.stats)."""
    return 2.0 * float(gammaincinv(k / 2.0, q))


def _chi2_isf(q: float, k: float) -> float:
    """Upper-tail quantile of χ²_k."""
    return 2.0 * float(gammainccinv(k / 2.0, q))


def _binom_pmf(k: np.ndarray, n: int) -> np.ndarray:
    """Binomial(n, ½) probabilities of k."""
    return np.exp(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) - n * math.log(2.0))
_GRID_PTS_PER_SD = 12  # trapezoid nodes per standard deviation in log ρ (integration) and log s (exact laws): the
# integrands are smooth (analytic), so the rule converges like exp(−2π²·12²) — rounding-limited (checked against 48)
_PTS_PER_SD = 40  # default bins per standard deviation of log Ĝ for samples (cloud-in-cell, see below)
_MAX_NODES = 4000  # an exact product law with more nodes is rebinned to _REBIN_PTS_PER_SD
_REBIN_PTS_PER_SD = 100
_RELU_MIN_WIDTH = 24  # below this, the atom s = 0 (all ReLUs off, probability 2^{−n}) is not negligible


@dataclasses.dataclass(frozen=True, eq=False)
class ScaleMixture:
    """A law of the variance s: nodes ``s`` (> 0) with probabilities ``w`` (sum 1)."""

    s: np.ndarray
    w: np.ndarray

    @property
    def G(self) -> float:
        """E[s] — the metric G^{(ℓ)}."""
        return float(np.dot(self.w, self.s))

    @property
    def x(self) -> float:
        """Var(s)/E[s]² = V/(nG²) (A.68)."""
        G = self.G
        return float(np.dot(self.w, (self.s - G) ** 2)) / G**2


def scale_mixture(s, weights=None) -> ScaleMixture:
    """A mixing law from nodes ``s`` (> 0) and ``weights`` (≥ 0; default equal: an empirical law of samples)."""
    sa = np.asarray(s, dtype=np.float64).ravel()
    if sa.size == 0 or not np.all(np.isfinite(sa)) or np.any(sa <= 0):
        raise DeepEFTInputError("s must be a non-empty array of finite variances > 0 (drop s = 0: a point mass).")
    if weights is None:
        wa = np.full(sa.size, 1.0 / sa.size)
    else:
        wa = np.asarray(weights, dtype=np.float64).ravel()
        if wa.shape != sa.shape or not np.all(np.isfinite(wa)) or np.any(wa < 0) or wa.sum() <= 0:
            raise DeepEFTInputError("weights must be finite, >= 0, not all 0, one per node of s.")
        wa = wa / wa.sum()
    keep = wa > 0
    return ScaleMixture(sa[keep], wa[keep])


def _log_sd(mix: ScaleMixture) -> float:
    ls = np.log(mix.s)
    mu = np.dot(mix.w, ls)
    return float(np.sqrt(np.dot(mix.w, (ls - mu) ** 2)))


def _rho_grid(mix: ScaleMixture, m: int) -> tuple[np.ndarray, float]:
    """Uniform grid in y = log ρ covering the χ²_m tails of every node, and its spacing."""
    lo = math.log(mix.s.min()) + math.log(_chi2_ppf(_TAIL, m))
    hi = math.log(mix.s.max()) + math.log(_chi2_isf(_TAIL, m))
    h = min(math.sqrt(2.0 / m), 1.0) / _GRID_PTS_PER_SD  # the integrand's width in y: that of log χ²_m (≈ √(2/m))
    n = int(math.ceil((hi - lo) / h)) + 1
    return np.linspace(lo, hi, n), (hi - lo) / (n - 1)


def _divergence(mix: ScaleMixture, m: int) -> float:
    G = mix.G
    y, _ = _rho_grid(mix, m)
    rho = np.exp(y)
    lw = np.log(mix.w)
    ls = np.log(mix.s)
    out = 0.0
    for start in range(0, rho.size, 2048):  # bounded memory: (chunk × nodes)
        r = rho[start : start + 2048, None]
        t = r / mix.s[None, :]
        # density of ρ per unit y: Σ_k w_k χ²_m(ρ/s_k) ρ/s_k
        logf = logsumexp(lw + (m / 2) * np.log(t) - t / 2 - (m / 2) * math.log(2.0) - gammaln(m / 2), axis=1)
        logR = logsumexp(lw + (m / 2) * (math.log(G) - ls) - 0.5 * r * (1.0 / mix.s - 1.0 / G), axis=1)
        seg = np.exp(logf) * logR
        out += float(np.sum(seg))
    # trapezoid with negligible end values (tails beyond 1e-17)
    return out * (y[1] - y[0])


def mixture_divergence(mix: ScaleMixture, m: int) -> float:
    """D_m = KL[p_m ‖ N(0, G I_m)] = (m/2) log(2πeG) − 𝒮_m ≥ 0 (A.16), by quadrature (see module doc)."""
    return _divergence(mix, v.positive_int(m, "m"))


def mixture_entropy(mix: ScaleMixture, m: int) -> float:
    """𝒮_m of m neurons (A.16): (m/2) log(2πeG) − D_m; compare with (A.66)."""
    m = v.positive_int(m, "m")
    return 0.5 * m * math.log(2 * math.pi * math.e * mix.G) - _divergence(mix, m)


def mixture_mutual_information(mix: ScaleMixture, m1: int, m2: int) -> float:
    """Exact I[𝓜₁, 𝓜₂] = 𝒮_{m₁} + 𝒮_{m₂} − 𝒮_{m₁+m₂} (A.14) = D_{m₁+m₂} − D_{m₁} − D_{m₂}; compare (A.67)."""
    m1, m2 = v.positive_int(m1, "m1"), v.positive_int(m2, "m2")
    D = {m: _divergence(mix, m) for m in {m1, m2, m1 + m2}}
    return D[m1 + m2] - D[m1] - D[m2]


def mixture_tripartite_information(mix: ScaleMixture, m1: int, m2: int, m3: int) -> float:
    """Exact I₃ (A.24) of three neuron groups: Σ𝒮_single − Σ𝒮_pairs + 𝒮_all (Gaussian parts cancel); compare (A.75)."""
    ms = [v.positive_int(m, f"m{i + 1}") for i, m in enumerate((m1, m2, m3))]
    sizes = {*ms, ms[0] + ms[1], ms[1] + ms[2], ms[0] + ms[2], sum(ms)}
    D = {m: _divergence(mix, m) for m in sizes}
    pairs = D[ms[0] + ms[1]] + D[ms[1] + ms[2]] + D[ms[0] + ms[2]]
    return pairs - D[ms[0]] - D[ms[1]] - D[ms[2]] - D[sum(ms)]


# ----------------------------------------------------------------------------------------------
# Exact mixing laws: deep linear and ReLU networks with C_b = 0
# ----------------------------------------------------------------------------------------------


def _factor(k_probs: list[tuple[int, float]], n: int, h: float, C_W: float) -> tuple[float, np.ndarray]:
    """Log-grid weights of t = (C_W/n) χ²_k mixed over k (prob p_k): (grid start, weights·h)."""
    lo = min(math.log(_chi2_ppf(_TAIL, k) * C_W / n) for k, _ in k_probs)
    hi = max(math.log(_chi2_isf(_TAIL, k) * C_W / n) for k, _ in k_probs)
    u = lo + h * np.arange(int(math.ceil((hi - lo) / h)) + 1)
    c = np.exp(u) * n / C_W  # the χ² variable at each node
    dens = np.zeros_like(u)
    for k, p in k_probs:
        dens += p * np.exp((k / 2) * np.log(c) - c / 2 - (k / 2) * math.log(2.0) - gammaln(k / 2))  # per unit u
    w = dens * h
    keep = np.nonzero(w > 1e-17 * w.sum())[0]  # trim the far tails (mass ≲ 10⁻¹⁵ in all)
    return lo + h * keep[0], w[keep[0] : keep[-1] + 1]


def _rebin(start: float, w: np.ndarray, h: float, h_new: float) -> tuple[float, np.ndarray]:
    """Cloud-in-cell rebinning onto a coarser grid of spacing h_new (keeps total mass and mean of log s)."""
    u = start + h * np.arange(w.size)
    pos = (u - start) / h_new
    i = np.floor(pos).astype(int)
    f = pos - i
    out = np.zeros(i.max() + 2)
    np.add.at(out, i, w * (1 - f))
    np.add.at(out, i + 1, w * f)
    return start, out


def exact_mixture(activation, widths, *, C_W=None, K1: float = 1.0) -> ScaleMixture:
    """The exact law of s = Ĝ^{(L)} for one input of an MLP with C_b = 0 and hidden ``widths`` n_1..n_{L−1}:
    linear σ: s = K^{(1)} Π_ℓ (C_W/n_ℓ) χ²_{n_ℓ} (the deep linear network, Ch. 3); ReLU: χ²_{k_ℓ} with
    k_ℓ ~ Binomial(n_ℓ, ½) active units (the all-off atom s = 0, probability ≈ Σ_ℓ 2^{−n_ℓ}, is dropped; widths
    ≥ 24 keep it below 10⁻⁷). ``C_W``: scalar or per hidden layer (default critical: 1 linear, 2 ReLU)."""
    act = _activation(activation)
    if act.name not in ("linear", "relu") or (act.name == "linear" and act.a_plus != 1.0):
        raise DeepEFTInputError(
            f"exact_mixture knows the law of Ĝ for 'linear' (slope 1) and 'relu' with C_b = 0, got {act!r}; for other "
            "activations sample Ĝ^(L) from an ensemble and use metric_samples_information."
        )
    ws = [v.positive_int(n, f"widths[{i}]") for i, n in enumerate(v.sequence_of(widths, "widths"))]
    if not ws:
        raise DeepEFTInputError("widths must name at least one hidden layer (with none, s = K^(1) is deterministic).")
    relu = act.name == "relu"
    if relu and min(ws) < _RELU_MIN_WIDTH:
        raise DeepEFTInputError(
            f"ReLU widths must be >= {_RELU_MIN_WIDTH}: with n = {min(ws)} all units are off with probability 2^-n, an "
            "atom at s = 0 whose information this law omits."
        )
    cw = v.per_layer(2.0 if relu and C_W is None else (1.0 if C_W is None else C_W), "C_W", len(ws))
    k1 = v.finite_scalar(K1, "K1", minimum=0.0, strict=True)
    h = min(math.sqrt(2.0 / (n / 2 if relu else n)) for n in ws) / _GRID_PTS_PER_SD
    start, w = 0.0, np.ones(1)
    for n, c in zip(ws, cw, strict=True):
        if relu:
            ks = np.arange(1, n + 1)
            pk = _binom_pmf(ks, n)
            kp = [(int(k), float(p)) for k, p in zip(ks, pk, strict=True) if p > 1e-18]
        else:
            kp = [(n, 1.0)]
        lo, f = _factor(kp, n, h, c)
        start, w = start + lo, np.convolve(w, f)
    w = w / w.sum()
    u = start + h * np.arange(w.size)
    sd = math.sqrt(np.dot(w, u**2) - np.dot(w, u) ** 2)
    if w.size > _MAX_NODES:  # coarsen (cloud-in-cell: Var(log s) grows by ≤ h²/4, ≤ 2.5·10⁻⁵ of itself)
        start, w = _rebin(start, w, h, sd / _REBIN_PTS_PER_SD)
        h = sd / _REBIN_PTS_PER_SD
    u = start + h * np.arange(w.size)
    return scale_mixture(k1 * np.exp(u), w)


# ----------------------------------------------------------------------------------------------
# From ensembles: samples of the stochastic metric
# ----------------------------------------------------------------------------------------------


def _binned(samples: np.ndarray, grid: np.ndarray) -> ScaleMixture:
    """Cloud-in-cell weights of log-samples on a uniform log grid (mean of log s preserved)."""
    h = grid[1] - grid[0]
    pos = (np.log(samples) - grid[0]) / h
    i = np.clip(np.floor(pos).astype(int), 0, grid.size - 2)
    f = np.clip(pos - i, 0.0, 1.0)
    w = np.zeros(grid.size)
    np.add.at(w, i, 1 - f)
    np.add.at(w, i + 1, f)
    return scale_mixture(np.exp(grid), w)


def metric_samples_information(G_hat, groups=(1, 1), *, blocks: int = 32, points_per_sd: int = _PTS_PER_SD) -> Estimate:
    """Exact mutual information (two groups) or tripartite information (three) of the scale mixture whose
    mixing law is the empirical law of ``G_hat`` — samples of the stochastic metric Ĝ^{(ℓ)} (4.70), one per
    network — with a delete-one-block jackknife standard error. Samples are binned on a log grid with
    ``points_per_sd`` nodes per standard deviation of log Ĝ (cloud-in-cell: the variance of log s grows by at most
    1/(4·points_per_sd²) of itself, 1.6·10⁻⁴ at the default 40)."""
    g = check_samples(G_hat, "G_hat").ravel()
    if np.any(g <= 0):
        raise DeepEFTInputError("G_hat must be > 0 (a network with Ĝ = 0 has an identically zero layer).")
    gs = [v.positive_int(m, "groups[i]") for m in v.sequence_of(groups, "groups")]
    if len(gs) not in (2, 3):
        raise DeepEFTInputError(f"groups must give 2 (mutual) or 3 (tripartite) neuron counts, got {groups!r}.")
    lg = np.log(g)
    sd = float(np.std(lg))
    if sd == 0:
        raise DeepEFTInputError("G_hat is constant: the layer is Gaussian and every information is 0.")
    h = sd / v.positive_int(points_per_sd, "points_per_sd", minimum=4)
    grid = np.arange(lg.min() - h, lg.max() + 2 * h, h)

    def stat(sample):
        mix = _binned(sample, grid)
        if len(gs) == 2:
            return mixture_mutual_information(mix, *gs)
        return mixture_tripartite_information(mix, *gs)

    return jackknife(stat, g, blocks=blocks)
