"""The dNTK–preactivation cross correlations P, Q at finite width (PDLT §11.2), for any number of inputs,
per-layer widths, C's and λ's, and any smooth activation.

Decomposition (11.45) (prefactor 1/n_{ℓ−1}):

    E[dĤ_{i0i1i2;δ0δ1δ2} z_{i3;δ3}] = (1/n_{ℓ−1})[δ_{i0i3}δ_{i1i2} P_{δ0δ1δ2δ3} + δ_{i0i1}δ_{i2i3} Q_{δ0δ1δ2δ3}
                                               + δ_{i0i2}δ_{i1i3} Q_{δ0δ2δ1δ3}]

Recursions, layer ℓ → ℓ + 1 (C_W, λ_W of layer ℓ + 1; ⟨·⟩ over N(0, K^{(ℓ)}); r = n_ℓ/n_{ℓ−1}; H = Θ^{(ℓ)};
B, F of layer ℓ and F⁺ of layer ℓ + 1 from :func:`deepeft.ntk_fluctuations`; both tensors vanish at ℓ = 1):

    P⁺_{0123} = C_W²⟨σ″0σ′1σ′2σ3⟩H01H02 + r C_W²⟨σ′1σ′2⟩[⟨σ″0σ3⟩(P_{0120} + B_{0012}) + ⟨σ′0σ′3⟩P_{0123}]   (11.49)
    Q⁺_{0123} = C_W²⟨σ″0σ′1σ′2σ3⟩H01H02 + (λ_W/C_W)F⁺_{1032} + r C_W²⟨σ′0σ′1⟩[⟨σ″2σ3⟩Q_{0122} + ⟨σ′2σ′3⟩Q_{0123}]
              + r C_W² H01 Σ_{γε} M^{σ″σ′}_{01,γ} M^{σ′σ}_{23,ε} F_{γ0ε2}                                      (11.52)

with M^{fg}_{ab,γ} ≡ Σ_β⟨z_β f(z_a)g(z_b)⟩G^{βγ} = δ_{γa}⟨f′_a g_b⟩ + δ_{γb}⟨f_a g′_b⟩ (Stein's lemma, the (8.56)
identity: the raised-index contraction is a derivative of a Gaussian expectation). These are the digest's
forms (``shared/spec/pdlt-ch9-11.md``); the printed (11.49) has σ′_{δ3} for σ_{δ3} and ⟨σ″0σ″3⟩ for ⟨σ″0σ3⟩
in the B term, and (11.50) σ′_{δ3} for σ_{δ3} — a re-derivation from (11.43)–(11.48) and (11.50) with the
(8.37)/(8.82) decompositions gives the forms above, which reduce to (11.55)–(11.56) for one input and to
(11.31)–(11.32) at ℓ = 2 (tests/theory/test_dntk.py).

Layout (as :func:`deepeft.ntk_fluctuations`): arrays (L, N, N, N, N), layer ℓ at index ℓ − 1, the indices in the
order the book prints the subscripts of (11.45): P[ℓ−1, δ0, δ1, δ2, δ3] = P_{δ0δ1δ2δ3}, Q likewise.
Symmetry: the dNTK is symmetric under (i1, δ1) ↔ (i2, δ2) only, so P_{δ0δ1δ2δ3} = P_{δ0δ2δ1δ3}; Q has none.

Kinked activations (ReLU, leaky ReLU, perceptron, …) are refused: σ″ is a delta function at the kink and the
forward equation (11.21) multiplies it by σ′ of the same preactivation (δ(z)θ(z), no unique value), and the
ddNTKs need ⟨σ″σ″⟩, which diverges — the finite-width expansion in the learning rate breaks down.

References: Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory*, arXiv:2106.10165, §11.2.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..activations import require_smooth
from ..gaussian import engine
from ..network import MLP, check_net
from .ntk_fluctuations import NTKFluctuations, four_point_table, ntk_fluctuations
from .vertex import unique_rows

__all__ = [
    "DNTK",
    "KernelViews",
    "dntk",
    "dntk_step",
    "pair_contract",
    "stein_coefficients",
    "two_point_table",
]

X4 = (2, 1, 1, 0)  # ⟨σ″0 σ′1 σ′2 σ3⟩, the dNTK four-point function of (11.31)


def two_point_table(act, K, pairs, *, resolution: float = 1.0) -> dict:
    """{(p, q): (N, N)}: T[a, b] = ⟨σ^{(p)}(z_a)σ^{(q)}(z_b)⟩_K (one batched engine call for the diagonal, one for
    the off-diagonal pairs)."""
    K = np.asarray(K, dtype=np.float64)
    N = K.shape[0]
    pairs = tuple(tuple(int(d) for d in pq) for pq in pairs)
    d = np.diagonal(K).copy()
    out = {pq: np.empty((N, N)) for pq in pairs}
    diag = engine.batched_expect(act, tuple(((pq, 0),) for pq in pairs), d[:, None, None], resolution=resolution)
    ii = np.arange(N)
    for t, pq in enumerate(pairs):
        out[pq][ii, ii] = diag[:, t]
    ia, ib = np.triu_indices(N, 1)
    if ia.size:
        S = np.empty((ia.size, 2, 2))
        S[:, 0, 0], S[:, 1, 1], S[:, 0, 1] = d[ia], d[ib], K[ia, ib]
        S[:, 1, 0] = S[:, 0, 1]
        terms = tuple((((p,), 0), ((q,), 0)) for p, q in pairs) + tuple((((q,), 0), ((p,), 0)) for p, q in pairs)
        mom = engine.batched_expect(act, terms, S, resolution=resolution)
        for t, pq in enumerate(pairs):
            out[pq][ia, ib] = mom[:, t]
            out[pq][ib, ia] = mom[:, len(pairs) + t]
    return out


def pair_contract(c1: tuple, c2: tuple, F: np.ndarray) -> np.ndarray:
    """Σ_{γε} N1_{ij,γ} N2_{kl,ε} F_{γiεk} as an (N, N, N, N) array over (i, j, k, l), for pair coefficients
    N_{ab,γ} = c[0][a, b] δ_{γa} + c[1][a, b] δ_{γb} (``c1``, ``c2``: two (N, N) arrays each).

    With f = σ^{(p)}, g = σ^{(q)}, Stein's lemma (the (8.56) identity) gives the raised-index contraction
    M^{fg}_{ab,γ} = Σ_β⟨z_β f(z_a)g(z_b)⟩G^{βγ} = δ_{γa}⟨f′_a g_b⟩ + δ_{γb}⟨f_a g′_b⟩, i.e. c = (⟨σ^{(p+1)}σ^{(q)}⟩,
    ⟨σ^{(p)}σ^{(q+1)}⟩) (:func:`stein_coefficients`). F in the :func:`deepeft.ntk_fluctuations` layout (z indices
    at positions 0, 2; NTK indices at 1, 3).
    """
    (a1, b1), (a2, b2) = c1, c2
    out = np.einsum("ij,kl,ik->ijkl", a1, a2, np.einsum("iikk->ik", F))
    out += np.einsum("ij,kl,ilk->ijkl", a1, b2, np.einsum("iilk->ilk", F))
    out += np.einsum("ij,kl,jik->ijkl", b1, a2, np.einsum("jikk->jik", F))
    out += np.einsum("ij,kl,jilk->ijkl", b1, b2, F)
    return out


def stein_coefficients(tp: dict, p: int, q: int) -> tuple:
    """(⟨σ^{(p+1)}_a σ^{(q)}_b⟩, ⟨σ^{(p)}_a σ^{(q+1)}_b⟩): the coefficients of M^{σ^{(p)}σ^{(q)}} (:func:`pair_contract`)
    from the two-point tables ``tp`` of :func:`two_point_table`."""
    return tp[(p + 1, q)], tp[(p, q + 1)]


def dntk_step(x4, tp, H, B, F, F_next, P, Q, *, C_W, lambda_W, ratio, first: bool = False):
    """One layer ℓ → ℓ + 1 of (11.49), (11.52): returns (P⁺, Q⁺).

    ``x4`` = ⟨σ″0σ′1σ′2σ3⟩ (N, N, N, N) and ``tp`` (two-point tables (1,1), (2,0), (3,1), (2,2)) at K^{(ℓ)};
    ``H`` = Θ^{(ℓ)}; ``B``, ``F``, ``P``, ``Q`` at layer ℓ, ``F_next`` = F^{(ℓ+1)} (book index order);
    ``ratio`` = n_ℓ/n_{ℓ−1}; ``first``: ℓ = 1 (the finite-width tensors of layer ℓ vanish).
    """
    o = np.newaxis
    cw2 = C_W * C_W
    base = cw2 * x4 * H[:, :, o, o] * H[:, o, :, o]  # C_W²⟨σ″0σ′1σ′2σ3⟩H01H02
    P_new = base.copy()
    Q_new = base + (lambda_W / C_W) * np.einsum("badc->abcd", F_next)  # (λ_W/C_W) F⁺_{1032}
    if not first:
        s11, s20 = tp[(1, 1)], tp[(2, 0)]
        Pd = np.einsum("abca->abc", P)  # P_{0120}
        B00 = np.einsum("aabc->abc", B)  # B_{0012}
        P_new += ratio * cw2 * s11[o, :, :, o] * (s20[:, o, o, :] * (Pd + B00)[..., o] + s11[:, o, o, :] * P)
        Qd = np.einsum("abcc->abc", Q)  # Q_{0122}
        Q_new += ratio * cw2 * s11[:, :, o, o] * (s20[o, o] * Qd[..., o] + s11[o, o] * Q)
        M21, M10 = stein_coefficients(tp, 2, 1), stein_coefficients(tp, 1, 0)
        Q_new += ratio * cw2 * H[:, :, o, o] * pair_contract(M21, M10, F)
    return P_new, Q_new


class KernelViews:
    """K, Θ (L, N, N) of the NTK statistics ``ntk`` a finite-width result was built from (shared by
    :class:`DNTK` and :class:`deepeft.DDNTK`)."""

    ntk: NTKFluctuations

    @property
    def K(self) -> np.ndarray:
        return self.ntk.K

    @property
    def Theta(self) -> np.ndarray:
        return self.ntk.Theta


@dataclasses.dataclass(frozen=True, eq=False)
class DNTK(KernelViews):
    """Per-layer P, Q (L, N, N, N, N) of (11.45), layer ℓ at index ℓ − 1 (module doc), with the NTK statistics
    they were built from (``ntk``: K, Θ, V, A, B, D, F) and ``n_prev`` = n_{ℓ−1}: the cross correlations are the
    tensors divided by it."""

    net: MLP
    X: np.ndarray
    P: np.ndarray
    Q: np.ndarray
    ntk: NTKFluctuations
    n_prev: np.ndarray


TWO_POINT = ((1, 1), (2, 0), (3, 1), (2, 2))  # pairs ⟨σ^{(p)}σ^{(q)}⟩ the recursions use


def dntk(net: MLP, X, *, resolution: float = 1.0) -> DNTK:
    """P, Q (11.49), (11.52) for ℓ = 1..L (zero at ℓ = 1; (11.31)–(11.32) at ℓ = 2).

    ``net``: a smooth-activation :class:`~deepeft.MLP` (per-layer widths, C_b, C_W, λ_b, λ_W); ``X`` (N, n_0).
    K, Θ, B, F come from :func:`deepeft.ntk_fluctuations`. Cost per layer: one batched ≤ 4-variable integral
    per index multiset (C(N+3, 4)) with the 12 placements of ⟨σ″σ′σ′σ⟩, plus O(N⁴) tensor algebra.
    """
    require_smooth(check_net(net).activation, "The dNTK statistics P, Q")
    X = net.check_inputs(X, "X")
    Xu, inv = unique_rows(X)
    fl = ntk_fluctuations(net, Xu, resolution=resolution)
    L, N = net.L, Xu.shape[0]
    n = np.asarray(net.n, dtype=np.float64)
    P = np.zeros((L, N, N, N, N))
    Q = np.zeros((L, N, N, N, N))
    for l in range(1, L):  # step ℓ = l → l + 1 (index l − 1 → l)
        K = fl.K[l - 1]
        x4 = four_point_table(net.activation, K, (X4,), resolution=resolution)[X4]
        tp = two_point_table(net.activation, K, TWO_POINT, resolution=resolution)
        P[l], Q[l] = dntk_step(
            x4,
            tp,
            fl.Theta[l - 1],
            fl.B[l - 1],
            fl.F[l - 1],
            fl.F[l],
            P[l - 1],
            Q[l - 1],
            C_W=net.C_W[l],
            lambda_W=net.lambda_W[l],
            ratio=n[l] / n[l - 1],
            first=(l == 1),
        )
    sel = (slice(None),) + np.ix_(inv, inv, inv, inv)
    return DNTK(net=net, X=X, P=P[sel], Q=Q[sel], ntk=fl.on_inputs(X, inv), n_prev=n[:-1].copy())
