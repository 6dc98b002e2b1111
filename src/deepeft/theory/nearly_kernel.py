"""Nearly-kernel methods: the quadratic model as a minimal model of representation learning (PDLT §11.4).

Quadratic model (11.105) truncated at second order, features φ_j(x), meta features ψ_{j1j2}(x) = ψ_{j2j1}(x):

    z_i(x; W) = Σ_j W_ij φ_j(x) + (ε/2) Σ_{j1j2} W_ij1 W_ij2 ψ_{j1j2}(x).

At W = 0 its NTK is the kernel k_{δ1δ2} = Σ_j φ_j(x_δ1) φ_j(x_δ2) (11.126) and its dNTK is the meta kernel

    μ_{δ0δ1δ2} = ε Σ_{j1j2} ψ_{j1j2}(x_δ0) φ_j1(x_δ1) φ_j2(x_δ2)                                          (11.130)

(its ddNTKs vanish at O(ε)). Trained on MSE from W = 0 its predictions are the nearly-kernel machines

    direct optimization (11.132):  z_β = k_{βα̃}k̃⁻¹y + ½[μ_{βα̃1α̃2} − k_{βα̃5}k̃^{α̃5α̃6}μ_{α̃6α̃1α̃2}](k̃⁻¹y)_α̃1 (k̃⁻¹y)_α̃2,
    gradient descent (11.133):     z_β = k k̃⁻¹y + [μ_{α̃1βα̃2} − k k̃⁻¹ μ_{α̃1α̃6α̃2}] Z_A y y + [μ_{βα̃1α̃2} − k k̃⁻¹ μ] Z_B y y,

with the algorithm projectors Z_A, Z_B of the finite-width network (∞.142)–(∞.143) — the dNTK part of the trained
finite-width network (∞.141) under k ↔ H, μ ↔ dĤ, z(0) = 0 (the tests check both identities, and (11.133) against
actually training the quadratic model: error O(ε²)).

References:
  Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory* (arXiv:2106.10165), §11.4.
"""

from __future__ import annotations

import numpy as np

from ..errors import DeepEFTInputError
from .algorithm_projectors import algorithm_projectors

__all__ = ["meta_kernel", "nearly_kernel_prediction", "quadratic_model"]


def _features(phi, psi):
    phi = np.asarray(phi, dtype=np.float64)
    psi = np.asarray(psi, dtype=np.float64)
    if phi.ndim != 2 or psi.shape != (phi.shape[0], phi.shape[1], phi.shape[1]):
        raise DeepEFTInputError(
            f"phi must be (N, n_f) features and psi (N, n_f, n_f) meta features; got {phi.shape} and {psi.shape}."
        )
    if not (np.all(np.isfinite(phi)) and np.all(np.isfinite(psi))):
        raise DeepEFTInputError("phi / psi contain NaN or inf.")
    if np.max(np.abs(psi - np.transpose(psi, (0, 2, 1)))) > 1e-12 * max(1.0, float(np.max(np.abs(psi)))):
        raise DeepEFTInputError("psi must be symmetric in its two feature indices, ψ_{j1j2} = ψ_{j2j1} (11.105).")
    return phi, psi


def quadratic_model(W, phi, psi, epsilon: float) -> np.ndarray:
    """z_{δ,i} = Σ_j W_ij φ_j(x_δ) + (ε/2) Σ W_ij1 W_ij2 ψ_{j1j2}(x_δ) (11.105), shape (N, n_out)."""
    phi, psi = _features(phi, psi)
    W = np.asarray(W, dtype=np.float64)
    return phi @ W.T + 0.5 * epsilon * np.einsum("ij,ik,djk->di", W, W, psi)


def meta_kernel(phi, psi, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """(k, μ): the kernel (11.126) and the meta kernel (11.130) of the quadratic model."""
    phi, psi = _features(phi, psi)
    return phi @ phi.T, epsilon * np.einsum("ajk,bj,ck->abc", psi, phi, phi)


def nearly_kernel_prediction(k, mu, y, train_idx, test_idx, *, algorithm: str = "direct", eta=None) -> np.ndarray:
    """Nearly-kernel prediction (N_test, n_out): "direct" (11.132), or "gd"/"ode" (11.133) with Z_A, Z_B."""
    k = np.asarray(k, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64)
    N = k.shape[0]
    if k.shape != (N, N) or mu.shape != (N, N, N):
        raise DeepEFTInputError(f"k must be (N, N) and mu (N, N, N); got {k.shape} and {mu.shape}.")
    tr, te = np.asarray(train_idx), np.asarray(test_idx)
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] != tr.size:
        raise DeepEFTInputError(f"y must be the training targets (N_A, n_out) with N_A = {tr.size}, got {y.shape}.")
    proj = algorithm_projectors(k[np.ix_(tr, tr)], eta, "two_step" if algorithm == "direct" else algorithm)
    V, lam = proj.eigvecs, proj.eigvals
    kinv = (V / lam) @ V.T
    Pb = k[np.ix_(te, tr)] @ kinv
    out = Pb @ y
    B = mu[np.ix_(te, tr, tr)] - np.einsum("ba,acd->bcd", Pb, mu[np.ix_(tr, tr, tr)])  # [μ_{βα̃1α̃2} − k k̃⁻¹ μ]
    if algorithm == "direct":
        ky = kinv @ y
        return out + 0.5 * np.einsum("bcd,ci,di->bi", B, ky, ky)
    A = np.transpose(mu[np.ix_(tr, te, tr)], (1, 0, 2)) - np.einsum("ba,cad->bcd", Pb, mu[np.ix_(tr, tr, tr)])
    ZA, ZB = proj.dense("Z_A"), proj.dense("Z_B")
    return out + np.einsum("bcd,cdef,ei,fi->bi", A, ZA, y, y) + np.einsum("bcd,cdef,ei,fi->bi", B, ZB, y, y)
