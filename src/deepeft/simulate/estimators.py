"""Streaming moment accumulators and the estimators built from them, with standard errors.

Per-network statistics f_s (s = 1..S networks, iid) are accumulated as float64 power sums of the
*shifted* values d_s = f_s − c, where c is a fixed reference (the mean of the first micro-batch),
so that no catastrophic cancellation occurs however many networks are summed:

    S1 = Σ d,   S2 = Σ d dᵀ (or Σ d² elementwise),   S3_{ab} = Σ d_a² d_b,   S4_{ab} = Σ d_a² d_b².

Standard errors are large-S (delta-method) errors over networks, which are independent:
mean: SE² = s²/S; sample covariance: Var = (μ22 − σ_ab²)/S + (σ_aa σ_bb + σ_ab²)/(S(S−1)),
with μ22 = E[(f_a − μ_a)²(f_b − μ_b)²]; smooth functions of means: gradient · Cov(means) · gradient.

Two halves, one place for each idea shared by the MLP, residual and graph ensembles:

* accumulation (``shifted``, ``moment_sums``, ``vector_moment_sums``, ``covariance_sums``, ``pair_average``,
  ``pair_vertex_sums``, ``add_sums``; ``pilot_shift``): JAX, traced inside the ensembles' jitted loops over micro-batches of
  networks (leading axis = network), float64;
* estimation (``mean_and_se``, ``mean_vector_and_cov``, ``delta_se``, ``covariance``, ``pair_vertex``,
  ``layer_vertex``):
  pure NumPy (float64) on the accumulated sums only.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = [
    "add_sums",
    "covariance",
    "covariance_sums",
    "delta_se",
    "layer_vertex",
    "mean_and_se",
    "mean_vector_and_cov",
    "moment_sums",
    "pair_average",
    "pair_vertex",
    "pair_vertex_sums",
    "pilot_shift",
    "shifted",
    "vector_moment_sums",
]


# ---------------------------------------------------------------------------------------------
# Accumulation (JAX, inside jit): per-network statistics of a micro-batch → power sums
# ---------------------------------------------------------------------------------------------


def shifted(x, shift, valid):
    """d = x − shift in float64 for a micro-batch x (B, ...), zero for padding networks (``valid`` (B,) False)."""
    d = x.astype(jnp.float64) - shift
    return jnp.where(valid.reshape(valid.shape + (1,) * (d.ndim - 1)), d, 0.0)


def moment_sums(d):
    """(Σ d, Σ d²) over networks (axis 0), elementwise: the sums of :func:`mean_and_se`."""
    return d.sum(0), (d * d).sum(0)


def vector_moment_sums(d):
    """(Σ d, Σ d dᵀ) over networks for a vector statistic d (B, ..., k): the sums of :func:`mean_vector_and_cov`."""
    return d.sum(0), jnp.einsum("b...k,b...m->...km", d, d)


def covariance_sums(d):
    """(Σ d_a, Σ d_a d_b, Σ d_a² d_b, Σ d_a² d_b²) over networks for d (B, ..., P): the sums of :func:`covariance`."""
    d2 = d * d
    return (d.sum(0), jnp.einsum("b...p,b...q->...pq", d, d), jnp.einsum("b...p,b...q->...pq", d2, d),
            jnp.einsum("b...p,b...q->...pq", d2, d2))


def pair_average(z):
    """One network's layer z (N, n) → (M, P) in float64: M = (1/n) z zᵀ and the average over neuron pairs i ≠ j
    P_{(α1α2)(α3α4)} = (n²M⊗M − Σ_i z_{i;α1}z_{i;α2}z_{i;α3}z_{i;α4})/(n(n − 1)) (N, N, N, N), the per-network
    statistic of the vertex definition (B.23) (P = 0 at n = 1)."""
    z = z.astype(jnp.float64)
    m = z.shape[-1]
    M = (z @ z.T) / m
    four = jnp.einsum("ai,bi,ci,di->abcd", z, z, z, z)
    return M, (m * m * M[:, :, None, None] * M[None, None] - four) / max(m * (m - 1), 1)


def pair_vertex_sums(M, P, valid):
    """The sums of :func:`pair_vertex`, in its argument order (Σ M, Σ M Mᵀ, Σ P, Σ P², Σ P M_a, Σ P M_b), from a
    micro-batch of per-network M (B, ..., Q) and P (B, ..., Q, Q) (unshifted; padding networks zeroed)."""
    M, P = shifted(M, 0.0, valid), shifted(P, 0.0, valid)
    return (M.sum(0), jnp.einsum("b...p,b...q->...pq", M, M), P.sum(0), (P * P).sum(0),
            jnp.einsum("b...pq,b...p->...pq", P, M), jnp.einsum("b...pq,b...q->...pq", P, M))


def pilot_shift(pilot: dict, names) -> dict:
    """The shift c of each statistic: its mean over the pilot micro-batch, ``pilot[name + "1"] / pilot["count"]``."""
    return {k: pilot[k + "1"] / pilot["count"] for k in names}


def add_sums(acc: dict, **sums) -> dict:
    """A copy of ``acc`` with each named sum added (acc[k] + s); the other entries unchanged."""
    return {**acc, **{k: acc[k] + s for k, s in sums.items()}}


# ---------------------------------------------------------------------------------------------
# Estimation (NumPy): power sums → estimates and standard errors
# ---------------------------------------------------------------------------------------------


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


def delta_se(grad, cov) -> np.ndarray:
    """Delta-method SE √(gᵀ Cov g) of a smooth function of means: ``grad`` the list of its partial derivatives
    (each (...)), ``cov`` (..., k, k) the covariance of the means (:func:`mean_vector_and_cov`)."""
    g = np.stack(grad, axis=-1)
    return np.sqrt(np.maximum(np.einsum("...k,...km,...m->...", g, cov, g), 0.0))


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


def layer_vertex(n_prev, value, stderr) -> tuple[np.ndarray, np.ndarray]:
    """V^{(ℓ)} = n_{ℓ−1} × (connected four-point function of layer ℓ) and its SE, from per-layer (L, N², N²) estimates
    (:func:`covariance` of Ĝ (4.76) or :func:`pair_vertex` (B.23)) → (L, N, N, N, N); layer 1 is Gaussian: V^{(1)} = 0."""
    n_prev = np.asarray(n_prev, dtype=np.float64)[:, None, None]
    V, Vse = n_prev * value, n_prev * stderr
    V[0], Vse[0] = 0.0, 0.0
    L, N = V.shape[0], round(V.shape[-1] ** 0.5)
    return V.reshape((L,) + (N,) * 4), Vse.reshape((L,) + (N,) * 4)
