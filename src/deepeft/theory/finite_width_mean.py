"""Mean output of the ensemble of finite-width networks trained by MSE gradient descent (PDLT (∞.155)–(∞.160)).

The mean is the expectation of the per-network closed form (∞.154) over initializations, at order 1/n, with the
leading statistics at the output layer L (each tensor with its 1/n_{L−1} outside, as :func:`deepeft.ntk_fluctuations`,
:func:`deepeft.dntk`, :func:`deepeft.ddntk` return them):

    E[z_{i;α} z_{j;β}] = δ_ij K_αβ;   E[ΔĤ ΔĤ] (8.82) with A, B;   E[dĤ_{i0i1i2;δ0δ1δ2} z_{i3;δ3}] (11.45) with P, Q;
    E[dd_IĤ] (∞.11) with R;   E[dd_IIĤ] (∞.12) with S, T, U;   E[εεε]_{abc;456} = −y_a4 y_b5 y_c6 − δ_ab K_45 y_c6 − … .

Each term of (∞.154) is averaged with these (odd moments vanish by z → −z parity; the differentials' own
fluctuations enter only at O(1/n²)), giving

    m_β = m^NTK_β + [m^X_β − H_{βα̃1} H̃^{α̃1α̃2} m^X_{α̃2}]  summed over X = ΔNTK, dNTK, ddNTK-I, ddNTK-II,
    m^NTK = H_{βα̃}H̃⁻¹y (∞.156),   m^ΔNTK_δ = −(1/n)(A_{(δα̃1)(α̃2α̃3)} + B_{δα̃2α̃1α̃3} + n_L B_{δα̃3α̃1α̃2}) H̃^{α̃1α̃2}H̃^{α̃3α̃4} y_α̃4
    ((∞.157) with the sign corrected: the printed (∞.154) has the two ΔĤ lines with flipped signs — expanding
    −Ĥ_{βα̃}Ĥ^{-1}ε in ΔĤ gives −[ΔĤ_β − PΔĤ]H̃⁻¹ε + [ΔĤ_β − PΔĤ]H̃⁻¹ΔĤH̃⁻¹ε; found against ensembles of trained
    networks, docs/finite_width_training.md),

and the dNTK / ddNTK parts are the same averages contracted with the algorithm projectors (here evaluated term by
term with the Kronecker deltas of the decompositions kept explicit over the n_L output components, instead of the
printed sums (∞.158)–(∞.160); the tests compare both). H is the NTK mean at leading order, the frozen NTK Θ^{(L)}.

References:
  Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory* (arXiv:2106.10165), §∞.2.3.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DeepEFTInputError
from ..network import MLP
from .algorithm_projectors import DENSE_MAX_BYTES, PROJECTOR_NAMES, algorithm_projectors, spectrum

__all__ = ["FiniteWidthPrediction", "finite_width_mean_from_statistics", "finite_width_prediction"]


@dataclasses.dataclass(frozen=True)
class FiniteWidthPrediction:
    """Ensemble mean of trained test outputs (N_test, n_L) at order 1/n and its parts (∞.155):

    mean = m_ntk + m_delta_ntk + m_dntk + m_ddntk_I + m_ddntk_II (the last four include 1/n_{L−1} and the
    −H_{βα̃}H̃⁻¹(·)_α̃ subtraction of (∞.155)); m_ddntk = m_ddntk_I + m_ddntk_II.
    """

    mean: np.ndarray
    m_ntk: np.ndarray
    m_delta_ntk: np.ndarray
    m_dntk: np.ndarray
    m_ddntk_I: np.ndarray
    m_ddntk_II: np.ndarray
    algorithm: str
    eta: float | None
    max_stable_eta: float

    @property
    def m_ddntk(self) -> np.ndarray:
        return self.m_ddntk_I + self.m_ddntk_II


def _arr(x, name, shape):
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeepEFTInputError(f"{name} must be a numeric array of shape {shape}.") from None
    if a.shape != shape:
        raise DeepEFTInputError(f"{name} must have shape {shape} (one layer, all N inputs), got {a.shape}.")
    if not np.all(np.isfinite(a)):
        raise DeepEFTInputError(f"{name} contains NaN or inf.")
    return a


def _check_train_size(NA: int) -> None:
    """The mean contracts the dense six-index projectors Z_I*, Z_II* (N_A⁶ numbers): refuse N_A beyond the dense limit
    before any statistics are computed, with what to change."""
    limit = int((DENSE_MAX_BYTES / 8) ** (1 / 6))
    if NA > limit:
        raise DeepEFTInputError(
            f"N_A = {NA} training inputs is too many for the ensemble mean (∞.155): it contracts the dense six-index "
            f"projectors Z_IA … Z_IIB (N_A⁶ numbers, {8 * NA**6 / 2**30:.1f} GiB; limit N_A ≤ {limit}), and the "
            f"statistics R, S, T, U cost O((N_A + N_B)⁴) Gaussian integrals. Use at most {limit} training inputs "
            "(e.g. a representative subset); the per-network de.trained_output has no dense tensors."
        )


def finite_width_mean_from_statistics(
    H, K, A, B, P, Q, R, S, T, U, y, n_prev, train_idx, test_idx, eta=None, algorithm: str = "gd"
) -> FiniteWidthPrediction:
    """The mean (∞.155) from output-layer statistics on all N inputs (arrays of one layer, printed index order).

    H, K : (N, N) NTK mean and kernel; A, B, P, Q, R, S, T, U : (N, N, N, N) with 1/n_prev outside;
    y : (N_A, n_L) training targets; n_prev = n_{L−1}; train_idx, test_idx : indices into the N inputs.
    """
    N = np.shape(H)[0] if np.ndim(H) == 2 else -1
    H = _arr(H, "H", (N, N))
    K = _arr(K, "K", (N, N))
    A, B, P, Q, R, S, T, U = (_arr(t, nm, (N,) * 4) for t, nm in zip((A, B, P, Q, R, S, T, U), "ABPQRSTU", strict=True))
    tr, te = (np.asarray(i) for i in (train_idx, test_idx))
    for idx, nm in ((tr, "train_idx"), (te, "test_idx")):
        if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= N:
            raise DeepEFTInputError(f"{nm} must be a non-empty 1-D integer array indexing the N = {N} inputs.")
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] != tr.size or not np.all(np.isfinite(y)):
        raise DeepEFTInputError(f"y must be finite training targets (N_A, n_L) with N_A = {tr.size}, got shape {y.shape}.")
    if not np.isfinite(n_prev) or n_prev <= 0:
        raise DeepEFTInputError(f"n_prev (the width n_{{L−1}}) must be positive, got {n_prev!r}.")
    nL = y.shape[1]
    _check_train_size(tr.size)
    inv = 1.0 / float(n_prev)

    proj = algorithm_projectors(H[np.ix_(tr, tr)], eta, algorithm)
    Z = {k: proj.dense(k) for k in PROJECTOR_NAMES}
    lam, V = spectrum(H[np.ix_(tr, tr)])
    Hinv = (V / lam) @ V.T
    al = np.arange(N)
    Pd = H[:, tr] @ Hinv  # P_x^{α̃} for every input x
    Y = y.T  # (n_L, N_A): Y[k, α̃] = y_{k;α̃}
    e = np.eye(nL)
    es = np.einsum

    def s(T4, *sets):
        return T4[np.ix_(*sets)]

    # ΔNTK (∞.157): per x ∈ all inputs, (n_L, N)
    AB = (
        s(A, al, tr, tr, tr)
        + np.transpose(s(B, al, tr, tr, tr), (0, 2, 1, 3))
        + nL * np.transpose(s(B, al, tr, tr, tr), (0, 2, 3, 1))
    )
    # sign: −(A + B + n_L B)H̃⁻¹H̃⁻¹y, opposite to the printed (∞.157) (erratum: the ΔĤ lines of (∞.154) carry
    # flipped signs; −Ĥ_{βα̃}Ĥ⁻¹ε expanded to second order in ΔĤ gives −[ΔĤ_β − PΔĤ]H̃⁻¹ε + [ΔĤ_β − PΔĤ]H̃⁻¹ΔĤH̃⁻¹ε)
    raw_d = -inv * es("xabc,ab,cd,id->ix", AB, Hinv, Hinv, Y)

    # dNTK: E[dĤ_{i j1 j2; x a1 a2} z_{k;a3}] (11.45) for Z_B, and E[dĤ_{j1 i j2; a1 x a2} z_{k;a3}] for Z_A
    Qt = np.transpose(Q, (0, 2, 1, 3))  # Qt[d0,d1,d2,d3] = Q_{d0d2d1d3}
    MB = inv * (
        es("ik,jl,xabc->ijlkxabc", e, e, s(P, al, tr, tr, tr))
        + es("ij,lk,xabc->ijlkxabc", e, e, s(Q, al, tr, tr, tr))
        + es("il,jk,xabc->ijlkxabc", e, e, s(Qt, al, tr, tr, tr))
    )  # [i, j1, j2, k, x, a1, a2, a3]
    MA = inv * (
        es("jk,il,axbc->jilkaxbc", e, e, s(P, tr, al, tr, tr))
        + es("ji,lk,axbc->jilkaxbc", e, e, s(Q, tr, al, tr, tr))
        + es("jl,ik,axbc->jilkaxbc", e, e, s(Qt, tr, al, tr, tr))
    )  # [j1, i, j2, k, a1, x, a2, a3]
    raw_dntk = -(
        es("ijkjxabc,abcd,kd->ix", MB, Z["Z_B"], Y)
        + es("ijkkxabd,abcd,jc->ix", MB, Z["Z_B"], Y)
        + es("jikjaxbc,abcd,kd->ix", MA, Z["Z_A"], Y)
        + es("jikkaxbd,abcd,jc->ix", MA, Z["Z_A"], Y)
    )

    # E[ε_{a;4} ε_{b;5} ε_{c;6}]
    Kt = K[np.ix_(tr, tr)]
    E3 = -(
        es("ad,be,cf->abcdef", Y, Y, Y)
        + es("ab,de,cf->abcdef", e, Kt, Y)
        + es("ac,df,be->abcdef", e, Kt, Y)
        + es("bc,ef,ad->abcdef", e, Kt, Y)
    )

    def cyc(T4, perm):  # T4 with its last three sample slots permuted: out[x,a1,a2,a3] = T4[x, a_perm...]
        return np.transpose(T4, perm)

    # dd_I: E[dd_IĤ_{i j1 j2 j3; x a1 a2 a3}] (∞.11), and with (i, x) in the second slot
    R1 = s(R, al, tr, tr, tr)
    EIB = inv * (
        es("ij,kl,xabc->ijklxabc", e, e, R1)
        + es("ik,lj,xabc->ijklxabc", e, e, cyc(R1, (0, 3, 1, 2)))  # R_{x a2 a3 a1}
        + es("il,jk,xabc->ijklxabc", e, e, cyc(R1, (0, 2, 3, 1)))  # R_{x a3 a1 a2}
    )
    Rs = s(R, tr, al, tr, tr)  # Rs[a1, x, a2, a3] = R_{a1 x a2 a3}
    EIA = inv * (
        es("ji,kl,axbc->jiklaxbc", e, e, Rs)  # δ_{j1 i} δ_{j2 j3} R_{a1 x a2 a3}
        + es("jk,li,axbc->jiklaxbc", e, e, np.einsum("abcx->axbc", s(R, tr, tr, tr, al)))  # δ_{j1j2}δ_{j3 i} R_{a1 a2 a3 x}
        + es("jl,ik,axbc->jiklaxbc", e, e, np.einsum("acxb->axbc", s(R, tr, tr, al, tr)))  # δ_{j1j3}δ_{i j2} R_{a1 a3 x a2}
    )
    raw_ddI = es("ijklxabc,abcdef,jkldef->ix", EIB, Z["Z_IB"], E3, optimize=True) + es(
        "jiklaxbc,abcdef,jkldef->ix", EIA, Z["Z_IA"], E3, optimize=True
    )

    # dd_II (∞.12): E[dd_IIĤ_{i j1 j2 j3; x a1 a2 a3}] and E[dd_IIĤ_{j1 j2 i j3; a1 a2 x a3}]
    EIIB = inv * (
        es("ij,kl,xabc->ijklxabc", e, e, s(S, al, tr, tr, tr))  # S_{x a1 a2 a3}
        + es("ik,lj,xabc->ijklxabc", e, e, np.einsum("xbca->xabc", s(T, al, tr, tr, tr)))  # T_{x a2 a3 a1}
        + es("il,jk,xabc->ijklxabc", e, e, np.einsum("xcab->xabc", s(U, al, tr, tr, tr)))  # U_{x a3 a1 a2}
    )
    EIIA = inv * (
        es("jk,il,abxc->jkilabxc", e, e, s(S, tr, tr, al, tr))  # δ_{j1j2}δ_{i j3} S_{a1 a2 x a3}
        + es("ji,lk,abxc->jkilabxc", e, e, np.einsum("axcb->abxc", s(T, tr, al, tr, tr)))  # δ_{j1 i}δ_{j3j2} T_{a1 x a3 a2}
        + es("jl,ki,abxc->jkilabxc", e, e, np.einsum("acbx->abxc", s(U, tr, tr, tr, al)))  # δ_{j1j3}δ_{j2 i} U_{a1 a3 a2 x}
    )
    raw_ddII = es("ijklxabc,abcdef,jkldef->ix", EIIB, Z["Z_IIB"], E3, optimize=True) + es(
        "jkilabxc,abcdef,jkldef->ix", EIIA, Z["Z_IIA"], E3, optimize=True
    )

    def bracket(raw):  # m^X_β − H_{βα̃1}H̃^{α̃1α̃2} m^X_{α̃2}, as (N_test, n_L)
        return (raw[:, te] - raw[:, tr] @ Pd[te].T).T

    m_ntk = Pd[te] @ y
    parts = [bracket(r) for r in (raw_d, raw_dntk, raw_ddI, raw_ddII)]
    return FiniteWidthPrediction(
        mean=m_ntk + sum(parts),
        m_ntk=m_ntk,
        m_delta_ntk=parts[0],
        m_dntk=parts[1],
        m_ddntk_I=parts[2],
        m_ddntk_II=parts[3],
        algorithm=algorithm,
        eta=proj.eta,
        max_stable_eta=proj.max_stable_eta,
    )


def finite_width_prediction(
    net: MLP, X_train, Y_train, X_test, *, eta=None, algorithm: str = "gd", resolution: float = 1.0
) -> FiniteWidthPrediction:
    """Mean trained test output of the ensemble at order 1/n (∞.155) from the theory's output-layer statistics.

    Θ^{(L)}, K^{(L)}, A, B (:func:`deepeft.ntk_fluctuations`), P, Q, R, S, T, U (:func:`deepeft.ddntk`) on the
    joint train + test inputs; the activation must be smooth (kinked ones are refused by :func:`deepeft.ddntk`).
    """
    from .ddntk import ddntk

    if not isinstance(net, MLP):
        raise DeepEFTInputError(f"net must be a deepeft.MLP, got {type(net).__name__}.")
    Xa = net.check_inputs(X_train, "X_train")
    Xb = net.check_inputs(X_test, "X_test")
    Y = np.asarray(Y_train, dtype=np.float64)
    if Y.ndim == 1 and net.n[-1] == 1:
        Y = Y[:, None]
    if Y.shape != (Xa.shape[0], net.n[-1]):
        raise DeepEFTInputError(f"Y_train must be (N_A, n_L) = {(Xa.shape[0], net.n[-1])}, got {Y.shape}.")
    NA = Xa.shape[0]
    _check_train_size(NA)  # before the O((N_A + N_B)⁴) statistics
    st = ddntk(net, np.concatenate([Xa, Xb]), resolution=resolution)
    last = net.L - 1
    return finite_width_mean_from_statistics(
        st.Theta[last], st.K[last], st.ntk.A[last], st.ntk.B[last], st.P[last], st.Q[last],
        st.R[last], st.S[last], st.T[last], st.U[last], Y, float(st.n_prev[last]),
        np.arange(NA), np.arange(NA, NA + Xb.shape[0]), eta=eta, algorithm=algorithm,
    )  # fmt: skip
