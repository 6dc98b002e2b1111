"""Streaming moment accumulators and the estimators built from them, with standard errors.

Per-network statistics f_s (s = 1..S networks, iid) are accumulated as float64 power sums of the
*shifted* values d_s = f_s − c, where c is a fixed reference (the mean of the first micro-batch),
so that no catastrophic cancellation occurs however many networks are summed:

    S1 = Σ d,   S2 = Σ d dᵀ (or Σ d² elementwise),   S3_{ab} = Σ d_a² d_b,   S4_{ab} = Σ d_a² d_b².

Standard errors are large-S (delta-method) errors over networks, which are independent:
mean: SE² = s²/S; sample covariance: Var = (μ22 − σ_ab²)/S + (σ_aa σ_bb + σ_ab²)/(S(S−1)),
with μ22 = E[(f_a − μ_a)²(f_b − μ_b)²]; smooth functions of means: gradient · Cov(means) · gradient.
The functions here are pure NumPy (float64) and act on the accumulated sums only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["covariance", "mean_and_se", "mean_vector_and_cov", "pair_vertex"]


def mean_and_se(count: float, shift, S1, S2) -> tuple[np.ndarray, np.ndarray]:
    """Mean and its standard error from elementwise sums S1 = Σ d, S2 = Σ d² (d = f − shift)."""
    m = S1 / count
    var = np.maximum(S2 - count * m * m, 0.0) / (count - 1)
    return shift + m, np.sqrt(var / count)


def mean_vector_and_cov(count: float, shift, S1, S2) -> tuple[np.ndarray, np.ndarray]:
    """Mean of a vector statistic (..., k) and the covariance of that mean (..., k, k) from S2 = Σ d dᵀ."""
    m = S1 / count
    cov = (S2 - count * m[..., :, None] * m[..., None, :]) / (count - 1)
    return shift + m, cov / count


def covariance(count: float, S1, S2, S3, S4) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased sample covariance Cov(f_a, f_b) (..., P, P) and its standard error.

    ``S2[a, b] = Σ d_a d_b``, ``S3[a, b] = Σ d_a² d_b``, ``S4[a, b] = Σ d_a² d_b²`` (shift cancels).
    """
    S = count
    m = S1 / S
    E2, E3, E4 = S2 / S, S3 / S, S4 / S
    ma, mb = m[..., :, None], m[..., None, :]
    var_a = np.diagonal(E2, axis1=-2, axis2=-1)
    cov_b = E2 - ma * mb  # biased (1/S) covariance
    # central fourth moment μ22 = E[(d_a − m_a)² (d_b − m_b)²] expanded in raw moments of d
    mu22 = (
        E4
        - 2 * mb * E3
        - 2 * ma * np.swapaxes(E3, -1, -2)
        + mb**2 * var_a[..., :, None]
        + ma**2 * var_a[..., None, :]
        + 4 * ma * mb * E2
        - 3 * ma**2 * mb**2
    )
    cov = cov_b * S / (S - 1)
    diag = np.diagonal(cov, axis1=-2, axis2=-1)
    var_cov = np.maximum(mu22 - cov_b**2, 0.0) / S + (diag[..., :, None] * diag[..., None, :] + cov**2) / (S * (S - 1))
    return cov, np.sqrt(var_cov)


def pair_vertex(count: float, M1, MM, P1, P2, PMa, PMb) -> tuple[np.ndarray, np.ndarray]:
    """E[P] − E[M]⊗E[M] (..., Q, Q) and its delta-method SE, from per-network M (..., Q) and P (..., Q, Q).

    Sums over networks: ``M1`` = Σ M, ``MM`` = Σ M Mᵀ, ``P1`` = Σ P, ``P2`` = Σ P², ``PMa`` = Σ P M_a, ``PMb`` = Σ P M_b.
    The product of means is bias-corrected (M̄⊗M̄ − Cov(M̄)). With M = (1/n)Σ_i z_i z_iᵀ and P the average of
    z_i z_iᵀ ⊗ z_j z_jᵀ over neuron pairs i ≠ j this is the connected four-point function that defines the vertex
    (B.23), (4.76) — valid with or without skip connections.
    """
    S = count
    mu = M1 / S
    CM = (MM - S * mu[..., :, None] * mu[..., None, :]) / (S - 1)  # covariance of one network's M
    Pm = P1 / S
    varP = (P2 - S * Pm * Pm) / (S - 1)
    ma, mb = mu[..., :, None], mu[..., None, :]
    cPa = (PMa - S * Pm * ma) / (S - 1)
    cPb = (PMb - S * Pm * mb) / (S - 1)
    dC = np.diagonal(CM, 0, -2, -1)
    va, vb = dC[..., :, None], dC[..., None, :]
    var = varP + ma**2 * vb + mb**2 * va - 2 * ma * cPb - 2 * mb * cPa + 2 * ma * mb * CM
    return Pm - ma * mb + CM / S, np.sqrt(np.maximum(var, 0.0) / S)
