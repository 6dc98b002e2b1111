"""Shared statistics of the lattice experiments (``lattice-meanfield``, ``lattice-linear``, ``lattice-relu``).

Everything here is a per-network statistic averaged over the M independent networks, so every standard
error is the across-network standard deviation / √M (as in :mod:`deepeft.lattice.analysis`). Helpers:

* :func:`band_spectra` — band averages of the measured (cross-)periodogram E[x̂_n x̂_nᴴ]/W, normalised by the
  theory's diagonal √(T_aa T_bb) so that bins of very different size weigh equally (Figs. 4, 6, 9b);
* :func:`mode_mean_statistic` — Fig. 9a "E[ε_q] = 0": the mean squared t-statistic of the per-mode means;
* :func:`mode_gaussianity` — Fig. 8: standardised ε_q per mode (variance → 1, excess kurtosis → 0);
* :func:`laplace_check` — a z-check of a Laplace (large-N) prediction that adds the O(1/(N·gap)) systematic
  outside the Laplace regime (gap = 1 − a, a the AR/VAR(1) coefficient of ``var_model``);
* :func:`reject_check` — the printed-coefficient comparison: passes when the printed theory is rejected.

This module registers no experiment.

References:
  Schoenholz, Pennington & Sohl-Dickstein, A Correspondence Between Random Neural Networks and Statistical
  Field Theory (2017), arXiv:1710.06570
  (docs/references.md)
"""

from __future__ import annotations

import math

import numpy as np

from ..lattice import var_model
from ..statistics import Z_MAX, mean_se
from .checks import Check, zcheck

__all__ = [
    "BANDS",
    "band_bins",
    "band_spectra",
    "mode_mean_statistic",
    "histogram_modes",
    "mode_gaussianity",
    "laplace_gap",
    "laplace_check",
    "reject_check",
    "sampler_seed",
    "pair_labels",
]

BANDS = ("low q", "high q")


def sampler_seed(ctx) -> int:
    """A 31-bit integer seed for ``deepeft.lattice.sample_conditional`` from the task's stream."""
    return int(ctx.rng().integers(0, 2**31 - 1))




def band_bins(W: int) -> list[np.ndarray]:
    """Mode indices n of the low-q band 1..W/8 and the high-q band W/8+1..W/2−1 (q_n = 2πn/W; q = 0 and
    the Nyquist bin, which have a real FFT, are excluded)."""
    cut = max(W // 8, 1)
    return [np.arange(1, cut + 1), np.arange(cut + 1, W // 2)]


def _fields(x):
    x = np.asarray(x, dtype=np.float64)
    return x[..., None] if x.ndim == 2 else x


def band_spectra(x, T) -> dict[str, np.ndarray]:
    """Band averages of Re P_ab(q_n)/√(T_aa T_bb), P = x̂ x̂ᴴ/W per network, against the same of the theory T.

    x: (M, W) or (M, W, b) fluctuations of the analysis window; T: the theory's expected periodogram of the
    window, (W,) or (W, b, b) (``deepeft.lattice.expected_periodogram``). Returns ``value``, ``stderr``,
    ``theory`` of shape (band, b, b) (b = 1 for scalar fields).
    """
    x = _fields(x)
    M, W, b = x.shape
    T = np.asarray(T).reshape(W, b, b)
    xh = np.fft.fft(x, axis=1)
    diag = np.real(np.einsum("naa->na", T))
    norm = np.sqrt(diag[:, :, None] * diag[:, None, :])  # (W, b, b)
    val, se, th = [], [], []
    for n in band_bins(W):
        P = np.real(np.einsum("mna,mnb->mnab", xh[:, n], np.conj(xh[:, n]))) / W
        m, s = mean_se((P / norm[n]).mean(1))
        val.append(m)
        se.append(s)
        th.append((np.real(T[n]) / norm[n]).mean(0))
    return {"value": np.array(val), "stderr": np.array(se), "theory": np.array(th)}


def mode_mean_statistic(x) -> tuple[float, float, float]:
    """Fig. 9a, E[ε_q] = 0 for 0 < q < π: mean over modes and Re/Im parts of t² = (mean/se)², with its theory.

    Under zero means each t follows Student's t with ν = M − 1 degrees of freedom: E[t²] = ν/(ν − 2),
    Var[t²] = 2ν²(ν − 1)/((ν − 2)²(ν − 4)); the k = 2·(W/2 − 1) parts are (nearly) independent modes.
    Returns (simulation, theory, stderr) for a z-check.
    """
    x = _fields(x)[..., 0]
    M, W = x.shape
    eq = np.fft.fft(x, axis=1)[:, 1 : W // 2] / W
    t2 = np.concatenate([(m / s) ** 2 for m, s in (mean_se(part) for part in (eq.real, eq.imag))])
    nu = M - 1
    mean = nu / (nu - 2)
    var = 2 * nu**2 * (nu - 1) / ((nu - 2) ** 2 * (nu - 4))
    return float(t2.mean()), float(mean), float(math.sqrt(var / t2.size))


def histogram_modes(W: int) -> list[int]:
    """Mode indices shown in Fig. 8: n = 1, W/16, W/4, W/2 − 1 (distinct, sorted)."""
    return sorted({1, max(W // 16, 1), max(W // 4, 1), W // 2 - 1})


def mode_gaussianity(x, T, modes, edges) -> dict[str, np.ndarray]:
    """Fig. 8: ε_q = x̂_n/W standardised by the theory's per-component standard deviation √(T_n/(2W)).

    Pools Re and Im over the M networks (2M values per mode; independent for 0 < n < W/2). Returns per mode
    the variance estimate mean(v²) (theory 1) with its standard error, the excess kurtosis mean(v⁴)/mean(v²)² − 3
    (Gaussian: 0, standard error √(24/2M)), and the density histogram on ``edges``.
    """
    x = _fields(x)[..., 0]
    M, W = x.shape
    T = np.asarray(T).reshape(W)
    eq = np.fft.fft(x, axis=1) / W
    var, var_se, kurt, kurt_se, hist = [], [], [], [], []
    for n in modes:
        v = np.concatenate([eq[:, n].real, eq[:, n].imag]) / math.sqrt(T[n] / (2 * W))
        v2 = v * v
        m, se = mean_se(v2)
        var.append(m)
        var_se.append(se)
        kurt.append(np.mean(v2 * v2) / v2.mean() ** 2 - 3.0)
        kurt_se.append(math.sqrt(24.0 / v.size))
        hist.append(np.histogram(v, bins=edges, density=True)[0])
    return {
        "var": np.array(var),
        "var_se": np.array(var_se),
        "kurt": np.array(kurt),
        "kurt_se": np.array(kurt_se),
        "hist": np.array(hist),
    }


def laplace_gap(model: str, sigma_w2: float) -> float:
    """gap = 1 − a, a the AR/VAR(1) coefficient of the exact large-N chain (σ_w² linear, σ_w²/2 ReLU).

    The Laplace expansion's relative corrections are O(1/(N·gap)) (e.g. linear: Var(ε)/r*² ≈ 1/(4NΔ_w)).
    """
    A, _ = var_model(model, sigma_w2, 1.0)
    return 1.0 - float(A[0, 0])


def laplace_check(name, theory, simulation, stderr, *, n_gap: float, min_n_gap: float, scale=None, max_z=Z_MAX) -> Check:
    """z-check of a large-N (Laplace) prediction. Inside the Laplace regime (N·gap ≥ min_n_gap) a plain
    |z| < max_z; outside, the stderr also holds the O(1/(N·gap)) systematic |scale|/(N·gap) (scale defaults
    to |theory|) and the name is tagged, so near-critical points are shown but judged at their accuracy."""
    if n_gap >= min_n_gap:
        return zcheck(name, theory, simulation, stderr, max_z=max_z)
    sys = abs(float(theory if scale is None else scale)) / n_gap
    c = zcheck(f"{name} [beyond Laplace regime N·gap = {n_gap:.3g} < {min_n_gap:g}]", theory, simulation,
               math.hypot(float(stderr), sys), max_z=max_z)
    return Check(c.name, c.theory, c.simulation, c.stderr, c.z, c.passed,
                 f"|z| < {max_z:g}, stderr ⊕ O(1/(N·gap)) systematic {sys:.3g}", c.kind)


def reject_check(name, printed, simulation, stderr, *, min_z=Z_MAX) -> Check:
    """Printed-coefficient comparison: passes when the printed prediction is REJECTED, |z| ≥ min_z.

    Kind ``"finding"``: an erratum established by the data (the printed coefficients are not the theory)."""
    c = zcheck(name, printed, simulation, stderr, max_z=min_z)
    return Check(c.name, c.theory, c.simulation, c.stderr, c.z, bool(c.z is not None and abs(c.z) >= min_z),
                 f"|z| ≥ {min_z:g} (printed coefficients must be rejected)", "finding")


def pair_labels(fields=("+", "−", "k")) -> list[tuple[int, int, str]]:
    """Upper-triangle (a, b, label) of the 3×3 ReLU covariance, e.g. (0, 1, "+−")."""
    return [(a, b, fields[a] + fields[b]) for a in range(len(fields)) for b in range(a, len(fields))]
