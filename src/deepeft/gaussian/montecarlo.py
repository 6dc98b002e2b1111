"""Monte Carlo Gaussian expectations with a standard error — the engine's explicit last resort.

z = S ξ with S the symmetric PSD square root of K (eigen-decomposition, exact for singular K),
ξ ~ N(0, I) from ``numpy.random.default_rng(seed)``; samples are drawn in chunks, so memory
stays bounded and the result does not depend on the chunk size (fixed stream per seed).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["psd_sqrt", "mc_expect"]

_CHUNK = 200_000


def psd_sqrt(K: np.ndarray) -> np.ndarray:
    """Symmetric square root S (…, k, k) with S S = K, eigenvalues clipped at 0."""
    lam, U = np.linalg.eigh(0.5 * (K + np.swapaxes(K, -1, -2)))
    return (U * np.sqrt(np.maximum(lam, 0.0))[..., None, :]) @ np.swapaxes(U, -1, -2)


def mc_expect(
    F: Callable[[np.ndarray], np.ndarray], K: np.ndarray, *, n_samples: int = 1_000_000, seed: int = 0
):
    """(mean, standard error) of F(z), z ~ N(0, K), for a batch K (B, k, k).

    ``F`` maps z of shape (B, S, k) to values (B, S). All batch entries share the same ξ draws
    (common random numbers), which keeps comparisons between nearby K smooth.
    """
    K = np.asarray(K, dtype=np.float64)
    S = psd_sqrt(K)  # (B, k, k)
    B, k, _ = K.shape
    rng = np.random.default_rng(seed)
    s1 = np.zeros(B)
    s2 = np.zeros(B)
    done = 0
    while done < n_samples:
        n = min(_CHUNK, n_samples - done)
        xi = rng.standard_normal((n, k))
        z = np.einsum("bij,sj->bsi", S, xi)
        v = np.asarray(F(z), dtype=np.float64)
        s1 += v.sum(axis=1)
        s2 += (v * v).sum(axis=1)
        done += n
    mean = s1 / n_samples
    var = np.maximum(s2 / n_samples - mean * mean, 0.0)
    return mean, np.sqrt(var / max(n_samples - 1, 1))
