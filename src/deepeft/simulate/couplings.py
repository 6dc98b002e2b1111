"""Couplings of the m-neuron action fitted to samples of preactivations, through the Ch. 1 inverse map.

For one input and one layer, ``z`` (S, n) holds n neurons of S independent networks. Each network's neurons are cut
into ⌊n/m⌋ disjoint groups of m; the correlators E[z_a z_b] (m, m) and E[z_a z_b z_c z_d] (m, m, m, m) are the means
over networks and groups (no symmetry is imposed). The Ch. 1 inverse map of the quartic action (1.71)
(:meth:`deepeft.gaussian.action.NearlyGaussianAction.from_correlators`: εV = −G⁻¹G⁻¹G⁻¹G⁻¹·C, K = G − ½C·G⁻¹,
inverting (1.74) and (1.78) at first order) turns them into the action's K_{ab} and εV^{abcd}; projected on the
structure of the m-neuron action (4.97),

    1/g_m = tr K / m,     v = −⟨T, εV⟩/⟨T, T⟩,    T_{abcd} = δ_ab δ_cd + δ_ac δ_bd + δ_ad δ_bc,  ⟨T, T⟩ = 3m² + 6m,

these are the fitted counterparts of (4.102) and (4.103). The rest of the fit must vanish: K's off-diagonal
entries and the part of εV orthogonal to T (reported as ``off_K`` and ``off_V``: the largest entries, in units of
their standard errors). Standard errors: delete-one-block jackknife over networks (:func:`deepeft.statistics.jackknife`)
— neurons of one network are correlated (they share the previous layer), networks are independent.

Conditional (Rao–Blackwell) estimator. Given layer ℓ − 1, the neurons of layer ℓ ≥ 2 are iid N(0, Ĝ^{(ℓ)}) with the
stochastic metric Ĝ^{(ℓ)} = C_b + (C_W/n_{ℓ−1}) Σ_j σ(z_j^{(ℓ−1)})² (4.70)–(4.71), which every network's previous layer
gives exactly. So E[z_a z_b | ℓ−1] = Ĝ δ_ab and E[z_a z_b z_c z_d | ℓ−1] = Ĝ² T_abcd, and replacing each network's
moments by these conditional expectations leaves every correlator's mean unchanged (law of total expectation) while
removing the sampling noise of the last layer's weights: E[zz] = E[Ĝ]·δ, E[zzzz]_c = Var(Ĝ)·T. With ``metric`` given,
``fit_couplings`` applies the same inverse map to these correlators for 1/g_m, v, G, the connected part and the slope
(1/g_m's standard error drops ≈ 4× at layer 2 and ≈ 2× at layer 3 for tanh, n = 24; v's ≈ 4–9×: measured, docs/couplings.md);
the structure checks ``off_K``, ``off_V`` always use the raw neuron moments (the conditional ones have the action's
structure by construction). :func:`ensemble_couplings` does this for ℓ ≥ 2 (``conditional=True``, the default);
layer 1's Ĝ is deterministic, so it keeps the direct estimator there.

References:
  Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (2022), arXiv:2106.10165, (1.71)–(1.78), (4.97)–(4.103)
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from .. import _validate as v
from ..errors import DeepEFTInputError
from ..gaussian.action import NearlyGaussianAction
from ..gaussian.wick import wick_tensor
from ..network import MLP
from ..statistics import Estimate, check_samples, jackknife

__all__ = ["CouplingFit", "EnsembleCouplings", "ensemble_couplings", "fit_couplings"]

_MAX_M = 6  # m⁴ moments per network: 1296 at m = 6


@dataclasses.dataclass(frozen=True, eq=False)
class CouplingFit:
    """Fitted couplings of the m-neuron action of one layer, for each neuron count in ``m`` (arrays of len(m)):
    ``inv_g`` = 1/g_m, ``v``, the metric ``G`` = tr E[zz]/m and ``connected`` = the T-projection of the connected
    four-point function (= V/n_{ℓ−1} (4.117)) — from the conditional moments when ``conditional`` (module docstring);
    ``slope`` = the least-squares slope of 1/g_m against m (the running;
    (4.102): −V/(2 n_{ℓ−1} G)), NaN for one m; ``off_K``, ``off_V``: per m, the largest |entry|/SE of the fit's parts that
    the action (4.97) says are zero (K off-diagonal; εV ⊥ T). All errors from one jackknife, so differences between
    neuron counts have correct (correlated) errors."""

    m: tuple[int, ...]
    inv_g: Estimate
    v: Estimate
    G: Estimate
    connected: Estimate
    slope: Estimate
    off_K: np.ndarray
    off_V: np.ndarray
    n_samples: int
    conditional: bool = False


def _tensor_T(m: int) -> np.ndarray:
    e = np.eye(m)
    return np.einsum("ij,kl->ijkl", e, e) + np.einsum("ik,jl->ijkl", e, e) + np.einsum("il,jk->ijkl", e, e)


def _symmetrize4(F: np.ndarray) -> np.ndarray:
    out = np.zeros_like(F)
    for p in itertools.permutations(range(4)):
        out += F.transpose(p)
    return out / 24.0


def _fit_from_moments(M2: np.ndarray, M4: np.ndarray, m: int) -> np.ndarray:
    """[1/g, v, G, c, K off-diagonal entries…, εV ⊥ T entries…] from the mean moments (one network set)."""
    G2 = 0.5 * (M2 + M2.T)
    C = _symmetrize4(M4) - wick_tensor(G2, 4)
    T = _tensor_T(m)
    size = 4 + m * (m - 1) // 2 + m**4
    try:
        act = NearlyGaussianAction.from_correlators(G2, C)
    except DeepEFTInputError:  # K = G − ½C·G⁻¹ not positive definite: the 1/n expansion has broken down
        return np.full(size, np.nan)
    K, epsV = act.K, act.coupling
    tt = 3.0 * m * m + 6.0 * m
    v_fit = -float(np.sum(T * epsV)) / tt
    c_fit = float(np.sum(T * C)) / tt
    iu = np.triu_indices(m, 1)
    rest = (epsV + v_fit * T).ravel()
    return np.concatenate([[np.trace(K) / m, v_fit, np.trace(G2) / m, c_fit], K[iu], rest])


def _group_moments(z: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Per network: E over the ⌊n/m⌋ disjoint groups of z_a z_b (S, m, m) and z_a z_b z_c z_d (S, m, m, m, m)."""
    S, n = z.shape
    groups = n // m
    Z = z[:, : groups * m].reshape(S, groups, m)
    M2 = np.einsum("sga,sgb->sab", Z, Z) / groups
    M4 = np.einsum("sga,sgb,sgc,sgd->sabcd", Z, Z, Z, Z, optimize=True) / groups
    return M2, M4


def fit_couplings(z, m=(1, 2, 3, 4), *, blocks: int = 32, metric=None) -> CouplingFit:
    """Fit 1/g_m and v of the m-neuron action (4.97), for each m, to samples ``z`` (S, n) of one layer's n neurons (one
    input, S independent networks) through the Ch. 1 inverse map; jackknife standard errors over networks.

    ``metric`` (S,): each network's stochastic metric Ĝ^{(ℓ)} (4.70), the variance of its neurons given the previous
    layer (:func:`deepeft.simulate.stochastic_metric_from_preactivations`); when given, 1/g_m, v, G, the connected part
    and the slope come from the conditional correlators E[Ĝ]δ, Var(Ĝ)T (the Rao–Blackwell estimator of the module
    docstring: same expectation, smaller standard error); ``off_K``, ``off_V`` still from ``z``.

    Where the inverse map has no positive-definite K (((m + 2)/2)·V/(nG²) ≳ 1: the 1/n expansion has broken down, e.g.
    ReLU with (ℓ − 1)/n ≳ 0.1) that neuron count's entries are NaN."""
    z = check_samples(z, "z")
    if z.ndim != 2:
        raise DeepEFTInputError(f"z must have shape (networks, neurons), got {z.shape}.")
    S, n = z.shape
    ms = tuple(v.positive_int(int(k), "m (neurons per group)") for k in np.atleast_1d(m))
    if len(set(ms)) != len(ms) or max(ms) > min(n, _MAX_M):
        raise DeepEFTInputError(
            f"m must list distinct neuron counts ≤ min(n, {_MAX_M}) = {min(n, _MAX_M)} (n = {n} neurons given), got {ms}."
        )
    arrays = [a for k in ms for a in _group_moments(z, k)]
    conditional = metric is not None
    if conditional:
        g = check_samples(metric, "metric")
        if g.shape != (S,) or np.any(g <= 0):
            raise DeepEFTInputError(f"metric must hold one positive Ĝ per network, shape ({S},), got shape {g.shape} "
                                    f"(min {float(np.min(g)):.3g}).")
        arrays += [g, g * g]
    sizes: list[int] = []

    def stat(*arrs):
        parts = [_fit_from_moments(arrs[2 * i].mean(axis=0), arrs[2 * i + 1].mean(axis=0), k) for i, k in enumerate(ms)]
        sizes[:] = [p.size for p in parts]
        if conditional:  # E[zz | ℓ−1] = Ĝδ, E[zzzz | ℓ−1] = Ĝ²T (4.71): the same inverse map on conditional correlators
            g1, g2 = float(arrs[-2].mean()), float(arrs[-1].mean())
            head = np.array([_fit_from_moments(g1 * np.eye(k), g2 * _tensor_T(k), k)[:4] for k in ms])
        else:
            head = np.array([p[:4] for p in parts])  # (len m, 4)
        if len(ms) > 1:
            slope = np.polyfit(np.asarray(ms, float), head[:, 0], 1)[0]
        else:
            slope = np.nan
        return np.concatenate([head.T.ravel(), [slope], *(p[4:] for p in parts)])

    est = jackknife(stat, *arrays, blocks=blocks)
    val, se = np.asarray(est.value), np.asarray(est.stderr)
    k = len(ms)
    off_K, off_V = np.zeros(k), np.zeros(k)
    pos = 4 * k + 1
    for i, mm in enumerate(ms):
        nK = mm * (mm - 1) // 2
        for out, length in ((off_K, nK), (off_V, sizes[i] - 4 - nK)):
            a, s = val[pos : pos + length], se[pos : pos + length]
            good = np.isfinite(s) & (s > 0)
            out[i] = float(np.max(np.abs(a[good]) / s[good])) if np.any(good) else 0.0
            pos += length
    inv_g, v_fit, G, conn = (Estimate(val[j * k : (j + 1) * k], se[j * k : (j + 1) * k]) for j in range(4))
    return CouplingFit(m=ms, inv_g=inv_g, v=v_fit, G=G, connected=conn, slope=Estimate(val[4 * k], se[4 * k]),
                       off_K=off_K, off_V=off_V, n_samples=S, conditional=conditional)


@dataclasses.dataclass(frozen=True, eq=False)
class EnsembleCouplings:
    """Fitted couplings per layer ℓ = 1..L: ``fits[ℓ − 1]`` (a :class:`CouplingFit`); ``inv_g``, ``v``, ``G`` are
    (L, len(m)) and ``slope`` (L,) :class:`~deepeft.statistics.Estimate` s."""

    m: tuple[int, ...]
    fits: tuple[CouplingFit, ...]

    def _stack(self, attr: str) -> Estimate:
        val = np.array([getattr(f, attr).value for f in self.fits])
        se = np.array([getattr(f, attr).stderr for f in self.fits])
        return Estimate(val, se)

    @property
    def slope(self) -> Estimate:
        return self._stack("slope")

    @property
    def inv_g(self) -> Estimate:
        return self._stack("inv_g")

    @property
    def v(self) -> Estimate:
        return self._stack("v")

    @property
    def G(self) -> Estimate:
        return self._stack("G")


def ensemble_couplings(net: MLP, x, n_networks: int, *, m=(1, 2, 3, 4), seed: int = 0, blocks: int = 32,
                       dtype: str = "float32", conditional: bool = True) -> EnsembleCouplings:
    """Sample ``n_networks`` random networks (:func:`deepeft.simulate.sample_ensemble`, all neurons of every layer kept
    for input ``x`` (n0,)) and fit the m-neuron couplings of every layer with :func:`fit_couplings`; with
    ``conditional`` (default) layers ℓ ≥ 2 use the conditional (Rao–Blackwell) correlators from each network's
    Ĝ^{(ℓ)} (module docstring), layer 1 (deterministic Ĝ) the direct ones."""
    from .ensemble import sample_ensemble
    from .metric_cumulants import stochastic_metric_from_preactivations

    X = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if X.shape[0] != 1:
        raise DeepEFTInputError(f"ensemble_couplings takes one input x of shape (n0,), got {np.shape(x)}.")
    ms = tuple(v.positive_int(int(k), "m") for k in np.atleast_1d(m))
    n_networks = v.positive_int(n_networks, "n_networks", minimum=2)
    ens = sample_ensemble(net, X, n_networks, seed, keep_preactivations=(n_networks, max(net.n[1:])), vertex=False,
                          dtype=dtype)
    assert ens.preactivations is not None
    zs = [np.asarray(zl[:, 0, :], np.float64) for zl in ens.preactivations]
    G_hat = stochastic_metric_from_preactivations(net, X[0], zs) if conditional else None
    fits = tuple(fit_couplings(zl, ms, blocks=blocks, metric=G_hat[:, l] if G_hat is not None and l > 0 else None)
                 for l, zl in enumerate(zs))
    return EnsembleCouplings(ms, fits)
