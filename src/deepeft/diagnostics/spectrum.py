"""Weight-matrix spectra: Marchenko–Pastur fit, significance-tested outliers, heavy-tail exponent, stable rank.

For W of shape (n_out, n_in) let n = max(n_out, n_in), m = min(n_out, n_in). The spectrum is the m
eigenvalues λ of the smaller Gram matrix divided by n (WᵀW/n when n_out ≥ n_in, else WWᵀ/n): the
nonzero eigenvalues, without the atom at 0. If the entries are iid with variance s² they follow the
Marchenko–Pastur law with variance s² and aspect ratio q = m/n ≤ 1, edges λ± = s²(1 ± √q)²
(the paper's (4.2) with σ_W² = s², r = q; :class:`deepeft.sgd.MarchenkoPastur`). At initialisation
s² = C_W/n_in (2.20), so ``C_W = n_in · mp_sigma2``.

Fit (method of moments on the bulk, with the exact Wishart finite-size terms):
    ŝ² = mean(λ_bulk)                    E[tr WᵀW] = n m s²   (unbiased; SE ŝ²·√(2/(n m)) for Gaussian W)
    q̂ = var(λ_bulk)/ŝ⁴ − 1/n             E[tr (WᵀW)²] = s⁴ n m (n + m + 1)
Goodness of fit: the Kolmogorov–Smirnov distance between the bulk eigenvalues and MP(ŝ², m/n). Eigenvalues
repel, so the iid-sample KS p-value does not apply; for pure noise the distance is O(1/m) (rigidity),
and a bulk that is not MP (heavy tails, structure) gives a distance ≫ 1/m.

Outliers: sequential Tracy–Widom test (Johnstone 2001; Kritchman & Nadler 2009). Under the null of
white noise with variance ŝ², the k-th largest eigenvalue (k = 0, 1, …, after removing k outliers) of a
matrix with n rows and m − k columns has centring μ = ŝ²(√(n−1) + √(m−k))²/n and scale
σ = ŝ²(√(n−1) + √(m−k))(1/√(n−1) + 1/√(m−k))^{1/3}/n; it is an outlier when (λ − μ)/σ exceeds the
TW₁ quantile at the test level (default 1 %: 2.0234). The fit and the test alternate until the outlier
set is stable. A rank-one signal θ u vᵀ (‖u‖ = ‖v‖ = 1, noise variance 1/n) separates from the bulk only
above the BBP threshold θ > q^{1/4}, at λ = (1 + θ²)(q + θ²)/θ² (Benaych-Georges & Nadakuditi 2012):
:func:`bbp_outlier`.

Tail exponent: the density tail ρ(λ) ∝ λ^{−α} for λ ≥ λ_min, fitted by the continuous power-law MLE
(Hill estimator) α̂ = 1 + k/Σ log(λ_i/λ_min), SE (α̂ − 1)/√k, with λ_min chosen to minimise the KS
distance between the tail and the fitted law (Clauset, Shalizi & Newman 2009) — WeightWatcher's
``alpha`` (same estimator, via the ``powerlaw`` package). Stable rank ‖W‖_F²/‖W‖₂² = Σλ/λ_max.

References:
  Marchenko & Pastur, Distribution of eigenvalues for some sets of random matrices (1967)
  Johnstone, On the distribution of the largest eigenvalue in principal components analysis (2001), Ann. Stat. 29
  Kritchman & Nadler, Non-parametric detection of the number of signals (2009), IEEE TSP 57
  Benaych-Georges & Nadakuditi, The singular values and vectors of low rank perturbations of large rectangular
    random matrices (2012) arXiv:1103.2221
  Clauset, Shalizi & Newman, Power-law distributions in empirical data (2009) arXiv:0706.1062
  Martin & Mahoney, Implicit self-regularization in deep neural networks (2021) arXiv:1810.01075 (WeightWatcher)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import DeepEFTInputError
from ..sgd.observables import MarchenkoPastur

__all__ = ["WeightSpectrum", "weight_spectrum", "bbp_outlier", "TW1_QUANTILES", "spectrum_of_eigenvalues"]

TW1_QUANTILES = {0.10: 0.4501, 0.05: 0.9793, 0.01: 2.0234}  # upper quantiles of Tracy–Widom β = 1 (Johnstone 2001, Table 1)
MAX_XMIN_CANDIDATES = 512  # λ_min candidates of the tail fit (all eigenvalues up to this many)
MIN_TAIL = 10  # fewest eigenvalues in a power-law tail fit (fewer: alpha is NaN)
MAX_FIT_ROUNDS = 20  # fit ↔ outlier-test alternations (the outlier set stabilises in 2–3)


@dataclasses.dataclass(frozen=True, eq=False)
class WeightSpectrum:
    """Spectral diagnostics of one weight matrix (see the module docstring for every definition).

    eigenvalues : (m,) ascending, eigenvalues of the smaller Gram matrix / n.
    shape : (n_out, n_in); n, m = max, min of the shape; shape_ratio = m/n.
    mp_sigma2 (± mp_sigma2_stderr), aspect_ratio : the fitted MP variance ŝ² and aspect ratio q̂.
    bulk_edge : ŝ²(1 + √(m/n))², the MP upper edge of the fitted null. outliers : eigenvalues beyond the bulk
    that pass the TW test (descending), ``outlier_tw`` their TW statistics; ks_statistic : KS distance of the
    bulk to MP(ŝ², m/n). alpha ± alpha_stderr, alpha_xmin, alpha_tail : tail exponent, its λ_min and tail size k.
    stable_rank : Σλ/λ_max.
    """

    eigenvalues: np.ndarray
    shape: tuple[int, int]
    mp_sigma2: float
    mp_sigma2_stderr: float
    aspect_ratio: float
    bulk_edge: float
    outliers: np.ndarray
    outlier_tw: np.ndarray
    ks_statistic: float
    alpha: float
    alpha_stderr: float
    alpha_xmin: float
    alpha_tail: int
    stable_rank: float
    level: float

    @property
    def n(self) -> int:
        return max(self.shape)

    @property
    def m(self) -> int:
        return min(self.shape)

    @property
    def shape_ratio(self) -> float:
        return self.m / self.n

    @property
    def num_outliers(self) -> int:
        return int(self.outliers.size)

    @property
    def bulk(self) -> np.ndarray:
        """The eigenvalues that are not outliers."""
        return self.eigenvalues[: self.m - self.num_outliers]

    @property
    def C_W(self) -> float:
        """n_in · ŝ²: the C_W (2.20) whose initialisation has this bulk."""
        return self.shape[1] * self.mp_sigma2

    @property
    def lambda_max(self) -> float:
        return float(self.eigenvalues[-1])

    def mp_law(self) -> MarchenkoPastur:
        """The fitted null law MP(ŝ², m/n) (4.2)."""
        return MarchenkoPastur(self.mp_sigma2, self.shape_ratio)

    def as_dict(self) -> dict[str, float]:
        """Scalar fields (for tables and JSON)."""
        return {
            "n_out": self.shape[0], "n_in": self.shape[1], "mp_sigma2": self.mp_sigma2,
            "mp_sigma2_stderr": self.mp_sigma2_stderr, "C_W_bulk": self.C_W, "aspect_ratio": self.aspect_ratio,
            "shape_ratio": self.shape_ratio, "bulk_edge": self.bulk_edge, "lambda_max": self.lambda_max,
            "num_outliers": self.num_outliers, "ks_statistic": self.ks_statistic, "alpha": self.alpha,
            "alpha_stderr": self.alpha_stderr, "alpha_xmin": self.alpha_xmin, "stable_rank": self.stable_rank,
        }


def _as_weight(W) -> np.ndarray:
    if hasattr(W, "detach"):  # a torch tensor (possibly requiring grad)
        W = W.detach().cpu().numpy()
    try:
        arr = np.asarray(W, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeepEFTInputError(f"W must be a numeric 2-D array, got {type(W).__name__}.") from None
    if arr.ndim != 2 or min(arr.shape) < 2:
        raise DeepEFTInputError(f"W must be a 2-D weight matrix with both sides ≥ 2, got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise DeepEFTInputError(f"W contains {int((~np.isfinite(arr)).sum())} NaN/inf entries; a diverged or corrupted "
                                "layer has no spectrum — check the checkpoint.")
    return arr


def gram_eigenvalues(W: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Eigenvalues (ascending) of the smaller Gram matrix of W divided by max(W.shape), returned as float64.

    ``dtype=np.float32`` computes the Gram matrix and its eigenvalues in single precision (LAPACK ssyevd: ≈ 30 %
    cheaper at 1024², absolute error ~1e-6 λ_max), for recording long training runs. (``np.linalg.eigvalsh`` works
    in double precision whatever the input, so it is not used here.)"""
    import scipy.linalg

    n = max(W.shape)
    Wd = np.asarray(W, dtype)
    G = Wd.T @ Wd if W.shape[0] >= W.shape[1] else Wd @ Wd.T
    ev = scipy.linalg.eigvalsh(G, driver="evd", overwrite_a=True)
    return np.clip(ev.astype(np.float64), 0.0, None) / n


def gram_eigenvalues_many(Ws, dtype=np.float64, *, workers: int | None = None) -> list[np.ndarray]:
    """:func:`gram_eigenvalues` of each matrix in ``Ws``: one LAPACK thread per eigendecomposition, the matrices spread
    over ``workers`` threads (default: the CPUs this process may use; LAPACK releases the GIL).

    Why: the tridiagonal reduction of a 1024² eigvalsh is memory-bound and gains little from BLAS threads, while on a
    shared machine the spinning threads of a multithreaded OpenBLAS cost far more than they give — measured at load
    average 14 on 2 cores: 1.47 s wall (0.51 s CPU) per 1024² eigvalsh with 2 BLAS threads, 0.20 s (0.08 s) with one.
    Parallelism across layers instead keeps every core busy with no contention (benchmarks/bench_diagnose.py)."""
    import concurrent.futures
    import os

    from threadpoolctl import threadpool_limits

    Ws = list(Ws)
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, min(int(workers), len(Ws)))
    with threadpool_limits(limits=1, user_api="blas"):
        if workers == 1:
            return [gram_eigenvalues(W, dtype) for W in Ws]
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda W: gram_eigenvalues(W, dtype), Ws))


def _tw_threshold(s2: float, n: int, mk: int) -> tuple[float, float]:
    """(μ, σ) of Johnstone's TW centring and scaling for n rows, mk columns, noise variance s2."""
    a, b = math.sqrt(n - 1), math.sqrt(mk)
    return s2 * (a + b) ** 2 / n, s2 * (a + b) * (1 / a + 1 / b) ** (1 / 3) / n


def _tw_stat(x: float, s2: float, n: int, mk: int) -> float:
    """(x − μ)/σ of Johnstone's scaling; ±inf when the bulk is exactly zero (σ = 0, a rank-deficient W)."""
    mu, sig = _tw_threshold(s2, n, mk)
    if sig <= 0:
        return math.inf if x > mu else -math.inf
    return (x - mu) / sig


def _fit_bulk(bulk: np.ndarray, n: int) -> tuple[float, float]:
    s2 = float(bulk.mean())
    q = float(bulk.var() / s2**2 - 1.0 / n) if s2 > 0 else float("nan")
    return s2, q


def _ks_to_mp(bulk: np.ndarray, law: MarchenkoPastur) -> float:
    x = np.sort(bulk)
    F = law.cdf(x)
    k = np.arange(1, x.size + 1) / x.size
    return float(max(np.max(k - F), np.max(F - (k - 1.0 / x.size))))


def power_law_tail(x: np.ndarray, *, min_tail: int = MIN_TAIL) -> tuple[float, float, float, int]:
    """(α̂, SE, λ_min, k): Clauset–Shalizi–Newman continuous power-law fit of the upper tail of ``x`` (> 0).

    Every λ_min candidate (at most ``MAX_XMIN_CANDIDATES``, evenly spaced in rank) gets the Hill MLE on its tail
    and the KS distance of that tail to the fitted law; the smallest distance wins. Vectorised over candidates.
    """
    x = np.sort(x[x > 0])
    N = x.size
    if N < min_tail + 1:
        return float("nan"), float("nan"), float("nan"), 0
    logs = np.log(x)
    cums = np.cumsum(logs[::-1])[::-1]  # Σ_{j ≥ i} log x_j
    cand = np.unique(np.linspace(0, N - min_tail, min(MAX_XMIN_CANDIDATES, N - min_tail + 1)).astype(int))
    k = (N - cand).astype(np.float64)
    denom = cums[cand] - k * logs[cand]
    ok = denom > 0
    cand, k, a = cand[ok], k[ok], 1.0 + k[ok] / denom[ok]
    if cand.size == 0:
        return float("nan"), float("nan"), float("nan"), 0
    j = np.arange(N)
    rank = j[None, :] - cand[:, None]  # position of x_j inside the tail of candidate i
    inside = rank >= 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        model = 1.0 - np.exp((1.0 - a[:, None]) * (logs[None, :] - logs[cand][:, None]))
    emp = rank / k[:, None]
    gap = np.maximum(np.abs(model - emp), np.abs(model - emp - 1.0 / k[:, None]))
    D = np.where(inside, gap, 0.0).max(axis=1)
    b = int(np.argmin(D))
    return float(a[b]), float((a[b] - 1.0) / math.sqrt(k[b])), float(x[cand[b]]), int(k[b])


def spectrum_of_eigenvalues(lam: np.ndarray, shape: tuple[int, int], *, level: float = 0.01) -> WeightSpectrum:
    """:class:`WeightSpectrum` from precomputed Gram eigenvalues (ascending, already divided by max(shape))."""
    if level not in TW1_QUANTILES:
        raise DeepEFTInputError(f"level must be one of {sorted(TW1_QUANTILES)} (tabulated TW₁ quantiles), got {level!r}.")
    lam = np.sort(np.asarray(lam, dtype=np.float64))
    n, m = max(shape), min(shape)
    s_tw = TW1_QUANTILES[level]
    k_out = 0
    for _ in range(MAX_FIT_ROUNDS):
        s2, q = _fit_bulk(lam[: m - k_out], n)
        k_new = 0
        while k_new < m - 2:
            if _tw_stat(lam[m - 1 - k_new], s2, n, m - k_new) <= s_tw:
                break
            k_new += 1
        if k_new == k_out:
            break
        k_out = k_new
    outliers = lam[m - k_out:][::-1].copy()
    tw = np.array([_tw_stat(x, s2, n, m - j) for j, x in enumerate(outliers)])
    law = MarchenkoPastur(s2, m / n)
    bulk = lam[: m - k_out]
    alpha, alpha_se, xmin, k_tail = power_law_tail(lam)
    return WeightSpectrum(
        eigenvalues=lam, shape=(int(shape[0]), int(shape[1])), mp_sigma2=s2, mp_sigma2_stderr=s2 * math.sqrt(2.0 / (n * m)),
        aspect_ratio=q, bulk_edge=law.x_plus, outliers=outliers, outlier_tw=tw,
        ks_statistic=_ks_to_mp(bulk, law) if s2 > 0 else float("nan"), alpha=alpha, alpha_stderr=alpha_se,
        alpha_xmin=xmin, alpha_tail=k_tail, stable_rank=float(lam.sum() / lam[-1]) if lam[-1] > 0 else float("nan"),
        level=level,
    )


def weight_spectrum(W, *, level: float = 0.01) -> WeightSpectrum:
    """Spectral diagnostics of a weight matrix W (n_out, n_in): MP fit, outliers, tail exponent, stable rank.

    ``level``: false-alarm probability of the Tracy–Widom outlier test per eigenvalue (0.10, 0.05 or 0.01).
    Accepts NumPy/JAX arrays and torch tensors.
    """
    arr = _as_weight(W)
    return spectrum_of_eigenvalues(gram_eigenvalues(arr), arr.shape, level=level)


def bbp_outlier(theta, q: float):
    """Limit of the top eigenvalue of (N + θ u vᵀ)ᵀ(N + θ u vᵀ) scaled as above (noise entries of variance 1/n,
    aspect ratio q = m/n ≤ 1): (1 + θ²)(q + θ²)/θ² above the BBP threshold θ > q^{1/4}, the edge (1 + √q)²
    below it (Benaych-Georges & Nadakuditi 2012, rectangular additive case)."""
    t = np.asarray(theta, dtype=np.float64)
    edge = (1 + math.sqrt(q)) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t > q**0.25, (1 + t**2) * (q + t**2) / np.where(t > 0, t**2, 1.0), edge)
