"""Analysis pipeline for sampled lattice trajectories (paper §5–6, App. 8.3, Figs. 4 and 6–9).

Protocol: open chain, discard the transient (default: the first half, layers < L/2), analyse the window
layers [L/2, L); fluctuations ε = r − r* (linear) or x = (r_+ − r*, r_− − r*, k − N/2) (ReLU, optionally
scaled to (ε̃_+, ε̃_−, ε̃_k) of (21)); per-sample FFT over the window; per-mode means and (cross-)spectra
with standard errors across networks. Networks are independent, so every estimator is a per-network
statistic averaged over networks, and its standard error is the across-network standard deviation / √M.

Because r* is the mode, not the mean (E9), ε has a small non-zero mean: it only enters the q = 0 mode
(excluded from spectral comparisons) and is removed by the ensemble mean in covariance estimates.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .. import _validate as V
from ..errors import DeepEFTInputError
from ..statistics import Estimate, mean_se
from .fluctuations import quadratic_theory
from .saddle import saddle_linear
from .samplers import LatticeSample

__all__ = [
    "analysis_window",
    "fluctuation_fields",
    "Estimate",
    "moments",
    "estimate_lagged_covariance",
    "estimate_step_residual",
    "ModeStatistics",
    "mode_statistics",
    "median_bin_ratio",
    "mode_histograms",
]


def _per_network(stat: np.ndarray) -> Estimate:
    """Mean and standard error over axis 0 (networks): :func:`deepeft.statistics.mean_se`."""
    if stat.shape[0] < 2:
        raise DeepEFTInputError("need at least 2 networks for a standard error.")
    return Estimate(*mean_se(stat))


def analysis_window(L, *, transient=None, stop=None) -> slice:
    """Layers [transient, stop) analysed; default transient = L//2 (paper: layers 512–1024 of L = 1024)."""
    L = V.positive_int(L, "L")
    start = L // 2 if transient is None else V.positive_int(transient, "transient", minimum=0)
    stop = L if stop is None else V.positive_int(stop, "stop")
    if not 0 <= start < stop <= L or stop - start < 2:
        raise DeepEFTInputError(f"the window [{start}, {stop}) must hold >= 2 layers within [0, {L}).")
    return slice(start, stop)


def fluctuation_fields(sample: LatticeSample, model, *, window=None, input_index=0, scaled=False, r_star=None):
    """Fluctuations in the analysis window: (M, W) for 'linear', (M, W, 3) for 'relu'.

    linear: ε^l = r^l − r* (13); relu: (r_+ − r*_±, r_− − r*_±, k − N/2) (20), or with ``scaled=True`` the
    fields (ε̃_+, ε̃_−, ε̃_k) of (21). ``r_star`` overrides the saddle (e.g. :func:`.saddle.saddle_numeric`
    for other activations with model='linear' used as "norm minus reference").
    """
    if not isinstance(sample, LatticeSample):
        raise DeepEFTInputError("sample must be a LatticeSample from sample_conditional / sample_full_weights.")
    if model not in ("linear", "relu"):
        raise DeepEFTInputError(f"model must be 'linear' or 'relu', got {model!r}.")
    w = analysis_window(sample.L) if window is None else window
    i = V.positive_int(input_index, "input_index", minimum=0)
    if i >= sample.r.shape[2]:
        raise DeepEFTInputError(f"input_index {i} out of range (the sample has {sample.r.shape[2]} inputs).")
    if model == "linear":
        rs = r_star if r_star is not None else saddle_linear(sample.sigma_w2, sample.sigma_b2, sample.N)
        return sample.r[:, w, i].astype(np.float64) - rs
    th = quadratic_theory("relu", sample.sigma_w2, sample.sigma_b2, sample.N)
    rs = th.scale[0] * np.sqrt(sample.N) if r_star is None else r_star
    x = np.stack(
        [sample.r_plus[:, w, i] - rs, sample.r_minus[:, w, i] - rs, sample.k[:, w, i] - sample.N / 2.0], axis=-1
    ).astype(np.float64)
    return x / th.scale if scaled else x


def moments(values) -> dict[str, Estimate]:
    """Window means of x and x² per network (x: (M, W) or (M, W, b)), averaged over networks with SEs."""
    x = np.asarray(values, dtype=np.float64)
    return {"mean": _per_network(x.mean(1)), "second": _per_network((x * x).mean(1))}


def _fields(x):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        return x[..., None], True
    if x.ndim != 3:
        raise DeepEFTInputError(f"fluctuations must have shape (M, W) or (M, W, b), got {x.shape}.")
    return x, False


def estimate_lagged_covariance(x, d_max, *, center=True, cyclic=False) -> Estimate:
    """Ĉ(d) = E[x_{l+d} x_lᵀ], d = 0..d_max, from per-network window averages (centred on the ensemble
    mean per field when ``center``); value/se shapes (d_max+1,) or (d_max+1, b, b).
    ``cyclic=True`` for ring samples: pairs (l + d mod L, l) over all L sites."""
    x, scalar = _fields(x)
    M, W, b = x.shape
    d_max = V.positive_int(d_max, "d_max", minimum=0)
    if d_max >= W - 1 and not cyclic:
        raise DeepEFTInputError(f"d_max = {d_max} must be < window length − 1 = {W - 1}.")
    if center:
        x = x - x.mean(axis=(0, 1), keepdims=True)
    if cyclic:
        per = np.stack([np.einsum("mla,mlb->mab", np.roll(x, -d, axis=1), x) / W for d in range(d_max + 1)], 1)
    else:
        per = np.stack([np.einsum("mla,mlb->mab", x[:, d:], x[:, : W - d]) / (W - d) for d in range(d_max + 1)], 1)
    est = _per_network(per)
    if scalar:
        return Estimate(np.asarray(est.value)[:, 0, 0], np.asarray(est.stderr)[:, 0, 0])
    return est


def estimate_step_residual(x, a) -> Estimate:
    """E[(ε_{l+1} − a ε_l)²] of a scalar field (M, W), from per-network window averages (centred on the ensemble
    mean, as :func:`estimate_lagged_covariance`).

    For a stationary chain it equals C(0)(1 + a²) − 2a·C(1); with a = C(1)/C(0) of the theory, the one-step
    (innovation) variance C(0)(1 − ρ²) of the AR(1) chain (14). The residuals are nearly white, so its relative
    standard error is ≈ √(2/(M·W)) at any correlation length, where that of C(0) grows as √((1 + ρ²)/(1 − ρ²)):
    the sharp test of the covariance scale near criticality.
    """
    x, scalar = _fields(x)
    if not scalar:
        raise DeepEFTInputError(f"the step residual is defined for a scalar field (M, W), got {x.shape}.")
    x = x[..., 0] - x.mean()
    a = V.finite_scalar(a, "a", minimum=None)
    return _per_network(((x[:, 1:] - a * x[:, :-1]) ** 2).mean(1))


@dataclasses.dataclass(frozen=True)
class ModeStatistics:
    """Per-mode statistics of x̂_n = fft(x)_n over the window (W layers), q_n = 2πn/W.

    mean: E[ε_q] with ε_q = x̂_n/W (Fig. 9a); spectrum: E[x̂_n x̂_nᴴ]/W (Figs. 4, 6, 9b; compare with
    fluctuations.expected_periodogram, or fluctuations.spectrum for W ≫ ξ); shapes (W,) or (W, b, b).
    """

    q: np.ndarray
    mean: Estimate
    spectrum: Estimate


def mode_statistics(x) -> ModeStatistics:
    """Per-sample FFT of the window, then per-mode mean and (cross-)spectrum with standard errors.

    For complex per-network quantities (an :class:`~deepeft.statistics.Estimate` with a complex value) the
    standard error is that of the real and imaginary parts combined: se = √(se_re² + se_im²).
    """
    x, scalar = _fields(x)
    M, W, b = x.shape
    xh = np.fft.fft(x, axis=1)  # (M, W, b)
    eq = xh / W
    spec = np.einsum("mna,mnb->mnab", xh, np.conj(xh)) / W
    mean = _complex_estimate(eq)
    S = _complex_estimate(spec)
    if scalar:
        mean = Estimate(mean.value[..., 0], mean.stderr[..., 0])
        S = Estimate(S.value[..., 0, 0].real, S.stderr[..., 0, 0])
    return ModeStatistics(2.0 * np.pi * np.arange(W) / W, mean, S)


def _complex_estimate(v):
    re, im = _per_network(v.real), _per_network(v.imag)
    value: Any = re.value + 1j * im.value  # complex128: Estimate keeps complex values (see its docstring)
    return Estimate(value, np.sqrt(re.stderr**2 + im.stderr**2))


def median_bin_ratio(measured, theory, *, exclude_zero=True) -> float:
    """Median over q bins of measured/theory (q = 0 excluded by default: it carries the E9 mean offset)."""
    m, t = np.asarray(measured).real, np.asarray(theory).real
    sl = slice(1, None) if exclude_zero else slice(None)
    return float(np.median(m[sl] / t[sl]))


def mode_histograms(x, modes, *, bins=30, variance=None, field=0) -> dict[int, dict[str, np.ndarray]]:
    """Histograms of Re ε_q and Im ε_q (ε_q = x̂_n/W) across networks for the given mode indices n (Fig. 8).

    ``variance``: optional per-mode theoretical variance of each component (S(q)/(2W) for 0 < n < W/2), used
    to standardise (so all histograms should follow N(0, 1)); the sample variance is returned alongside.
    """
    x, _ = _fields(x)
    M, W, b = x.shape
    eq = np.fft.fft(x[..., field], axis=1) / W
    out: dict[int, dict] = {}
    for j, n in enumerate(np.atleast_1d(modes)):
        n = int(n)
        if not 0 <= n < W:
            raise DeepEFTInputError(f"mode index {n} out of range [0, {W}).")
        sd = 1.0 if variance is None else float(np.sqrt(np.atleast_1d(variance)[j]))
        comps = {"re": eq[:, n].real / sd, "im": eq[:, n].imag / sd}
        out[n] = {}
        for k, v in comps.items():
            h, e = np.histogram(v, bins=bins, density=True)
            out[n][k] = h
            out[n][k + "_edges"] = e
            out[n][k + "_var"] = np.var(v, ddof=1)
    return out
