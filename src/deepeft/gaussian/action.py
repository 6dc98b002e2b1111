"""The nearly-Gaussian quartic action, perturbatively and exactly   (book §1.3, (1.71)–(1.78)).

    S(z) = ½ K^{μν} z_μ z_ν + (ε/4!) V^{μνρλ} z_μ z_ν z_ρ z_λ                                     (1.71)

with K^{μν} = (K⁻¹)_{μν} (1.32) and V fully symmetric. To first order in ε:

    Z = √|2πK| [1 − (ε/8) V^{ρ1ρ2ρ3ρ4} K_{ρ1ρ2} K_{ρ3ρ4}]                                          (1.73)
    E[z_μ1 z_μ2] = K_{μ1μ2} − (ε/2) V^{ρ1ρ2ρ3ρ4} K_{μ1ρ1} K_{μ2ρ2} K_{ρ3ρ4}                           (1.74)
    E[z_μ1 z_μ2 z_μ3 z_μ4]|_c = −ε V^{ρ1ρ2ρ3ρ4} K_{μ1ρ1} K_{μ2ρ2} K_{μ3ρ3} K_{μ4ρ4}                    (1.78)

and inversely ("couplings from correlators"), with G = E[zz] and C = E[zzzz]|_c:

    εV^{μνρλ} = −G^{μμ'} G^{νν'} G^{ρρ'} G^{λλ'} C_{μ'ν'ρ'λ'},   K_{μν} = G_{μν} − ½ C_{μνρλ} G^{ρλ}   [derived]

(the K line inverts (1.74) at first order). The exact values (N ≤ 3) come from tensor-product
quadrature in whitened coordinates z = L y (K = L Lᵀ), so the O(ε²) residuals of the perturbative
formulas can be measured. Exact integration needs εV(u, u, u, u) ≥ 0 in every direction u: otherwise
e^{−S} is not integrable (the perturbative series is then only formal).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from .. import _validate as v
from ..errors import DeepEFTInputError
from .gauss1d import gauss1d_nodes
from .wick import wick_tensor

__all__ = ["ExactCorrelators", "NearlyGaussianAction"]

_MAX_EXACT_N = 3


def _check_symmetric_V(V, N: int) -> np.ndarray:
    arr = np.asarray(V, dtype=np.float64)
    if arr.ndim == 0 and N == 1:
        arr = arr.reshape(1, 1, 1, 1)
    if arr.shape != (N,) * 4:
        raise DeepEFTInputError(
            f"V must have shape (N, N, N, N) = {(N,) * 4} to match K of shape {(N, N)}, got {arr.shape}."
        )
    if not np.all(np.isfinite(arr)):
        raise DeepEFTInputError("V contains NaN or inf.")
    scale = max(float(np.abs(arr).max()), 1e-300)
    for perm in ((1, 0, 2, 3), (0, 2, 1, 3), (0, 1, 3, 2)):  # adjacent swaps generate S_4
        if np.abs(arr - arr.transpose(perm)).max() > 1e-10 * scale:
            raise DeepEFTInputError(
                "V must be fully symmetric in its four indices (the action only sees its symmetric part); "
                "symmetrise it, e.g. V = sum of V.transpose(p) over all 24 permutations p, divided by 24."
            )
    return arr


def _check_pd(K) -> np.ndarray:
    arr = v.kernel_matrix(K, "K", check_psd=False)
    if arr.ndim != 2:
        raise DeepEFTInputError(f"K must be one (N, N) matrix, got shape {arr.shape}.")
    if np.linalg.eigvalsh(arr).min() <= 0:
        raise DeepEFTInputError(
            "K must be positive definite: the quadratic part ½ K^{μν} z z needs the inverse K^{μν} (1.32)."
        )
    return arr


@functools.lru_cache(maxsize=4)
def _grid(N: int):
    """Tensor-product nodes y (P, N) and weights (P,) for the standard normal in N dimensions."""
    panels, m = ((12, 20), (10, 20), (6, 16))[N - 1]
    y, w = gauss1d_nodes(np.array(1.0), panels=panels, m=m)
    mesh = np.meshgrid(*([y] * N), indexing="ij")
    wm = np.meshgrid(*([w] * N), indexing="ij")
    Y = np.stack([m.ravel() for m in mesh], axis=1)
    W = np.prod(np.stack([m.ravel() for m in wm], axis=1), axis=1)
    return Y, W


@dataclasses.dataclass(frozen=True)
class ExactCorrelators:
    """Exact values for the quartic action (by quadrature): Z, E[zz], E[zzzz] and its connected part."""

    Z: float
    two_point: np.ndarray
    four_point: np.ndarray
    connected_four_point: np.ndarray


@dataclasses.dataclass(frozen=True, init=False, eq=False)
class NearlyGaussianAction:
    """S(z) = ½ K^{μν} z z + (ε/4!) V^{μνρλ} z z z z (1.71) for N variables.

    K : (N, N) positive-definite covariance of the Gaussian part (lower indices; K^{μν} is its inverse).
    V : (N, N, N, N) fully symmetric quartic coupling (upper indices); a scalar is accepted for N = 1.
    eps : the small parameter ε (any sign for perturbation theory; exact integration needs εV ≥ 0).
    """

    K: np.ndarray
    V: np.ndarray
    eps: float

    def __init__(self, K, V, eps: float = 1.0):
        Karr = np.asarray(K, dtype=np.float64)
        if Karr.ndim == 0:
            Karr = Karr.reshape(1, 1)
        Karr = _check_pd(Karr)
        object.__setattr__(self, "K", Karr)
        object.__setattr__(self, "V", _check_symmetric_V(V, Karr.shape[0]))
        object.__setattr__(self, "eps", v.finite_scalar(eps, "eps", minimum=None))

    @property
    def N(self) -> int:
        return self.K.shape[0]

    @property
    def coupling(self) -> np.ndarray:
        """The full quartic coupling εV^{μνρλ}."""
        return self.eps * self.V

    def action(self, z) -> np.ndarray:
        """S(z) (1.71) for z of shape (..., N)."""
        z = np.asarray(z, dtype=np.float64)
        quad = np.einsum("...m,mn,...n->...", z, np.linalg.inv(self.K), z)
        quart = np.einsum("...a,...b,...c,...d,abcd->...", z, z, z, z, self.coupling)
        return 0.5 * quad + quart / 24.0

    # -- perturbation theory, first order in ε -------------------------------------------------
    def Z(self) -> float:
        """Partition function to O(ε) (1.73)."""
        KK = np.einsum("abcd,ab,cd->", self.V, self.K, self.K)
        return math.sqrt(np.linalg.det(2 * np.pi * self.K)) * (1.0 - self.eps / 8.0 * KK)

    def two_point(self) -> np.ndarray:
        """E[z_μ1 z_μ2] to O(ε) (1.74), shape (N, N)."""
        K = self.K
        return K - 0.5 * self.eps * np.einsum("abcd,ma,nb,cd->mn", self.V, K, K, K)

    def connected_four_point(self) -> np.ndarray:
        """E[z z z z]|_connected to O(ε) (1.78), shape (N, N, N, N)."""
        K = self.K
        return -self.eps * np.einsum("abcd,ma,nb,rc,sd->mnrs", self.V, K, K, K, K)

    def four_point(self) -> np.ndarray:
        """Full E[z z z z] to O(ε) (1.75): Wick pairings of (1.74) plus the connected part (1.78)."""
        return wick_tensor(self.two_point(), 4) + self.connected_four_point()

    # -- inverse map -----------------------------------------------------------------------------
    @classmethod
    def from_correlators(cls, two_point, connected_four_point) -> NearlyGaussianAction:
        """The quartic action (with ε = 1, V = the full coupling εV) whose O(ε) correlators are the given ones.

        εV = −G⁻¹G⁻¹G⁻¹G⁻¹ · C (inverting (1.78)); K = G − ½ C · G⁻¹ (inverting (1.74)) [derived].
        """
        G = _check_pd(np.atleast_2d(np.asarray(two_point, dtype=np.float64)))
        C = _check_symmetric_V(connected_four_point, G.shape[0])
        Gi = np.linalg.inv(G)
        epsV = -np.einsum("abcd,am,bn,cr,ds->mnrs", C, Gi, Gi, Gi, Gi)
        K = G - 0.5 * np.einsum("mnrs,rs->mn", C, Gi)
        try:
            return cls(K, epsV, 1.0)
        except DeepEFTInputError as err:
            raise DeepEFTInputError(
                f"the correlators are too far from Gaussian for the first-order inverse map ({err})"
            ) from None

    # -- exact values by quadrature (N ≤ 3) -------------------------------------------------------
    def exact(self) -> ExactCorrelators:
        """Z, E[zz], E[zzzz] and E[zzzz]|_c by tensor Gauss–Legendre quadrature in whitened coordinates.

        Accurate to ~1e-13 relative for N ≤ 3. Raises when εV(u,u,u,u) < 0 for some direction u
        (then e^{−S} is not integrable and only the formal perturbative series exists).
        """
        N = self.N
        if N > _MAX_EXACT_N:
            raise DeepEFTInputError(
                f"exact quadrature is implemented for N ≤ {_MAX_EXACT_N} variables (got N = {N}); "
                "use the perturbative methods or Monte Carlo."
            )
        Y, W = _grid(N)
        Lc = np.linalg.cholesky(self.K)
        z = Y @ Lc.T
        zz = (z[:, :, None] * z[:, None, :]).reshape(len(z), N * N)
        q = np.einsum("pi,pi->p", zz @ self.coupling.reshape(N * N, N * N), zz) / 24.0
        scale = np.abs(q).max()
        if scale > 0 and q.min() < -1e-12 * scale:
            raise DeepEFTInputError(
                "εV has the wrong sign for exact integration: εV(u,u,u,u) < 0 in some direction u, so the "
                "action is unbounded below and ∫ e^{−S} diverges. Use ε·V ≥ 0 (e.g. flip the sign of eps) "
                "for exact values; the perturbative formulas (two_point, connected_four_point) remain formal."
            )
        w = W * np.exp(-q)
        norm = w.sum()
        wzz = w[:, None] * zz
        G2 = wzz.sum(axis=0).reshape(N, N) / norm
        G4 = (wzz.T @ zz).reshape((N,) * 4) / norm
        Z = math.sqrt(np.linalg.det(2 * np.pi * self.K)) * norm
        return ExactCorrelators(Z, G2, G4, G4 - wick_tensor(G2, 4))

