"""Dyson-Brownian-motion analysis of a recorded checkpoint series (Park, Lucini & Aarts 2025, §4, appendix B).

From eigenvalue trajectories x_i(t) of X = W Wᵀ (4.1) at checkpoints t_0 < t_1 < …, with Δ_k = t_{k+1} − t_k:

* eigenvalue drift and diffusion (4.3): drift_i = ⟨Δx_i/Δ⟩, TV_ii = ⟨(Δx_i − drift_i Δ)²/Δ⟩ over a window
  (the diffusion of x_i is √(T V_ii) η, so Var Δx_i = T V_ii Δ); standard errors from the K increments;
* level spacing S(t) = (x_N − x_1)/(N − 1) (4.5) and λ̄(t) (4.7) (:func:`deepeft.sgd.level_spacing`, ``spacing_rate``);
* time-averaged spacing coefficients of the SDE Ṡ = K_S + V_S T/S + √(2TD_S) η (4.8): weighted least squares of
  ΔS/Δ on (1, 1/S) over the window gives K_S and T·V_S (intercept, slope), the residual variance gives T·D_S
  (Euler discretisation: valid when Δ is short against the relaxation time of S; SEs from the regression);
* the convergence test (4.15), ((N − 1)/(4√r)) T/σ_W² ≤ −K_S/V_S, which in the identified combinations reads
  (N − 1)/(4√r σ_W²) ≤ −K_S/(T V_S): T cancels, so the verdict needs no learning rate or batch size;
* where the caller recorded instantaneous (K_S, V_S, D_S) per checkpoint (from per-sample gradients,
  :func:`deepeft.sgd.spacing_coefficients`), their window means with batch-means standard errors.

Conventions: N = m = min(n_out, n_in) nonzero eigenvalues x = λ·max(n_out, n_in) (λ as in :mod:`.spectrum`);
r = m/max(n_out, n_in); time in the series' step unit (K_S and T·V_S share it, so their ratio is unit-free).
"""

from __future__ import annotations

import dataclasses
import math
import types

import numpy as np

from ..errors import DeepEFTInputError
from ..sgd.dbm import convergence_lhs, level_spacing, spacing_rate
from .spectrum import spectrum_of_eigenvalues

__all__ = ["SpacingFit", "SeriesDBM", "fit_spacing_sde", "eigenvalue_drift", "series_dbm", "batch_mean"]

MIN_INCREMENTS = 8  # fewest increments in a window for the fits


@dataclasses.dataclass(frozen=True)
class SpacingFit:
    """Time-averaged coefficients of (4.8) from one S(t) trajectory: K_S, T·V_S, T·D_S and their standard errors."""

    K_S: float
    K_S_stderr: float
    TV_S: float
    TV_S_stderr: float
    TD_S: float
    TD_S_stderr: float
    increments: int


def fit_spacing_sde(t, S) -> SpacingFit:
    """WLS fit of ΔS = (K_S + T V_S/S) Δ + √(2 T D_S Δ) ξ (Euler form of (4.8)) to a trajectory S at times t."""
    t = np.asarray(t, np.float64)
    S = np.asarray(S, np.float64)
    if t.shape != S.shape or t.ndim != 1:
        raise DeepEFTInputError(f"t and S must be 1-D of equal length, got {t.shape} and {S.shape}.")
    dt = np.diff(t)
    if np.any(dt <= 0):
        raise DeepEFTInputError("checkpoint times must increase strictly.")
    K = dt.size
    if K < MIN_INCREMENTS:
        raise DeepEFTInputError(f"the window holds {K} increments; the spacing fit needs at least {MIN_INCREMENTS}.")
    if np.any(S[:-1] <= 0):
        raise DeepEFTInputError("the level spacing S must be > 0 (degenerate spectrum?).")
    # ΔS/√Δ = K_S √Δ + T V_S √Δ/S + √(2TD_S) ξ  — homoscedastic after dividing by √Δ
    sq = np.sqrt(dt)
    A = np.stack([sq, sq / S[:-1]], axis=1)
    y = np.diff(S) / sq
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    s2 = float(resid @ resid) / (K - 2)  # = 2 T D_S
    cov = s2 * np.linalg.inv(A.T @ A)
    TD = s2 / 2
    return SpacingFit(float(coef[0]), float(math.sqrt(cov[0, 0])), float(coef[1]), float(math.sqrt(cov[1, 1])),
                      TD, TD * math.sqrt(2.0 / (K - 2)), K)


def eigenvalue_drift(t, x):
    """Per-eigenvalue drift ⟨Δx_i/Δ⟩ and diffusion T V_ii = ⟨(Δx_i − drift Δ)²/Δ⟩ (4.3) with SEs; x (T, N)."""
    t = np.asarray(t, np.float64)
    x = np.asarray(x, np.float64)
    dt = np.diff(t)[:, None]
    dx = np.diff(x, axis=0)
    K = dt.shape[0]
    drift = dx.sum(0) / dt.sum()
    rate = dx / dt
    drift_se = rate.std(0, ddof=1) * math.sqrt(float(np.mean(dt)) / float(dt.sum()))  # ≈ std(Δx/√Δ)/√ΣΔ
    tv = ((dx - drift * dt) ** 2 / dt).mean(0)
    return drift, drift_se, tv, tv * math.sqrt(2.0 / max(K - 1, 1))


def batch_mean(values, n_batches: int = 10) -> tuple[float, float]:
    """Mean of a correlated time series and its batch-means standard error (NaNs dropped)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return (float(v.mean()) if v.size else float("nan")), float("nan")
    b = min(n_batches, v.size)
    means = np.array([c.mean() for c in np.array_split(v, b)])
    return float(v.mean()), float(means.std(ddof=1) / math.sqrt(b))


@dataclasses.dataclass(frozen=True, eq=False)
class SeriesDBM:
    """DBM analysis of one layer of a checkpoint series; see the module docstring. ``window``: record indices used."""

    layer: int
    steps: np.ndarray
    S: np.ndarray
    rate: np.ndarray
    window: slice
    drift: np.ndarray
    drift_stderr: np.ndarray
    TV_diag: np.ndarray
    TV_diag_stderr: np.ndarray
    spacing: SpacingFit
    sigma_W2: float
    r: float
    lhs: float
    rhs: float
    rhs_stderr: float
    converged: bool
    instantaneous: dict

    @property
    def verdict(self) -> str:
        """(4.15) with the time-averaged coefficients: "converging" (ordered phase) or "diverging" (hot phase)."""
        return "converging" if self.converged else "diverging"


def _window(T: int, window) -> slice:
    if window is None:
        return slice(T // 2, T)  # the late half
    if isinstance(window, float):
        if not 0 < window <= 1:
            raise DeepEFTInputError(f"a fractional window is in (0, 1] (the last fraction of records), got {window}.")
        return slice(T - max(int(round(window * T)), 2), T)
    if isinstance(window, slice):
        return slice(*window.indices(T))
    raise DeepEFTInputError(f"window must be None (late half), a fraction or a slice of records, got {window!r}.")


def series_dbm(series, layer: int = 0, *, window=None, sigma_W2: float | None = None) -> SeriesDBM:
    """DBM analysis of ``layer`` (0-based) of a :class:`~deepeft.diagnostics.series.CheckpointSeries` over ``window``.

    ``sigma_W2``: σ_W² of the initialisation in (4.15) (default: n_in × the MP variance fitted to the first record).
    """
    L = len(series.eigenvalues)
    if not 0 <= layer < L:
        raise DeepEFTInputError(f"layer must be in 0..{L - 1} (0-based), got {layer}.")
    n_out, n_in = series.shapes[layer]
    n, m = max(n_out, n_in), min(n_out, n_in)
    lam = series.eigenvalues[layer]
    x = lam * n  # eigenvalues of X = W Wᵀ (nonzero ones)
    steps = np.asarray(series.steps, np.float64)
    S = level_spacing(x)
    rate = spacing_rate(S, S[0], steps - steps[0])
    w = _window(len(steps), window)
    fit = fit_spacing_sde(steps[w], S[w])
    drift, drift_se, tv, tv_se = eigenvalue_drift(steps[w], x[w])
    if sigma_W2 is None:
        sigma_W2 = n_in * spectrum_of_eigenvalues(lam[0], (n_out, n_in)).mp_sigma2
    r = m / n
    shape_only = types.SimpleNamespace(spectral_shape=(m, n))  # convergence_lhs reads only the spectral shape
    lhs = float(convergence_lhs(shape_only, 1.0, math.sqrt(sigma_W2)))  # type: ignore[arg-type]  # T = 1: T-free
    rhs = -fit.K_S / fit.TV_S if fit.TV_S != 0 else float("nan")
    rhs_se = abs(rhs) * math.hypot(fit.K_S_stderr / fit.K_S if fit.K_S else 0.0, fit.TV_S_stderr / fit.TV_S if fit.TV_S else 0.0)
    inst = {}
    if layer in series.coefficients:
        c = series.coefficients[layer][w]
        for j, name in enumerate(("K_S", "V_S", "D_S")):
            inst[name] = batch_mean(c[:, j])
    return SeriesDBM(layer, steps, S, rate, w, drift, drift_se, tv, tv_se, fit, float(sigma_W2), r, lhs, rhs, rhs_se,
                     bool(lhs <= rhs), inst)
