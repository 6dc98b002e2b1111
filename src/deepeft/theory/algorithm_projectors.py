"""Algorithm projectors of the finite-width trained network (PDLT §∞.2.2, (∞.107)–(∞.153)).

Everything here is a function of the training block H̃ of the NTK (N_A × N_A, symmetric positive definite)
and the global learning rate η only — the "sample-space dual" of the training algorithm.

Inverting tensors (GD with constant η; η → 0 is the ODE limit (∞.152)–(∞.153)):

    X_I  = H̃⁻¹                                                                                    (∞.108)
    X_II : Σ_{34} X_II^{1234} (H̃_{35}δ_{46} + δ_{35}H̃_{46} − η H̃_{35}H̃_{46}) = δ^1_5 δ^2_6        (∞.107)
    X_III: Σ_{456} X_III^{123456} (Σ_3 H̃⊗I⊗I − η Σ_3 H̃⊗H̃⊗I + η² H̃⊗H̃⊗H̃)_{456,789} = δδδ           (∞.110)

Shorthands (∞.135), (∞.138)–(∞.140) (Y3 has four terms, digest erratum for the printed (∞.139)):

    Y1 = X_II^{1245} H̃^{36} − H̃^{37} X_III^{127456}
    Y2 = H̃^{13} H̃^{24} − H̃^{25} X_II^{1534}
    Y3 = H̃^{14}H̃^{25}H̃^{36} − H̃^{27}X_II^{1745}H̃^{36} − H̃^{14}H̃^{37}X_II^{2756} + H̃^{39}X_II^{2978}X_III^{178456}
    Y4 = H̃^{14} X_II^{2356} − X_II^{2378} X_III^{178456}

Projectors, gradient descent (∞.142)–(∞.147):
    Z_A = Y2,  Z_B = Y2 + (η/2) X_II,  Z_IA = −Y3 − (η/2) Y4,  Z_IB = −Y3 − (η/2)Y4 − (η/2)Y1 − (η²/6) X_III,
    Z_IIA = −Y3,  Z_IIB = −Y3 − Y3^{213546} − Y3^{132465} − η Y4 − η Y1;
ODE limit (∞.149)–(∞.151): the same at η = 0; two-step algorithm (∞.148) (digest erratum: six indices):
    Z_B = ½ H̃^{13}H̃^{24},  Z_IB = −(1/6) H̃^{14}H̃^{25}H̃^{36},  the others 0.

Spectral form [derived]. With H̃ = V diag(λ) Vᵀ every tensor above is diagonal in the eigenbasis with the
pairing (1,4)(2,5)(3,6) (four-index ones (1,3)(2,4)): Z^{123456} = Σ_{pqr} V_{1p}V_{2q}V_{3r}V_{4p}V_{5q}V_{6r}
ζ(λ_p, λ_q, λ_r), where with h = 1/λ, x₂(p,q) = 1/(λ_p + λ_q − ηλ_pλ_q) = η/(1 − (1 − ηλ_p)(1 − ηλ_q)) and
x₃(p,q,r) = η/(1 − (1 − ηλ_p)(1 − ηλ_q)(1 − ηλ_r)) (the geometric sums (∞.106), (∞.109)):

    y1 = h_r (x₂(p,q) − x₃),   y2 = h_p h_q − h_q x₂(p,q),
    y3 = h_p h_q h_r − h_q h_r x₂(p,q) − h_p h_r x₂(q,r) + h_r x₂(q,r) x₃,   y4 = x₂(q,r)(h_p − x₃).

So the projectors cost O(N_A³) numbers instead of the O(N_A⁶) of X_III; :func:`dense_projectors` builds the
full tensors from the book's index expressions (dense inverses of the N_A² × N_A² and N_A³ × N_A³ operators)
as the independent reference path used by the tests. GD converges iff 0 < ηλ_max(H̃) < 2 (∞.89), footnote 16;
outside, the geometric sums diverge and an error names the largest stable η = 2/λ_max.

Single input (N_A = 1) [(∞.163)–(∞.164); the ddNTK ones at finite η derived]: Z_A = (1 − ηH)/(H²(2 − ηH)),
Z_B = 1/(2H²), Z_IA = −(1 − ηH)(2 − 2ηH + η²H²)/(2H³(2 − ηH)(3 − 3ηH + η²H²)), Z_IB = −1/(6H³),
Z_IIA = −(1 − ηH)³/(H³(2 − ηH)(3 − 3ηH + η²H²)), Z_IIB = −(1 − ηH)/(H³(2 − ηH)).

References:
  Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory* (arXiv:2106.10165), §∞.2.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DeepEFTInputError

__all__ = [
    "ALGORITHMS",
    "AlgorithmProjectors",
    "algorithm_projectors",
    "dense_projectors",
    "single_input_projectors",
]

ALGORITHMS = ("gd", "ode", "two_step")
PROJECTOR_NAMES = ("Z_A", "Z_B", "Z_IA", "Z_IB", "Z_IIA", "Z_IIB")
# Memory allowed for one dense N_A⁶ tensor (X_III and the six-index projectors) in the reference path.
DENSE_MAX_BYTES = 1 << 29  # 512 MiB
# Memory allowed for the O(N_A³) spectral weights (six arrays) — far beyond any practical training set.
SPECTRAL_MAX_BYTES = 1 << 31  # 2 GiB
# Relative size below which an eigenvalue of H̃ counts as zero (H̃ singular).
SINGULAR_RTOL = 1e-12


@dataclasses.dataclass(frozen=True)
class AlgorithmProjectors:
    """The six algorithm projectors of one algorithm, in the eigenbasis of H̃ (see the module docstring).

    eigvals (M,), eigvecs (M, M) (columns): H̃ = V diag(λ) Vᵀ.
    Z_A, Z_B : (M, M) spectral weights ζ(p, q) with Z^{1234} = Σ V_{1p}V_{2q}V_{3p}V_{4q} ζ(p, q).
    Z_IA … Z_IIB : (M, M, M) weights ζ(p, q, r) with Z^{123456} = Σ V_{1p}V_{2q}V_{3r}V_{4p}V_{5q}V_{6r} ζ.
    max_stable_eta : 2/λ_max(H̃).
    """

    algorithm: str
    eta: float | None
    eigvals: np.ndarray
    eigvecs: np.ndarray
    Z_A: np.ndarray
    Z_B: np.ndarray
    Z_IA: np.ndarray
    Z_IB: np.ndarray
    Z_IIA: np.ndarray
    Z_IIB: np.ndarray
    max_stable_eta: float

    def dense(self, name: str) -> np.ndarray:
        """The full tensor Z^{α̃1…} (N_A⁴ or N_A⁶ entries) from its spectral weights."""
        if name not in PROJECTOR_NAMES:
            raise DeepEFTInputError(f"name must be one of {PROJECTOR_NAMES}, got {name!r}.")
        V = self.eigvecs
        w = getattr(self, name)
        if w.ndim == 2:
            return np.einsum("ap,bq,cp,dq,pq->abcd", V, V, V, V, w, optimize=True)
        _check_dense_size(V.shape[0])
        return np.einsum("ap,bq,cr,dp,eq,fr,pqr->abcdef", V, V, V, V, V, V, w, optimize=True)


def _check_algorithm(algorithm: str) -> str:
    if algorithm not in ALGORITHMS:
        raise DeepEFTInputError(
            f"algorithm must be one of {ALGORITHMS} ('gd': many steps of gradient descent (∞.142)–(∞.147), "
            f"'ode': its η → 0 limit (∞.149)–(∞.151), 'two_step': giant leap + small step (∞.148)), got {algorithm!r}."
        )
    return algorithm


def _check_dense_size(M: int) -> None:
    need = 8 * M**6
    if need > DENSE_MAX_BYTES:
        raise DeepEFTInputError(
            f"the dense six-index tensors (X_III, Z_I*, Z_II*) for N_A = {M} training outputs need "
            f"{need / 2**30:.2f} GiB (limit {DENSE_MAX_BYTES / 2**30:.2f} GiB, N_A ≤ {int((DENSE_MAX_BYTES / 8) ** (1 / 6))}); "
            "use the spectral path (algorithm_projectors, the default everywhere) or fewer training inputs."
        )


def _check_spectral_size(M: int) -> None:
    need = 6 * 8 * M**3
    if need > SPECTRAL_MAX_BYTES:
        raise DeepEFTInputError(
            f"N_A = {M} training outputs (× output components) is too many: the cubic algorithm projectors need "
            f"{need / 2**30:.1f} GiB (limit {SPECTRAL_MAX_BYTES / 2**30:.0f} GiB, N_A ≤ "
            f"{int((SPECTRAL_MAX_BYTES / 48) ** (1 / 3))}); use fewer training inputs."
        )


def train_block(H_train, name: str = "H_train") -> np.ndarray:
    """Validate the training block H̃ (M, M): finite, symmetric (to rounding)."""
    try:
        H = np.asarray(H_train, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DeepEFTInputError(f"{name} must be a numeric (N_A, N_A) array: {exc}") from None
    if H.ndim != 2 or H.shape[0] != H.shape[1] or H.shape[0] == 0:
        raise DeepEFTInputError(f"{name} must be a square (N_A, N_A) array with N_A ≥ 1, got shape {H.shape}.")
    if not np.all(np.isfinite(H)):
        raise DeepEFTInputError(f"{name} contains NaN or inf; check the NTK computation and the inputs.")
    scale = max(float(np.max(np.abs(H))), 1e-300)
    if np.max(np.abs(H - H.T)) > 1e-8 * scale:
        raise DeepEFTInputError(
            f"{name} must be symmetric (an NTK block H̃_{{α̃1α̃2}}); max |H − Hᵀ| = {np.max(np.abs(H - H.T)):.3g}."
        )
    return 0.5 * (H + H.T)


def spectrum(H_train, name: str = "H_train") -> tuple[np.ndarray, np.ndarray]:
    """Eigendecomposition of H̃ with an error when H̃ is not positive definite."""
    H = train_block(H_train, name)
    lam, V = np.linalg.eigh(H)
    if lam[-1] <= 0 or lam[0] <= SINGULAR_RTOL * lam[-1]:
        raise DeepEFTInputError(
            f"{name} must be positive definite (the solution inverts H̃), smallest/largest eigenvalue "
            f"{lam[0]:.3g}/{lam[-1]:.3g}; remove duplicate training inputs or check λ_b, λ_W > 0."
        )
    return lam, V


def check_eta(eta, lam_max: float, algorithm: str) -> float | None:
    """η for 'gd' must satisfy 0 < ηλ_max(H̃) < 2 (convergence of (I − ηH̃)^t, footnote 16)."""
    if algorithm != "gd":
        return None
    if eta is None:
        raise DeepEFTInputError("algorithm='gd' needs the global learning rate eta (> 0); for η → 0 use algorithm='ode'.")
    try:
        e = float(eta)
    except (TypeError, ValueError):
        raise DeepEFTInputError(f"eta must be a positive number, got {eta!r}.") from None
    limit = 2.0 / lam_max
    if not np.isfinite(e) or e <= 0 or e >= limit:
        raise DeepEFTInputError(
            f"eta = {e!r} is outside 0 < η λ_max(H̃) < 2 (λ_max = {lam_max:.6g}): gradient descent with constant η "
            f"does not converge; the largest stable learning rate is 2/λ_max = {limit:.6g} (choose η below it, "
            "e.g. 1/λ_max)."
        )
    return e


def _weights(lam: np.ndarray, eta: float, algorithm: str) -> dict[str, np.ndarray]:
    """The spectral weights ζ of the six projectors (module docstring)."""
    h = 1.0 / lam
    hp, hq, hr = h[:, None, None], h[None, :, None], h[None, None, :]
    if algorithm == "two_step":  # (∞.148)
        M = lam.size
        zero2, zero3 = np.zeros((M, M)), np.zeros((M, M, M))
        return {
            "Z_A": zero2,
            "Z_B": 0.5 * np.outer(h, h),
            "Z_IA": zero3,
            "Z_IB": -(hp * hq * hr) / 6.0,
            "Z_IIA": zero3,
            "Z_IIB": zero3,
        }
    lp, lq, lr = lam[:, None, None], lam[None, :, None], lam[None, None, :]
    x2 = 1.0 / (lam[:, None] + lam[None, :] - eta * np.outer(lam, lam))  # (∞.107)
    x3 = 1.0 / (lp + lq + lr - eta * (lp * lq + lp * lr + lq * lr) + eta**2 * lp * lq * lr)  # (∞.110)
    x2pq, x2qr = x2[:, :, None], x2[None, :, :]
    y1 = hr * (x2pq - x3)  # (∞.135)
    y2 = np.outer(h, h) - h[None, :] * x2  # (∞.138)
    y3 = hp * hq * hr - hq * hr * x2pq - hp * hr * x2qr + hr * x2qr * x3  # (∞.139), four terms
    y4 = x2qr * (hp - x3)  # (∞.140)
    y3_213 = np.transpose(y3, (1, 0, 2))  # Y3^{α2α1α3α5α4α6}
    y3_132 = np.transpose(y3, (0, 2, 1))  # Y3^{α1α3α2α4α6α5}
    return {
        "Z_A": y2,  # (∞.142)
        "Z_B": y2 + 0.5 * eta * x2,  # (∞.143)
        "Z_IA": -y3 - 0.5 * eta * y4,  # (∞.144)
        "Z_IB": -y3 - 0.5 * eta * y4 - 0.5 * eta * y1 - eta**2 / 6.0 * x3,  # (∞.145)
        "Z_IIA": -y3,  # (∞.146)
        "Z_IIB": -y3 - y3_213 - y3_132 - eta * y4 - eta * y1,  # (∞.147)
    }


def algorithm_projectors(H_train, eta=None, algorithm: str = "gd") -> AlgorithmProjectors:
    """The algorithm projectors Z_A … Z_IIB of (∞.142)–(∞.151) in the eigenbasis of H̃ (O(N_A³) memory).

    H_train : (N_A, N_A) training block H̃ of the NTK (mean, or one network's own Ĥ on the training set).
    eta : global learning rate, required for ``algorithm="gd"`` with 0 < ηλ_max(H̃) < 2; ignored otherwise.
    algorithm : "gd" (many steps of GD, constant η), "ode" (η → 0), "two_step" (∞.148).
    """
    algorithm = _check_algorithm(algorithm)
    lam, V = spectrum(H_train)
    _check_spectral_size(lam.size)
    e = check_eta(eta, float(lam[-1]), algorithm)
    w = _weights(lam, 0.0 if e is None else e, algorithm)
    return AlgorithmProjectors(algorithm=algorithm, eta=e, eigvals=lam, eigvecs=V, max_stable_eta=2.0 / lam[-1], **w)


# ---------------------------------------------------------------------------------------------------------
# Dense reference path: the book's index expressions with explicit N_A² × N_A² and N_A³ × N_A³ inverses.


def inverting_tensors(H_train, eta: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X_I, X_II, X_III) by dense inversion of the operators in (∞.107)/(∞.110) ((∞.152)/(∞.153) at η = 0)."""
    H = train_block(H_train)
    M = H.shape[0]
    _check_dense_size(M)
    eye = np.eye(M)
    X_I = np.linalg.inv(H)
    # operator O_{(34),(56)} = H35 δ46 + δ35 H46 − η H35 H46; X_II O = 1 → X_II = O⁻¹ (as matrices)
    O2 = np.einsum("ac,bd->abcd", H, eye) + np.einsum("ac,bd->abcd", eye, H) - eta * np.einsum("ac,bd->abcd", H, H)
    X_II = np.linalg.inv(O2.reshape(M * M, M * M)).reshape(M, M, M, M)
    k = lambda a, b, c: np.einsum("ad,be,cf->abcdef", a, b, c)  # noqa: E731 - local Kronecker product helper
    O3 = (
        k(H, eye, eye)
        + k(eye, H, eye)
        + k(eye, eye, H)
        - eta * (k(H, H, eye) + k(H, eye, H) + k(eye, H, H))
        + eta**2 * k(H, H, H)
    )
    X_III = np.linalg.inv(O3.reshape(M**3, M**3)).reshape((M,) * 6)
    return X_I, X_II, X_III


def dense_projectors(H_train, eta=None, algorithm: str = "gd") -> dict[str, np.ndarray]:
    """The six projectors as full tensors from the book's index expressions (reference path; N_A small)."""
    algorithm = _check_algorithm(algorithm)
    lam, _ = spectrum(H_train)
    e = check_eta(eta, float(lam[-1]), algorithm)
    e = 0.0 if e is None else e
    Hi, X2, X3 = inverting_tensors(H_train, e)
    if algorithm == "two_step":
        M = Hi.shape[0]
        return {
            "Z_A": np.zeros((M,) * 4),
            "Z_B": 0.5 * np.einsum("ac,bd->abcd", Hi, Hi),
            "Z_IA": np.zeros((M,) * 6),
            "Z_IB": -np.einsum("ad,be,cf->abcdef", Hi, Hi, Hi) / 6.0,
            "Z_IIA": np.zeros((M,) * 6),
            "Z_IIB": np.zeros((M,) * 6),
        }
    es = np.einsum
    Y1 = es("abde,cf->abcdef", X2, Hi) - es("cg,abgdef->abcdef", Hi, X3)
    Y2 = es("ac,bd->abcd", Hi, Hi) - es("be,aecd->abcd", Hi, X2)
    Y3 = (
        es("ad,be,cf->abcdef", Hi, Hi, Hi)
        - es("bg,agde,cf->abcdef", Hi, X2, Hi)
        - es("ad,cg,bgef->abcdef", Hi, Hi, X2)
        + es("ci,bigh,aghdef->abcdef", Hi, X2, X3, optimize=True)
    )
    Y4 = es("ad,bcef->abcdef", Hi, X2) - es("bcgh,aghdef->abcdef", X2, X3, optimize=True)
    Y3_213 = np.transpose(Y3, (1, 0, 2, 4, 3, 5))  # T^{a1..a6} = Y3^{a2 a1 a3 a5 a4 a6}
    Y3_132 = np.transpose(Y3, (0, 2, 1, 3, 5, 4))  # T^{a1..a6} = Y3^{a1 a3 a2 a4 a6 a5}
    return {
        "Z_A": Y2,
        "Z_B": Y2 + 0.5 * e * X2,
        "Z_IA": -Y3 - 0.5 * e * Y4,
        "Z_IB": -Y3 - 0.5 * e * Y4 - 0.5 * e * Y1 - e**2 / 6.0 * X3,
        "Z_IIA": -Y3,
        "Z_IIB": -Y3 - Y3_213 - Y3_132 - e * Y4 - e * Y1,
    }


def single_input_projectors(H: float, eta=None, algorithm: str = "gd") -> dict[str, float]:
    """Closed single-input forms (∞.163)–(∞.164) and [derived] finite-η ddNTK projectors (module docstring)."""
    algorithm = _check_algorithm(algorithm)
    H = float(H)
    if not np.isfinite(H) or H <= 0:
        raise DeepEFTInputError(f"the single-input NTK H̃ must be a positive number, got {H!r}.")
    if algorithm == "two_step":
        return {"Z_A": 0.0, "Z_B": 0.5 / H**2, "Z_IA": 0.0, "Z_IB": -1.0 / (6 * H**3), "Z_IIA": 0.0, "Z_IIB": 0.0}
    e = check_eta(eta, H, algorithm) or 0.0
    u = 1.0 - e * H
    d2, d3 = 2.0 - e * H, 3.0 - 3.0 * e * H + (e * H) ** 2
    return {
        "Z_A": u / (H**2 * d2),
        "Z_B": 0.5 / H**2,
        "Z_IA": -u * (2 - 2 * e * H + (e * H) ** 2) / (2 * H**3 * d2 * d3),
        "Z_IB": -1.0 / (6 * H**3),
        "Z_IIA": -(u**3) / (H**3 * d2 * d3),
        "Z_IIB": -u / (H**3 * d2),
    }
