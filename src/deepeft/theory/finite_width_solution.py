"""The output of one finite-width network at the end of training, from its tensors at initialization
(PDLT §∞.2, the closed form (∞.141)/(∞.154) with the algorithm projectors of :mod:`.algorithm_projectors`).

Truncated dynamics (∞.81)–(∞.83) of MSE gradient descent at constant η, ε ≡ z − y on the training set 𝒜:

    z_{i;δ}(t+1) = z − η Σ H_{ij;δα̃} ε_{j;α̃} + (η²/2) Σ dH_{ij1j2;δα̃1α̃2} εε − (η³/6) Σ dd_IĤ_{ij1j2j3;δα̃1α̃2α̃3} εεε
    H_{i1i2;δ1δ2}(t+1) = H − η Σ (dH_{i1i2j;δ1δ2α̃} + dH_{i2i1j;δ2δ1α̃}) ε
                         + (η²/2) Σ (dd_IĤ_{i1i2j1j2} + dd_IĤ_{i2i1j1j2} + 2 dd_IIĤ_{i1i2j1j2}) εε
    dH_{i0i1i2;δ0δ1δ2}(t+1) = dH − η Σ (dd_IĤ_{i0i1i2j} + dd_IIĤ_{i0i1i2j} + dd_IIĤ_{i0i2i1j}) ε

(ddNTKs constant). Their t → ∞ solution to first order in the differentials is (∞.141):

    z(∞)_δ = z_δ − Ĥ_{δα̃1}(Ĥ⁻¹)^{α̃1α̃2} ε_α̃2
           + [dĤ_{j1 i j2;α̃1 δ α̃2} − P_δ^{α̃6} dĤ_{j1 i j2;α̃1 α̃6 α̃2}] Z_A^{α̃1α̃2α̃3α̃4} ε_{j1;α̃3} ε_{j2;α̃4}
           + [dĤ_{i j1 j2;δ α̃1 α̃2} − P_δ^{α̃6} dĤ_{i j1 j2;α̃6 α̃1 α̃2}] Z_B ε ε
           + [dd_IĤ_{j1 i j2 j3;α̃1 δ α̃2 α̃3} − P dd_IĤ_{…;α̃1 α̃8 α̃2 α̃3}] Z_IA εεε + [dd_IĤ_{i j1j2j3;δ α̃1α̃2α̃3} − P …] Z_IB εεε
           + [dd_IIĤ_{j1 j2 i j3;α̃1 α̃2 δ α̃3} − P dd_IIĤ_{…;α̃1 α̃2 α̃8 α̃3}] Z_IIA εεε + [dd_IIĤ_{i j1j2j3;δ α̃1α̃2α̃3} − P …] Z_IIB εεε,

P_δ^{α̃} = H_{δα̃5} H̃^{α̃5α̃} (the printed (∞.154) drops the i of the Z_A term: digest erratum). Every bracket
vanishes for δ ∈ 𝒜, so the network fits its training set up to O(1/n²).

Per network we use the network's *own* NTK in the projectors and brackets: the pairs (i, α̃) are fused into one
index of size n_L·N_A, on which the dynamics above are exactly the n_L = 1 dynamics, and the closed form with
H̃ → Ĥ on that fused index solves them to first order in the differentials for any Ĥ [derived; the book's
(∞.154) replaces Ĥ by δ_ij H in the differential terms, which differs at O(ΔĤ·dĤ) = O(n^{-3/2})]. The test
iterates the difference equations with synthetic tensors of size ε and finds the closed form's error ∝ ε².

References:
  Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory* (arXiv:2106.10165), §∞.2.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DeepEFTInputError
from .algorithm_projectors import algorithm_projectors, dense_projectors

__all__ = ["TrainedOutput", "iterate_truncated_dynamics", "trained_output_from_tensors"]

# Memory allowed for the gathered (test × train³) ddNTK slices of one contraction.
SLICE_MAX_BYTES = 1 << 31  # 2 GiB


@dataclasses.dataclass(frozen=True)
class TrainedOutput:
    """Predicted output of one network after training (∞.141), arrays (N_test, n_L).

    output = ntk + dntk + ddntk_I + ddntk_II, where
    ntk : z − Ĥ_{δα̃}(Ĥ⁻¹)ε — the frozen-NTK (linearized-network) prediction with this network's own NTK;
    dntk : the Z_A and Z_B terms; ddntk_I : the Z_IA, Z_IB terms; ddntk_II : the Z_IIA, Z_IIB terms.
    algorithm, eta, max_stable_eta : as used (max_stable_eta = 2/λ_max of the fused training NTK).
    """

    output: np.ndarray
    ntk: np.ndarray
    dntk: np.ndarray
    ddntk_I: np.ndarray
    ddntk_II: np.ndarray
    algorithm: str
    eta: float | None
    max_stable_eta: float


def _array(x, name: str, ndim: int) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DeepEFTInputError(f"{name} must be a numeric array: {exc}") from None
    if a.ndim != ndim:
        raise DeepEFTInputError(f"{name} must have {ndim} axes, got shape {a.shape}.")
    if not np.all(np.isfinite(a)):
        raise DeepEFTInputError(f"{name} contains NaN or inf; check the network, its inputs and the targets.")
    return a


def _indices(idx, N: int, name: str) -> np.ndarray:
    try:
        a = np.asarray(idx)
    except (TypeError, ValueError):
        a = None
    if a is None or a.ndim != 1 or a.size == 0 or a.dtype.kind not in "iu":
        raise DeepEFTInputError(f"{name} must be a non-empty 1-D array of integer input indices, got {idx!r}.")
    if a.min() < 0 or a.max() >= N:
        raise DeepEFTInputError(f"{name} must index the N = {N} inputs (0 … {N - 1}), got values {a.min()} … {a.max()}.")
    return a.astype(np.int64)


def _fuse(T: np.ndarray, sel: list[np.ndarray]) -> np.ndarray:
    """T[i0..i_{k−1}, δ0..δ_{k−1}] restricted to sample sets ``sel`` → fused (i, δ) indices, i-major."""
    k = len(sel)
    n = T.shape[0]
    sub = T[(slice(None),) * k + np.ix_(*sel)]
    order = [ax for s in range(k) for ax in (s, k + s)]
    return np.transpose(sub, order).reshape([n * len(s) for s in sel])


def _check_tensors(H, dH, ddI, ddII, z0):
    H = _array(H, "H (the NTK, (n_L, n_L, N, N))", 4)
    n, N = H.shape[0], H.shape[2]
    if H.shape != (n, n, N, N):
        raise DeepEFTInputError(f"H must be (n_L, n_L, N, N) = [i1, i2, δ1, δ2], got shape {H.shape}.")
    dH = _array(dH, "dH (the dNTK, (n_L,)*3 + (N,)*3)", 6)
    if dH.shape != (n,) * 3 + (N,) * 3:
        raise DeepEFTInputError(f"dH must be (n_L,)*3 + (N,)*3 = {(n,) * 3 + (N,) * 3} like H, got {dH.shape}.")
    out = []
    for T, name in ((ddI, "ddI"), (ddII, "ddII")):
        if T is None:
            out.append(np.zeros((n,) * 4 + (N,) * 4))
            continue
        T = _array(T, f"{name} (a ddNTK, (n_L,)*4 + (N,)*4)", 8)
        if T.shape != (n,) * 4 + (N,) * 4:
            raise DeepEFTInputError(f"{name} must be (n_L,)*4 + (N,)*4 = {(n,) * 4 + (N,) * 4} like H, got {T.shape}.")
        out.append(T)
    z0 = _array(z0, "z0 (initial outputs, (N, n_L))", 2)
    if z0.shape != (N, n):
        raise DeepEFTInputError(f"z0 must be the initial outputs (N, n_L) = {(N, n)}, got {z0.shape}.")
    return H, dH, out[0], out[1], z0


def _slice_budget(n: int, n_test: int, n_train: int) -> None:
    need = 8 * 4 * (n * n_test) * (n * n_train) ** 3
    if need > SLICE_MAX_BYTES:
        raise DeepEFTInputError(
            f"the ddNTK brackets for {n_test} test and {n_train} training inputs (n_L = {n}) need {need / 2**30:.1f} GiB "
            f"(limit {SLICE_MAX_BYTES / 2**30:.0f} GiB); predict fewer test inputs per call or use fewer training inputs."
        )


def _cubic(G: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.tensordot(G, w, axes=([1, 2, 3], [0, 1, 2]))


def trained_output_from_tensors(
    H, dH, ddI, ddII, z0, y, train_idx, test_idx, eta=None, algorithm: str = "gd", *, method: str = "spectral"
) -> TrainedOutput:
    """The trained output (∞.141) of one network from its own NTK, dNTK and ddNTKs at initialization.

    Parameters
    ----------
    H : (n_L, n_L, N, N) NTK Ĥ_{i1i2;δ1δ2} on all N inputs (training and test).
    dH : (n_L,)*3 + (N,)*3 dNTK dĤ_{i0i1i2;δ0δ1δ2} (11.8).
    ddI, ddII : (n_L,)*4 + (N,)*4 ddNTKs (∞.5), (∞.7), or None (zero: e.g. a quadratic model).
    z0 : (N, n_L) outputs at initialization; y : (N_A, n_L) targets of the training inputs.
    train_idx, test_idx : integer indices into the N inputs (test may include training inputs).
    eta, algorithm : "gd" (needs 0 < ηλ_max < 2), "ode", "two_step" (:mod:`.algorithm_projectors`).
    method : "spectral" (default, O(N_A³) projectors) or "dense" (reference: full N_A⁶ projector tensors).

    Returns :class:`TrainedOutput` with arrays (N_test, n_L).
    """
    if method not in ("spectral", "dense"):
        raise DeepEFTInputError(f"method must be 'spectral' or 'dense' (reference path), got {method!r}.")
    H, dH, ddI, ddII, z0 = _check_tensors(H, dH, ddI, ddII, z0)
    n, N = H.shape[0], H.shape[2]
    tr = _indices(train_idx, N, "train_idx")
    te = _indices(test_idx, N, "test_idx")
    if np.unique(tr).size != tr.size:
        raise DeepEFTInputError("train_idx has repeated inputs: the training NTK block would be singular.")
    y = _array(y, "y (training targets, (N_A, n_L))", 2)
    if y.shape != (tr.size, n):
        raise DeepEFTInputError(f"y must be the training targets (N_A, n_L) = {(tr.size, n)}, got {y.shape}.")
    _slice_budget(n, te.size, tr.size)

    Ht = _fuse(H, [tr, tr])
    Hd = _fuse(H, [te, tr])
    if method == "spectral":
        proj = algorithm_projectors(Ht, eta, algorithm)
        V = proj.eigvecs
        Hinv = (V / proj.eigvals) @ V.T
        max_eta = proj.max_stable_eta
        eta_used = proj.eta
    else:
        Z = dense_projectors(Ht, eta, algorithm)
        Hinv = np.linalg.inv(Ht)
        lam_max = float(np.linalg.eigvalsh(Ht)[-1])
        max_eta = 2.0 / lam_max
        eta_used = float(eta) if algorithm == "gd" else None

    eps = (z0[tr] - y).T.reshape(-1)  # fused (j, α̃), j-major
    zt = z0[te].T.reshape(-1)
    P = Hd @ Hinv  # P_δ^{α̃} (fused)
    ntk = zt - P @ eps

    dH_t = _fuse(dH, [tr, tr, tr])
    G_B = _fuse(dH, [te, tr, tr]) - np.tensordot(P, dH_t, axes=(1, 0))
    G_A = np.transpose(_fuse(dH, [tr, te, tr]), (1, 0, 2)) - np.tensordot(P, np.transpose(dH_t, (1, 0, 2)), axes=(1, 0))
    ddI_t = _fuse(ddI, [tr] * 4)
    G_IB = _fuse(ddI, [te, tr, tr, tr]) - np.tensordot(P, ddI_t, axes=(1, 0))
    G_IA = np.transpose(_fuse(ddI, [tr, te, tr, tr]), (1, 0, 2, 3)) - np.tensordot(
        P, np.transpose(ddI_t, (1, 0, 2, 3)), axes=(1, 0)
    )
    ddII_t = _fuse(ddII, [tr] * 4)
    G_IIB = _fuse(ddII, [te, tr, tr, tr]) - np.tensordot(P, ddII_t, axes=(1, 0))
    G_IIA = np.transpose(_fuse(ddII, [tr, tr, te, tr]), (2, 0, 1, 3)) - np.tensordot(
        P, np.transpose(ddII_t, (2, 0, 1, 3)), axes=(1, 0)
    )

    if method == "spectral":
        e = V.T @ eps  # ε̂_p
        ee = np.outer(e, e)
        eee = ee[:, :, None] * e[None, None, :]

        def back2(w):  # Σ_pq V_{1p} V_{2q} w_pq
            return V @ w @ V.T

        def back3(w):
            return np.einsum("ap,bq,cr,pqr->abc", V, V, V, w, optimize=True)

        dntk = np.tensordot(G_A, back2(proj.Z_A * ee), axes=([1, 2], [0, 1])) + np.tensordot(
            G_B, back2(proj.Z_B * ee), axes=([1, 2], [0, 1])
        )
        ddntk_I = _cubic(G_IA, back3(proj.Z_IA * eee)) + _cubic(G_IB, back3(proj.Z_IB * eee))
        ddntk_II = _cubic(G_IIA, back3(proj.Z_IIA * eee)) + _cubic(G_IIB, back3(proj.Z_IIB * eee))
    else:
        es = np.einsum
        dntk = es("dab,abcf,c,f->d", G_A, Z["Z_A"], eps, eps) + es("dab,abcf,c,f->d", G_B, Z["Z_B"], eps, eps)
        ddntk_I = es("dabc,abcefg,e,f,g->d", G_IA, Z["Z_IA"], eps, eps, eps, optimize=True) + es(
            "dabc,abcefg,e,f,g->d", G_IB, Z["Z_IB"], eps, eps, eps, optimize=True
        )
        ddntk_II = es("dabc,abcefg,e,f,g->d", G_IIA, Z["Z_IIA"], eps, eps, eps, optimize=True) + es(
            "dabc,abcefg,e,f,g->d", G_IIB, Z["Z_IIB"], eps, eps, eps, optimize=True
        )

    def shape(v):  # fused (i, β) → (N_test, n_L)
        return v.reshape(n, te.size).T

    parts = [shape(v) for v in (ntk, dntk, ddntk_I, ddntk_II)]
    return TrainedOutput(
        output=parts[0] + parts[1] + parts[2] + parts[3],
        ntk=parts[0],
        dntk=parts[1],
        ddntk_I=parts[2],
        ddntk_II=parts[3],
        algorithm=algorithm,
        eta=eta_used,
        max_stable_eta=max_eta,
    )


def iterate_truncated_dynamics(H, dH, ddI, ddII, z0, y, train_idx, eta: float, steps: int) -> np.ndarray:
    """Iterate the coupled difference equations (∞.81)–(∞.83) for ``steps`` GD steps; returns z (N, n_L).

    The independent check of :func:`trained_output_from_tensors` (which solves the same equations in closed form
    to first order in the differentials). Fused (i, δ) indices; ddNTKs constant; all updates simultaneous.
    """
    H, dH, ddI, ddII, z0 = _check_tensors(H, dH, ddI, ddII, z0)
    n, N = H.shape[0], H.shape[2]
    tr = _indices(train_idx, N, "train_idx")
    y = _array(y, "y", 2)
    all_ = np.arange(N)
    Hf = _fuse(H, [all_] * 2)
    dHf = _fuse(dH, [all_] * 3)
    dIf = _fuse(ddI, [all_] * 4)
    dIIf = _fuse(ddII, [all_] * 4)
    z = z0.T.reshape(-1).copy()
    train_f = (np.arange(n)[:, None] * N + tr[None, :]).reshape(-1)  # fused positions of (j, α̃)
    yf = y.T.reshape(-1)
    # the ddNTK combinations that drive H and dH, restricted to training indices in the driven slots
    dd_H = dIf + np.transpose(dIf, (1, 0, 2, 3)) + 2.0 * dIIf
    dd_dH = dIf + dIIf + np.transpose(dIIf, (0, 2, 1, 3))
    dd_H = dd_H[:, :, train_f][:, :, :, train_f]
    dd_dH = dd_dH[:, :, :, train_f]
    dd_z = dIf[:, train_f][:, :, train_f][:, :, :, train_f]
    for _ in range(int(steps)):
        eps = z[train_f] - yf
        dz = (
            -eta * Hf[:, train_f] @ eps
            + 0.5 * eta**2 * np.einsum("dab,a,b->d", dHf[:, train_f][:, :, train_f], eps, eps)
            - eta**3 / 6.0 * np.einsum("dabc,a,b,c->d", dd_z, eps, eps, eps)
        )
        dHa = dHf[:, :, train_f] @ eps
        dHH = -eta * (dHa + dHa.T) + 0.5 * eta**2 * np.einsum("xyab,a,b->xy", dd_H, eps, eps)
        ddH = -eta * (dd_dH @ eps)
        z = z + dz
        Hf = Hf + dHH
        dHf = dHf + ddH
    return z.reshape(n, N).T
