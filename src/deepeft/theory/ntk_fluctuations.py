"""NTK fluctuations at finite width: the variance tensors A, B and the NTK–preactivation cross
correlations D, F (PDLT §8.2–8.3), for any number of inputs, per-layer widths, C's and λ's.

Decompositions (8.82), (8.37) (prefactor 1/n_{ℓ−1}; ΔĤ = Ĥ − H):

    E[ΔĤ_{i1i2;α1α2} ΔĤ_{i3i4;α3α4}] = (1/n_{ℓ−1})[δ12δ34 A_{(α1α2)(α3α4)} + δ13δ24 B_{α1α3α2α4} + δ14δ23 B_{α1α4α2α3}]
    E[z_{i1;α1} z_{i2;α2} ΔĤ_{i3i4;α3α4}] = (1/n_{ℓ−1})[δ12δ34 D_{α1α2α3α4} + δ13δ24 F_{α1α3α2α4} + δ14δ23 F_{α1α4α2α3}]

Recursions, layer ℓ → ℓ + 1 (C_W, λ_b, λ_W of layer ℓ + 1; ⟨·⟩ over N(0, K^{(ℓ)}); r = n_ℓ/n_{ℓ−1};
H = Θ^{(ℓ)} the NTK mean at leading order (8.63); all four tensors vanish at ℓ = 1):

    Ω̂_{α1α2} = λ_W σα1σα2 + C_W H_{α1α2} σ′α1σ′α2                                                     (8.74)
    D⁺ = C_W[⟨σ1σ2Ω̂34⟩ − ⟨σ1σ2⟩⟨Ω̂34⟩] + r C_W Σ J^σσ_{12,γ} J^Ω_{34,δ} V_{γδ} + r C_W² Σ J^σσ_{12,γ} D_{γ,34} ⟨σ′3σ′4⟩   (8.77)
    F⁺_{α1α3α2α4} = C_W²⟨σ1σ2σ′3σ′4⟩H_{34} + r C_W² Σ_{γ1,γ2} M_{13,γ1} M_{24,γ2} F_{γ1α3γ2α4}                 (8.79)
    B⁺_{α1α3α2α4} = C_W²[⟨σ′1σ′2σ′3σ′4⟩H_{12}H_{34} + r ⟨σ′1σ′3⟩⟨σ′2σ′4⟩ B_{α1α3α2α4}]                         (8.89)
    A⁺ = ⟨Ω̂12Ω̂34⟩ − ⟨Ω̂12⟩⟨Ω̂34⟩ + r Σ J^Ω_{12,γ}J^Ω_{34,δ}V_{γδ} + r C_W²⟨σ′1σ′2⟩⟨σ′3σ′4⟩A
         + r C_W[Σ J^Ω_{12,γ} D_{γ,34}⟨σ′3σ′4⟩ + Σ J^Ω_{34,γ} D_{γ,12}⟨σ′1σ′2⟩]                                      (8.97)

The (8.56) identity turns every raised-index contraction into a derivative of a Gaussian expectation:
½ Σ_β G^{γ1β1}G^{γ2β2}⟨(z_β1z_β2 − G_β1β2)𝒪⟩ = ∂⟨𝒪⟩/∂G_{γ1γ2} ≡ J^𝒪_γ, so (¼)V^{(raised)}⟨(zz − G)X⟩⟨(zz − G)Y⟩
= Σ J^X J^Y V (the vertex's Jacobian form, :func:`deepeft.theory.vertex.jacobian_contract`). For the two-point
maps ⟨σσ⟩, ⟨σ′σ′⟩ the Jacobians are sparse (block parameters K_aa, K_bb, K_ab) and come from moments of the
undifferentiated integrand (:func:`deepeft.theory.vertex.pair_derivatives`), J^Ω = λ_W J^σσ + C_W H ∘ J^σ′σ′.
In (8.79) Σ_β⟨σ_aσ′_b z_β⟩G^{βγ} = M_{ab,γ} is nonzero only for γ ∈ {a, b}: M = Σ_{ab}⁻¹(⟨z_aσ_aσ′_b⟩, ⟨z_bσ_aσ′_b⟩)
with the 2×2 block Σ_{ab} (Gaussian regression) — again no σ″. The four-point expectations ⟨σσσσ⟩,
⟨σσσ′σ′⟩, ⟨σ′σ′σ′σ′⟩ are ≤ 4-variable integrals, computed once per index multiset with all eight
prime placements as terms of one batched call (:func:`deepeft.gaussian.engine.batched_expect`).

Layout (as :func:`deepeft.four_point_vertex`): arrays (L, N, N, N, N), layer ℓ at index ℓ − 1, the
indices in the order the book prints the subscripts: A[ℓ−1, α1, α2, α3, α4] = A_{(α1α2)(α3α4)},
B[ℓ−1, α1, α3, α2, α4] = B_{α1α3α2α4}, D[ℓ−1, α1, α2, α3, α4], F[ℓ−1, α1, α3, α2, α4].

Symmetries: A has V's ((12)↔(21), (34)↔(43), (12)↔(34)); B_{α1α3α2α4} = B_{α2α4α1α3} = B_{α3α1α4α2}; D is
symmetric in α1↔α2 and α3↔α4; F_{α1α3α2α4} = F_{α2α4α1α3} only (digest; the book's footnote says "no
symmetry at all", which (8.79) contradicts for this simultaneous swap).

References: Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory*, arXiv:2106.10165, §8.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import numpy as np

from ..errors import DeepEFTInputError
from ..gaussian.engine import batched_expect
from ..network import MLP, check_net
from .kernel import kernel_and_ntk
from .vertex import jacobian_contract, pair_derivatives, unique_rows, vertex_flow

__all__ = ["NTKFluctuations", "four_point_table", "ntk_fluctuations", "ntk_four_point", "ntk_step", "pair_z_coefficients"]

# Accuracy target of the 4-variable smooth rule (1-D probe proxy, :func:`deepeft.gaussian.batched.smooth_rule`).
# 1e-6 picks 41 trapezoid nodes at K = 1 instead of 57 (1e-8 default): measured 8.6e-10 relative error on the
# eight ⟨σσσ′σ′⟩-type terms for tanh at K = 1 — far below the O(1/n) of the tensors — at ~(41/57)⁴ = 0.27× the cost.
_TOL4 = 1e-6
_PAIR_DET_RTOL = 1e-12  # det S ≤ this × S_aa S_bb: a 2×2 block singular to rounding (|correlation| ≥ 1 − 5e-13)


@functools.lru_cache(maxsize=32)
def _plan(N: int, patterns: tuple):
    """Index plan: unique sorted 4-tuples grouped by equality pattern; for each group the terms (every
    distinct placement of every derivative pattern on the sorted positions), and for every full tuple its
    row and, per pattern, the column of its placement."""
    idx = np.indices((N,) * 4).reshape(4, -1).T
    srt = np.sort(idx, axis=1)
    uniq, inv = np.unique(srt, axis=0, return_inverse=True)
    labels = np.zeros_like(uniq)
    for p in range(1, 4):
        labels[:, p] = labels[:, p - 1] + (uniq[:, p] != uniq[:, p - 1])
    keys = sorted({perm for pat in patterns for perm in itertools.permutations(pat)})
    col = {k: i for i, k in enumerate(keys)}
    order = np.argsort(idx, axis=1, kind="stable")  # original position at each sorted position
    cols = []
    for pat in patterns:
        pa = np.asarray(pat)[order]  # derivative order at each sorted position
        cols.append(np.array([col[tuple(int(d) for d in r)] for r in pa]))
    groups = []
    for lab in sorted({tuple(r) for r in labels}):
        rows = np.nonzero((labels == np.array(lab)).all(axis=1))[0]
        k = lab[-1] + 1
        first = [lab.index(s) for s in range(k)]  # a position carrying each variable
        var = uniq[rows][:, first]  # (R, k) sample index of each variable
        terms = tuple(tuple((tuple(sorted(key[p] for p in range(4) if lab[p] == s)), 0) for s in range(k)) for key in keys)
        groups.append((rows, var, terms))
    return len(uniq), len(keys), inv.ravel(), cols, groups


def four_point_table(act, K, patterns, *, resolution: float = 1.0) -> dict:
    """{pattern: (N, N, N, N)}: T[a, b, c, d] = ⟨σ^{(p0)}(z_a)σ^{(p1)}(z_b)σ^{(p2)}(z_c)σ^{(p3)}(z_d)⟩_K for each
    derivative pattern (p0, p1, p2, p3), e.g. (0, 0, 1, 1) = ⟨σσσ′σ′⟩, (2, 1, 1, 0) = ⟨σ″σ′σ′σ⟩ (index order as
    written).

    One batched engine call (:func:`deepeft.gaussian.engine.batched_expect`) per equality pattern of the sorted
    index tuple, every distinct placement of every pattern as a term (≤ 4 variables; σ″, σ‴ by autodiff).
    """
    K = np.asarray(K, dtype=np.float64)
    N = K.shape[0]
    patterns = tuple(tuple(int(d) for d in p) for p in patterns)
    U, nk, inv, cols, groups = _plan(N, patterns)
    vals = np.empty((U, nk))
    for rows, var, terms in groups:
        sub = K[var[:, :, None], var[:, None, :]]
        tol = _TOL4 if var.shape[1] == 4 else None
        vals[rows] = batched_expect(act, terms, sub, resolution=resolution, tol=tol)
    return {p: vals[inv, c].reshape((N,) * 4) for p, c in zip(patterns, cols, strict=True)}


_NTK4 = ((0, 0, 0, 0), (0, 0, 1, 1), (1, 1, 1, 1))  # ⟨σσσσ⟩, ⟨σσσ′σ′⟩, ⟨σ′σ′σ′σ′⟩


def ntk_four_point(act, K, *, resolution: float = 1.0):
    """(S4, M4, Q4) = (⟨σ1σ2σ3σ4⟩, ⟨σ1σ2σ′3σ′4⟩, ⟨σ′1σ′2σ′3σ′4⟩)_K, each (N, N, N, N), index order as written
    (:func:`four_point_table`: one batched call per equality pattern of the sorted index tuple, the eight
    prime placements as its terms)."""
    t = four_point_table(act, K, _NTK4, resolution=resolution)
    return tuple(t[p] for p in _NTK4)


def pair_z_coefficients(act, K, *, resolution: float = 1.0):
    """(m1, m2), (N, N) each: Σ_β ⟨σ_a σ′_b z_β⟩_K K^{βγ} = m1[a, b] δ_{γa} + m2[a, b] δ_{γb} (a ≠ b; on the
    diagonal m1 = ⟨zσσ′⟩/K_aa, m2 = 0). The (8.79) coefficient, by Gaussian regression on the 2×2 block."""
    K = np.asarray(K, dtype=np.float64)
    N = K.shape[0]
    d = np.diagonal(K).copy()
    if np.any(d <= 0):
        raise DeepEFTInputError(
            f"K_αα = {d.min():g} <= 0 for input {int(np.argmin(d))}: a preactivation with zero variance (e.g. a zero "
            "input with C_b = 0) has no regression coefficient (8.79); remove that input or use C_b > 0."
        )
    m1 = np.zeros((N, N))
    m2 = np.zeros((N, N))
    ii = np.arange(N)
    one = batched_expect(act, ((((0, 1), 1),),), d[:, None, None], resolution=resolution)[:, 0]
    m1[ii, ii] = one / d
    ia, ib = np.triu_indices(N, 1)
    if ia.size:
        S = np.empty((ia.size, 2, 2))
        S[:, 0, 0], S[:, 1, 1], S[:, 0, 1] = d[ia], d[ib], K[ia, ib]
        S[:, 1, 0] = S[:, 0, 1]
        terms = (
            (((0,), 1), ((1,), 0)),  # ⟨z_a σ_a σ′_b⟩
            (((0,), 0), ((1,), 1)),  # ⟨z_b σ_a σ′_b⟩
            (((1,), 1), ((0,), 0)),  # ⟨z_a σ′_a σ_b⟩
            (((1,), 0), ((0,), 1)),  # ⟨z_b σ′_a σ_b⟩
        )
        det = S[:, 0, 0] * S[:, 1, 1] - S[:, 0, 1] ** 2
        bad = det <= _PAIR_DET_RTOL * S[:, 0, 0] * S[:, 1, 1]
        if np.any(bad):
            i = int(np.argmax(bad))
            raise DeepEFTInputError(
                f"inputs {ia[i]} and {ib[i]} have a singular 2×2 kernel block (correlation "
                f"{K[ia[i], ib[i]] / np.sqrt(d[ia[i]] * d[ib[i]]):.15f}): coincident or (anti)parallel inputs, whose "
                "Gaussian regression (8.79) is undefined. Remove the duplicate (ntk_fluctuations merges exact "
                "duplicates itself) or use C_b > 0."
            )
        mom = batched_expect(act, terms, S, resolution=resolution)
        Lam = np.linalg.inv(S)
        c_ab = np.einsum("bij,bj->bi", Lam, mom[:, :2])  # (σ_a σ′_b): coefficients of γ = a, γ = b
        c_ba = np.einsum("bij,bj->bi", Lam, mom[:, 2:])  # (σ_b σ′_a): coefficients of γ = a, γ = b
        m1[ia, ib], m2[ia, ib] = c_ab[:, 0], c_ab[:, 1]
        m1[ib, ia], m2[ib, ia] = c_ba[:, 1], c_ba[:, 0]
    return m1, m2


def _jac_left(grad: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Σ_γ J_{(ab),γ} T_{γ,cd} over the block parameters γ ∈ {(a,a), (b,b), (a,b)} of (a, b)."""
    Ga, Gb, Gr = grad
    Td = np.einsum("aacd->acd", T)
    return Ga[:, :, None, None] * Td[:, None] + Gb[:, :, None, None] * Td[None, :] + Gr[:, :, None, None] * T


def ntk_step(act, K, H, V, A, B, D, F, *, C_W, lambda_W, ratio, first: bool = False, resolution: float = 1.0):
    """One layer ℓ → ℓ + 1 of (8.77), (8.79), (8.89), (8.97): returns (A⁺, B⁺, D⁺, F⁺).

    ``K``, ``H`` (N, N): kernel and NTK mean at layer ℓ; ``V``, ``A``, ``B``, ``D``, ``F`` (N, N, N, N) at layer ℓ
    (book index order); ``ratio`` = n_ℓ/n_{ℓ−1}; ``first``: layer ℓ = 1 (all finite-width tensors zero).
    """
    S4, M4, Q4 = ntk_four_point(act, K, resolution=resolution)
    ps = pair_derivatives(act, K, second=False, resolution=resolution)
    pp = pair_derivatives(act, K, second=False, resolution=resolution, deriv=1)
    S, P = ps.f, pp.f
    cw, lw = C_W, lambda_W
    Om = lw * S + cw * H * P  # ⟨Ω̂⟩ (8.74)
    o = np.newaxis
    # ⟨σ1σ2Ω̂34⟩ and ⟨Ω̂12Ω̂34⟩
    s_om = lw * S4 + cw * H[o, o] * M4
    om_om = lw * lw * S4 + lw * cw * (H[o, o] * M4 + H[:, :, o, o] * M4.transpose(2, 3, 0, 1))
    om_om += cw * cw * H[:, :, o, o] * H[o, o] * Q4
    D_new = cw * (s_om - S[:, :, o, o] * Om[o, o])
    A_new = om_om - Om[:, :, o, o] * Om[o, o]
    # F⁺[a1,a3,a2,a4] = C_W² M4[a1,a2,a3,a4] H[a3,a4];  B⁺[a1,a3,a2,a4] = C_W² Q4 H[a1,a2] H[a3,a4]
    F_new = cw * cw * M4.transpose(0, 2, 1, 3) * H[o, :, o, :]
    B_new = cw * cw * Q4 * H[:, o, :, o] * H[o, :, o, :]
    if not first:
        JS = ps.grad
        JO = lw * ps.grad + cw * H[o] * pp.grad
        D_new += ratio * cw * jacobian_contract(JS, V, JO)
        D_new += ratio * cw * cw * _jac_left(JS, D) * P[o, o]
        A_new += ratio * jacobian_contract(JO, V)
        A_new += ratio * cw * cw * P[:, :, o, o] * P[o, o] * A
        JD = _jac_left(JO, D) * P[o, o]
        A_new += ratio * cw * (JD + JD.transpose(2, 3, 0, 1))
        m1, m2 = pair_z_coefficients(act, K, resolution=resolution)
        Fd = np.einsum("jjkl->jkl", F)  # F[j,j,k,l]
        Fdd = np.einsum("jjll->jl", F)  # F[j,j,l,l]
        Ft = np.einsum("ijll->ijl", F)  # F[i,j,l,l]
        rec = np.einsum("ij,kl,ijkl->ijkl", m1, m1, F)
        rec += np.einsum("ij,kl,ijl->ijkl", m1, m2, Ft)
        rec += np.einsum("ij,kl,jkl->ijkl", m2, m1, Fd)
        rec += np.einsum("ij,kl,jl->ijkl", m2, m2, Fdd)
        F_new += ratio * cw * cw * rec
        B_new += ratio * cw * cw * P[:, :, o, o] * P[o, o] * B  # P[a1,a3] P[a2,a4] B[a1,a3,a2,a4]
    return A_new, B_new, D_new, F_new


@dataclasses.dataclass(frozen=True, eq=False)
class NTKFluctuations:
    """Per-layer K, Θ (L, N, N) and V, A, B, D, F (L, N, N, N, N); layer ℓ at index ℓ − 1 (module doc).

    ``n_prev`` = n_{ℓ−1} for ℓ = 1..L: the finite-width covariances are the tensors divided by it (8.82), (8.37).
    """

    net: MLP
    X: np.ndarray
    K: np.ndarray
    Theta: np.ndarray
    V: np.ndarray
    A: np.ndarray
    B: np.ndarray
    D: np.ndarray
    F: np.ndarray
    n_prev: np.ndarray

    def on_inputs(self, X: np.ndarray, inverse: np.ndarray) -> NTKFluctuations:
        """These statistics, computed on distinct inputs X_u, expanded to the inputs X = X_u[inverse]
        (:func:`deepeft.theory.vertex.unique_rows`)."""
        sel = (slice(None),) + np.ix_(inverse, inverse, inverse, inverse)
        sel2 = (slice(None),) + np.ix_(inverse, inverse)
        tensors = {k: getattr(self, k)[sel] for k in ("V", "A", "B", "D", "F")}
        return dataclasses.replace(self, X=X, K=self.K[sel2], Theta=self.Theta[sel2], **tensors)

    def projections(self, a: int = 0, b: int | None = None) -> dict[str, np.ndarray]:
        """The measurable projections for inputs a, b (default b = a), each (L,), divided by n_{ℓ−1}:

        var_H11 = Var Ĥ_{ii;ab} = (A + 2B... for a = b) — in general Var Ĥ_{ii;ab} = (A_{(ab)(ab)} + B_{aabb} + B_{abba})/n;
        cov_H11_H22 = Cov(Ĥ_{ii;ab}, Ĥ_{jj;ab}) = A/n; mean_H12_sq = E[Ĥ_{ij;ab}²] = B_{aabb}/n (i ≠ j);
        z2_dH11 = E[z_{i;a}z_{i;b}ΔĤ_{ii;ab}] = (D + F_{aabb} + F_{abba})/n; z2_dH22 = E[z_{i;a}z_{i;b}ΔĤ_{jj;ab}] = D/n;
        z1z2_H12 = E[z_{i;a}z_{j;b}Ĥ_{ij;ab}] = F_{aabb}/n (single input: (A + 2B)/n, A/n, B/n, (D + 2F)/n, D/n, F/n).
        """
        b = a if b is None else b
        n = self.n_prev
        A = self.A[:, a, b, a, b]
        B1, B2 = self.B[:, a, a, b, b], self.B[:, a, b, b, a]
        D = self.D[:, a, b, a, b]
        F1, F2 = self.F[:, a, a, b, b], self.F[:, a, b, b, a]
        return {
            "var_H11": (A + B1 + B2) / n,
            "cov_H11_H22": A / n,
            "mean_H12_sq": B1 / n,
            "z2_dH11": (D + F1 + F2) / n,
            "z2_dH22": D / n,
            "z1z2_H12": F1 / n,
        }


def ntk_fluctuations(net: MLP, X, *, resolution: float = 1.0) -> NTKFluctuations:
    """K, Θ, V and the NTK fluctuation tensors A, B (8.89), (8.97), D, F (8.77), (8.79) for ℓ = 1..L.

    ``net``: an :class:`~deepeft.MLP` (per-layer widths, C_b, C_W, λ_b, λ_W; any activation without jumps);
    ``X`` (N, n_0). Returns :class:`NTKFluctuations`; A, B, D, F are zero at ℓ = 1 and equal the closed
    forms (8.32), (8.33), (8.38), (8.39) at ℓ = 2. Cost per layer: one batched ≤ 4-variable integral per
    index multiset (C(N+3, 4)) with eight terms, plus O(N⁴) tensor algebra.
    """
    net = check_net(net)
    act = net.activation
    if act.jumps:
        raise DeepEFTInputError(
            f"{act!r} has a jump: σ′ contains δ(z), so the NTK (8.12) and its fluctuations are undefined; "
            "use a continuous activation (e.g. relu, tanh, erf, gelu)."
        )
    X = net.check_inputs(X, "X")
    Xu, inv = unique_rows(X)
    flow = vertex_flow(net, Xu, resolution=resolution)  # validates resolution and the 2×2 blocks
    K, Vv = flow.K, flow.V
    Theta = kernel_and_ntk(net, Xu).Theta
    assert Theta is not None  # ntk=True (the default)
    L, N = net.L, Xu.shape[0]
    n = np.asarray(net.n, dtype=np.float64)
    out = {k: np.zeros((L, N, N, N, N)) for k in "ABDF"}
    for l in range(1, L):  # step ℓ = l → l + 1 (index l − 1 → l)
        prev = [out[k][l - 1] for k in "ABDF"]
        A, B, D, F = ntk_step(
            act,
            K[l - 1],
            Theta[l - 1],
            Vv[l - 1],
            *prev,
            C_W=net.C_W[l],
            lambda_W=net.lambda_W[l],
            ratio=n[l] / n[l - 1],
            first=(l == 1),
            resolution=resolution,
        )
        out["A"][l], out["B"][l], out["D"][l], out["F"][l] = A, B, D, F
    return NTKFluctuations(
        net=net, X=Xu, K=K, Theta=Theta, V=Vv, **out, n_prev=n[:-1].copy()
    ).on_inputs(X, inv)
