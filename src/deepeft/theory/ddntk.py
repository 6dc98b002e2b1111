"""The ddNTK means R, S, T, U at finite width (PDLT §∞.1, §∞.3), for any number of inputs, per-layer widths,
C's and λ's, and any smooth activation.

Decompositions (∞.11)/(∞.171), (∞.12)/(∞.173) (prefactor 1/n_{ℓ−1}):

    E[dd_IĤ_{i0i1i2i3;δ0δ1δ2δ3}] = (1/n_{ℓ−1})[δ_{i0i1}δ_{i2i3}R_{δ0δ1δ2δ3} + δ_{i0i2}δ_{i3i1}R_{δ0δ2δ3δ1}
                                                + δ_{i0i3}δ_{i1i2}R_{δ0δ3δ1δ2}]
    E[dd_IIĤ_{i1i2i3i4;δ1δ2δ3δ4}] = (1/n_{ℓ−1})[δ_{i1i2}δ_{i3i4}S_{δ1δ2δ3δ4} + δ_{i1i3}δ_{i4i2}T_{δ1δ3δ4δ2}
                                                 + δ_{i1i4}δ_{i2i3}U_{δ1δ4δ2δ3}]

Recursions (∞.172), (∞.174)–(∞.176), layer ℓ → ℓ + 1 (C = C_W, λ = λ_W of layer ℓ + 1; ⟨·⟩ over N(0, K^{(ℓ)});
r = n_ℓ/n_{ℓ−1}; H = Θ^{(ℓ)}; B, F from :func:`deepeft.ntk_fluctuations`, P, Q from :func:`deepeft.dntk`, all of
layer ℓ; every tensor vanishes at ℓ = 1). With α_{ab} ≡ λ⟨σ″aσb⟩ + C H_ab⟨σ‴aσ′b⟩ and β_{ab} ≡ λ⟨σ′aσ′b⟩ + C H_ab⟨σ″aσ″b⟩:

    R⁺_{0123} = λC⟨σ″0σ1σ′2σ′3⟩H02H03 + C²⟨σ‴0σ′1σ′2σ′3⟩H01H02H03
              + r C⟨σ′2σ′3⟩[α01(B_{0023} + P_{0230}) + β01 P_{0231}] + r C²⟨σ′0σ′1⟩⟨σ′2σ′3⟩R_{0123}                  (∞.172)
    S⁺_{1234} = Cλ⟨σ′1σ′2σ′3σ′4⟩H13H24 + C²⟨σ″1σ″2σ′3σ′4⟩H12H13H24 + r C⟨σ′3σ′4⟩β12 B_{1234}
              + r C²⟨σ′1σ′2⟩⟨σ′3σ′4⟩S_{1234}                                                                     (∞.174)
    T⁺_{1342} = λ²⟨σ′1σ′2σ3σ4⟩H12 + Cλ(⟨σ′1σ″2σ3σ′4⟩H12H24 + ⟨σ″1σ′2σ′3σ4⟩H12H13) + C²⟨σ″1σ″2σ′3σ′4⟩H12H13H24
              + r Σ_{γε} N13,γ N24,ε F_{γ1ε2} + r C⟨σ′1σ′3⟩(α24 Q_{1322} + β24 Q_{1324})
              + r C⟨σ′2σ′4⟩(α13 Q_{2411} + β13 Q_{2413}) + r C²⟨σ′1σ′3⟩⟨σ′2σ′4⟩T_{1342}                           (∞.175)
    U⁺_{1423} = C²⟨σ″1σ″2σ′3σ′4⟩H12H13H24 + r C²⟨σ′1σ′4⟩⟨σ′2σ′3⟩U_{1423}                                          (∞.176)

where N_{ab,γ} = α_ab δ_{γa} + β_ab δ_{γb} = λM^{σ′σ}_{ab,γ} + C H_ab M^{σ″σ′}_{ab,γ}: the book's raised-index sums
Σ⟨z_{δ5}σ′1σ3⟩G^{δ5δ7}… are Jacobians of Gaussian expectations (Stein's lemma, the (8.56) identity;
:func:`deepeft.theory.dntk.pair_contract`), and the book's fourteen T terms group into the three lines above
(the two F-cross terms are equal by F's symmetry F_{γ1ε2} = F_{ε2γ1}). These are the book's forms term by term;
they reduce to the digest's single-input (∞.14)–(∞.17) (checked: tests/theory/test_ddntk.py) and give the deep
linear exact (∞.47)–(∞.48).

Layout (as :func:`deepeft.four_point_vertex`): arrays (L, N, N, N, N), layer ℓ at index ℓ − 1, the indices in the
order the book prints the subscripts: R[ℓ−1, δ0, δ1, δ2, δ3] = R_{δ0δ1δ2δ3}, S[ℓ−1, δ1, δ2, δ3, δ4] = S_{δ1δ2δ3δ4},
T[ℓ−1, δ1, δ3, δ4, δ2] = T_{δ1δ3δ4δ2}, U[ℓ−1, δ1, δ4, δ2, δ3] = U_{δ1δ4δ2δ3}.
Symmetries: dd_IĤ is symmetric in its last three (neural, sample) pairs, so R_{δ0δ1δ2δ3} = R_{δ0δ1δ3δ2};
dd_IIĤ under the joint swap (1 ↔ 2, 3 ↔ 4) (∞.7 errata), so S[a,b,c,d] = S[b,a,d,c], T[a,b,c,d] = T[d,c,b,a],
U[a,b,c,d] = U[c,d,a,b].

Kinked activations are refused (:func:`deepeft.require_smooth`): ⟨σ″σ″⟩ diverges for them.

References: Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory*, arXiv:2106.10165, §∞.1, §∞.3.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..activations import require_smooth
from ..network import MLP, check_net
from .dntk import DNTK, X4, KernelViews, dntk_step, pair_contract, two_point_table
from .ntk_fluctuations import NTKFluctuations, four_point_table, ntk_fluctuations
from .vertex import unique_rows

__all__ = ["DDNTK", "ddntk", "ddntk_step"]

Y4 = (3, 1, 1, 1)  # ⟨σ‴σ′σ′σ′⟩
Z4 = (2, 2, 1, 1)  # ⟨σ″σ″σ′σ′⟩
P4 = (1, 1, 1, 1)  # ⟨σ′σ′σ′σ′⟩
M4 = (1, 1, 0, 0)  # ⟨σ′σ′σσ⟩
PATTERNS = (X4, Y4, Z4, P4, M4)
TWO_POINT = ((1, 1), (2, 0), (3, 1), (2, 2))


def ddntk_step(f4: dict, tp: dict, H, B, F, P, Q, R, S, Tn, Un, *, C_W, lambda_W, ratio, first: bool = False):
    """One layer ℓ → ℓ + 1 of (∞.172), (∞.174)–(∞.176): returns (R⁺, S⁺, T⁺, U⁺), T and U in the natural
    order of their arguments (T⁺[δ1, δ2, δ3, δ4] = T⁺_{δ1δ3δ4δ2}, U⁺[δ1, δ2, δ3, δ4] = U⁺_{δ1δ4δ2δ3}).

    ``f4``: four-point tables {pattern: (N,)*4} of :data:`PATTERNS`, ``tp``: two-point tables of :data:`TWO_POINT`,
    both at K^{(ℓ)}; ``H`` = Θ^{(ℓ)}; ``B``, ``F``, ``P``, ``Q``, ``R``, ``S`` (book order) and ``Tn``, ``Un`` (natural
    order) at layer ℓ; ``ratio`` = n_ℓ/n_{ℓ−1}; ``first``: ℓ = 1 (the finite-width tensors of layer ℓ vanish).
    """
    o = np.newaxis
    C, lam, r = C_W, lambda_W, ratio
    x4, y4, z4, p4, m4 = (f4[p] for p in PATTERNS)
    H12, H13, H24 = H[:, :, o, o], H[:, o, :, o], H[o, :, o, :]
    H03 = H[:, o, o, :]
    zHHH = C * C * z4 * H12 * H13 * H24  # C²⟨σ″1σ″2σ′3σ′4⟩H12H13H24
    R_new = lam * C * np.einsum("iklj->ijkl", x4) * H13 * H03 + C * C * y4 * H12 * H13 * H03
    S_new = C * lam * p4 * H13 * H24 + zHHH
    T_new = lam * lam * m4 * H12 + C * lam * (np.einsum("jilk->ijkl", x4) * H12 * H24 + x4 * H12 * H13) + zHHH
    U_new = zHHH.copy()
    if first:
        return R_new, S_new, T_new, U_new
    s11 = tp[(1, 1)]
    alpha = lam * tp[(2, 0)] + C * H * tp[(3, 1)]
    beta = lam * s11 + C * H * tp[(2, 2)]
    rC, rC2 = r * C, r * C * C
    # (∞.172)
    BPd = np.einsum("iikl->ikl", B) + np.einsum("ikli->ikl", P)  # B_{0023} + P_{0230}
    R_new += rC * s11[o, o] * (alpha[:, :, o, o] * BPd[:, o] + beta[:, :, o, o] * np.einsum("iklj->ijkl", P))
    R_new += rC2 * s11[:, :, o, o] * s11[o, o] * R
    # (∞.174)
    S_new += rC * s11[o, o] * beta[:, :, o, o] * B + rC2 * s11[:, :, o, o] * s11[o, o] * S
    # (∞.175): pairs (1,3), (2,4) in natural order (i, j, k, l) = (δ1, δ2, δ3, δ4)
    s13, s24 = s11[:, o, :, o], s11[o, :, o, :]
    a13, b13, a24, b24 = alpha[:, o, :, o], beta[:, o, :, o], alpha[o, :, o, :], beta[o, :, o, :]
    T_new += r * pair_contract((alpha, beta), (alpha, beta), F).transpose(0, 2, 1, 3)
    Q1322 = np.einsum("ikjj->ijk", Q)[..., o]
    Q2411 = np.einsum("jlii->ijl", Q)[:, :, o, :]
    T_new += rC * s13 * (a24 * Q1322 + b24 * np.einsum("ikjl->ijkl", Q))
    T_new += rC * s24 * (a13 * Q2411 + b13 * np.einsum("jlik->ijkl", Q))
    T_new += rC2 * s13 * s24 * Tn
    # (∞.176)
    U_new += rC2 * s11[:, o, o, :] * s11[o, :, :, o] * Un
    return R_new, S_new, T_new, U_new


@dataclasses.dataclass(frozen=True, eq=False)
class DDNTK(KernelViews):
    """Per-layer R, S, T, U (∞.171), (∞.173) and P, Q (11.45), each (L, N, N, N, N), layer ℓ at index ℓ − 1
    (module doc), with the NTK statistics they were built from (``ntk``) and ``n_prev`` = n_{ℓ−1}: the means are
    the tensors divided by it."""

    net: MLP
    X: np.ndarray
    R: np.ndarray
    S: np.ndarray
    T: np.ndarray
    U: np.ndarray
    P: np.ndarray
    Q: np.ndarray
    ntk: NTKFluctuations
    n_prev: np.ndarray

    @property
    def dntk(self) -> DNTK:
        return DNTK(net=self.net, X=self.X, P=self.P, Q=self.Q, ntk=self.ntk, n_prev=self.n_prev)


def ddntk(net: MLP, X, *, resolution: float = 1.0) -> DDNTK:
    """R, S, T, U (∞.172), (∞.174)–(∞.176) — and P, Q (11.49), (11.52) on the way — for ℓ = 1..L.

    ``net``: a smooth-activation :class:`~deepeft.MLP`; ``X`` (N, n_0). Kinked activations are refused with
    :class:`~deepeft.DeepEFTInputError` (⟨σ″σ″⟩ diverges). K, Θ, B, F come from :func:`deepeft.ntk_fluctuations`.
    Cost per layer: one batched ≤ 4-variable integral per index multiset (C(N+3, 4)) with the 29 placements of
    ⟨σ″σ′σ′σ⟩, ⟨σ‴σ′σ′σ′⟩, ⟨σ″σ″σ′σ′⟩, ⟨σ′σ′σ′σ′⟩, ⟨σ′σ′σσ⟩, plus O(N⁴) tensor algebra.
    """
    require_smooth(check_net(net).activation, "The ddNTK statistics R, S, T, U")
    X = net.check_inputs(X, "X")
    Xu, inv = unique_rows(X)
    fl = ntk_fluctuations(net, Xu, resolution=resolution)
    L, N = net.L, Xu.shape[0]
    n = np.asarray(net.n, dtype=np.float64)
    out = {k: np.zeros((L, N, N, N, N)) for k in "PQRSTU"}
    act = net.activation
    for l in range(1, L):  # step ℓ = l → l + 1 (index l − 1 → l)
        K, H = fl.K[l - 1], fl.Theta[l - 1]
        # ⟨σ″σ′σ′σ⟩ by the same call as de.dntk (its compiled programs are shared), the rest in one more
        f4 = four_point_table(act, K, (X4,), resolution=resolution)
        f4.update(four_point_table(act, K, PATTERNS[1:], resolution=resolution))
        tp = two_point_table(act, K, TWO_POINT, resolution=resolution)
        kw = dict(C_W=net.C_W[l], lambda_W=net.lambda_W[l], ratio=n[l] / n[l - 1], first=(l == 1))
        prev = {k: out[k][l - 1] for k in "PQRSTU"}
        out["P"][l], out["Q"][l] = dntk_step(f4[X4], tp, H, fl.B[l - 1], fl.F[l - 1], fl.F[l], prev["P"], prev["Q"], **kw)
        out["R"][l], out["S"][l], out["T"][l], out["U"][l] = ddntk_step(
            f4, tp, H, fl.B[l - 1], fl.F[l - 1], prev["P"], prev["Q"], prev["R"], prev["S"], prev["T"], prev["U"], **kw
        )
    sel = (slice(None),) + np.ix_(inv, inv, inv, inv)
    T = np.einsum("...adbc->...abcd", out["T"])  # T[δ1, δ3, δ4, δ2] = T_{δ1δ3δ4δ2}
    U = np.einsum("...acdb->...abcd", out["U"])  # U[δ1, δ4, δ2, δ3] = U_{δ1δ4δ2δ3}
    return DDNTK(
        net=net,
        X=X,
        R=out["R"][sel],
        S=out["S"][sel],
        T=T[sel],
        U=U[sel],
        P=out["P"][sel],
        Q=out["Q"][sel],
        ntk=fl.on_inputs(X, inv),
        n_prev=n[:-1].copy(),
    )
