"""Kernel K, frozen NTK Θ and four-point vertex V of a residual MLP (book App. B, (B.11)–(B.26)).

With the block weight absorbed, C_b, C_W, λ_b, λ_W → ξ²(C_b, C_W, λ_b, λ_W) per layer (B.6), and γ = γ^{(ℓ+1)}:

    K^{(ℓ+1)}_{αβ} = C_b + C_W⟨σ_ασ_β⟩_{K^{(ℓ)}} + γ² K^{(ℓ)}_{αβ}                                  (B.11)
    Θ^{(ℓ+1)}_{αβ} = λ_b + λ_W⟨σ_ασ_β⟩ + (C_W⟨σ'_ασ'_β⟩ + γ²) Θ^{(ℓ)}_{αβ}                  (9.5) with (B.3) [derived]
    V^{(ℓ+1)}     = C_W²[⟨σσσσ⟩ − ⟨σσ⟩⟨σσ⟩] + C_Wγ²[C_{(12)(34)} + C_{(34)(12)}]
                    + (n_ℓ/n_{ℓ−1}) Σ J_{(12),γ} J_{(34),δ} V^{(ℓ)}_{γδ}                                    (B.24)

where J = ∂K^{(ℓ+1)}/∂K^{(ℓ)} = C_W ∂⟨σσ⟩/∂K + γ²𝟙 collects the book's raised-index C_W², C_Wγ² and γ⁴ terms
of (B.24) (as in :mod:`deepeft.theory.vertex`), and C_{(12)(34)} = ⟨σ_1σ_2(z_3z_4 − K_34)⟩ is obtained by
Gaussian integration by parts from the same first derivatives: C = Σ_γ ∂⟨σ_1σ_2⟩/∂K_γ (K_{γ1 3}K_{γ2 4} +
K_{γ1 4}K_{γ2 3}) (tested against the direct 4-variable integral). The NTK cross terms ξγ W σ′ have zero mean.
Single input (B.26): V⁺ = C_W²[⟨σ⁴⟩ − ⟨σ²⟩²] + χ_∥² V + 4γ²(χ_∥ − γ²)K², χ_∥ = γ² + C_W g′(K) (B.15),
χ_⊥ = γ² + C_W⟨σ′σ′⟩ (B.16). γ = 0 is the plain MLP ((4.118), (9.5), (4.119)).

Three-point correlator [derived; erratum to (B.24)–(B.29) for activations that are not odd]. With a skip, the
sign flip z → −z is no symmetry unless σ is odd, and z⁺ = u + γz (u | layer ℓ ~ N(0, Ĝ)) gives a connected
three-point function E[z_{i1;1}z_{i2;2}z_{i3;3}] = (1/n)[δ_{i1i2}U_{(12)3} + δ_{i1i3}U_{(13)2} + δ_{i2i3}U_{(23)1}] with

    U^{(ℓ+1)}_{(12)3} = γ[C_W⟨σ_1σ_2z_3⟩ + Σ_β J_{(12),β} U^{(ℓ)}_{β3}],   U^{(1)} = 0,

which feeds the four-point vertex at the same order 1/n (first-order Edgeworth terms of Cov(Ĝ, Ĝ) and Cov(Ĝ, zz)):

    V^{(ℓ+1)} += C_W Σ_γ [(JU)_{(12)γ} D_{(34)γ} + (JU)_{(34)γ} D_{(12)γ}],   D_{(12)γ} = ⟨∂_γ(σ_1σ_2)⟩.

Both need only m_{ab} = ⟨σ′_aσ_b⟩ (Stein: ⟨σ_1σ_2z_3⟩ = K_31 m_12 + K_32 m_21, D_{(12)γ} = δ_γ1 m_12 + δ_γ2 m_21).
For odd σ (tanh, linear) m-terms of ⟨σσz⟩ vanish and U ≡ 0: the book's recursion. For ReLU they do not, and
ensembles confirm the corrected V (tests/theory/test_residual.py, experiment ``residual-criticality``);
``three_point=False`` gives (B.24) as printed. Single input: U⁺ = γ[2C_W K m + χ_∥U], V⁺ += 4C_Wχ_∥ U m, m = ⟨σσ′⟩.

Every expectation comes from the Gaussian engine (two-point maps, :func:`~deepeft.theory.vertex.pair_derivatives`,
:func:`~deepeft.theory.vertex.four_sigma`, 1-D :func:`~deepeft.theory.single_input.helper_functions`).

References: Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory*, App. B (arXiv:2106.10165).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from numpy.typing import ArrayLike

from ..errors import DeepEFTInputError
from ..gaussian import engine
from ..network_residual import ResidualMLP, check_residual
from .kernel import Kernels
from .single_input import helper_functions
from .vertex import VertexFlow, four_sigma, jacobian_contract, pair_derivatives, unique_rows

__all__ = [
    "ResidualSingleInput",
    "ResidualVertexFlow",
    "intralayer_cross",
    "residual_deep_single_input",
    "residual_kernels",
    "residual_single_input",
    "residual_vertex_flow",
]


def residual_kernels(
    net: ResidualMLP, X: ArrayLike, X2: ArrayLike | None = None, *, ntk: bool = True, rtol: float = 1e-12
) -> Kernels:
    """K^{(ℓ)} (B.11) and Θ^{(ℓ)} of a residual MLP, arrays (L, N, N) (or (L, N, N2) between X and X2)."""
    net = check_residual(net)
    X = net.check_inputs(X, "X")
    same = X2 is None
    X2 = X if same else net.check_inputs(X2, "X2")
    p = net.effective_arrays()
    act = net.activation
    n0 = X.shape[1]
    G = (X @ X2.T) / n0
    if same:
        G = 0.5 * (G + G.T)
    da, db = np.einsum("ai,ai->a", X, X) / n0, np.einsum("ai,ai->a", X2, X2) / n0
    L = net.L
    Ks = np.empty((L,) + G.shape)
    Ts = np.empty((L,) + G.shape) if ntk else None
    Ks[0] = p["C_b"][0] + p["C_W"][0] * G  # (4.8) with ξ²
    Kaa, Kbb = p["C_b"][0] + p["C_W"][0] * da, p["C_b"][0] + p["C_W"][0] * db
    if same:
        np.fill_diagonal(Ks[0], Kaa)
    if Ts is not None:
        Ts[0] = p["lambda_b"][0] + p["lambda_W"][0] * G  # (8.23)
    pairs = ((0, 0), (1, 1)) if ntk else ((0, 0),)
    for l in range(1, L):
        cb, cw, g2 = p["C_b"][l], p["C_W"][l], p["gamma"][l] ** 2
        maps = engine.two_point_core(act, Kaa, Kbb, Ks[l - 1], pairs, same=same, rtol=rtol)
        Ks[l] = cb + cw * maps[0] + g2 * Ks[l - 1]  # (B.11)
        if Ts is not None:
            Ts[l] = p["lambda_b"][l] + p["lambda_W"][l] * maps[0] + (cw * maps[1] + g2) * Ts[l - 1]
        if same:
            Kaa = np.diagonal(Ks[l]).copy()
            Kbb = Kaa
        else:
            Kaa = cb + cw * engine.one_point_core(act, (0, 0), Kaa, rtol) + g2 * Kaa
            Kbb = cb + cw * engine.one_point_core(act, (0, 0), Kbb, rtol) + g2 * Kbb
    return Kernels(Ks, Ts)


def _identity_jacobian(N: int) -> np.ndarray:
    """The sparse Jacobian (3, N, N) of K ↦ K in the layout of :func:`~deepeft.theory.vertex.jacobian_contract`."""
    E = np.zeros((3, N, N))
    E[2] = 1.0
    np.fill_diagonal(E[2], 0.0)
    np.fill_diagonal(E[0], 1.0)
    return E


def intralayer_cross(grad: np.ndarray, K: np.ndarray) -> np.ndarray:
    """C_{abcd} = ⟨σ_aσ_b(z_cz_d − K_cd)⟩_K from the first derivatives ``grad`` (3, N, N) of ⟨σ_aσ_b⟩ in
    (K_aa, K_bb, K_ab) (Gaussian integration by parts; the intralayer term of (B.24))."""
    N = K.shape[0]
    W = np.einsum("ac,bd->abcd", K, K)
    W = W + W.transpose(0, 1, 3, 2)  # K_ac K_bd + K_ad K_bc
    return jacobian_contract(grad, W, _identity_jacobian(N))


def _check_blocks(K: np.ndarray, layer: int) -> None:
    d = np.diagonal(K)
    if np.any(d <= 0):
        raise DeepEFTInputError(
            f"K^({layer})_αα = {d.min():g} for some input: a preactivation with zero variance has no fluctuations; "
            "remove that input or use C_b > 0."
        )
    rho = K / np.sqrt(np.outer(d, d))
    np.fill_diagonal(rho, 0.0)
    if np.any(np.abs(rho) > 1 - 1e-12):
        raise DeepEFTInputError(
            f"two inputs are (anti)parallel at layer {layer} (|correlation| = {np.max(np.abs(rho)):.15f}): the "
            "vertex derivatives are undefined there; remove one of them, or use C_b > 0."
        )


@dataclasses.dataclass(frozen=True, eq=False)
class ResidualVertexFlow(VertexFlow):
    """:class:`~deepeft.theory.vertex.VertexFlow` of a residual MLP plus the three-point tensor U (L, N, N, N)
    (``U[ℓ−1, a, b, c]`` = U^{(ℓ)}_{(ab)c}; zeros for odd σ or with ``three_point=False``)."""

    U: np.ndarray | None = None


def _apply_jacobian3(J: np.ndarray, U: np.ndarray) -> np.ndarray:
    """Σ_β J_{(ab),β} U_{βc} for the sparse J (3, N, N) of (K_aa, K_bb, K_ab) and U (N, N, N)."""
    Ud = np.einsum("aac->ac", U)
    return J[0][:, :, None] * Ud[:, None, :] + J[1][:, :, None] * Ud[None, :, :] + J[2][:, :, None] * U


def residual_vertex_flow(
    net: ResidualMLP, X: ArrayLike, *, resolution: float = 1.0, three_point: bool = True
) -> ResidualVertexFlow:
    """K (B.11) and V (B.24) of a residual MLP for every layer (layer ℓ at index ℓ − 1; V^{(1)} = 0), with the
    three-point feed (module doc); ``three_point=False``: (B.24) as printed."""
    net = check_residual(net)
    X = net.check_inputs(X, "X")
    resolution = float(resolution)
    if not math.isfinite(resolution) or resolution < 0.25:
        raise DeepEFTInputError(f"resolution must be a finite number >= 0.25 (1 = default), got {resolution!r}.")
    Xu, inv = unique_rows(X)
    N = Xu.shape[0]
    K = residual_kernels(net, Xu, ntk=False).K
    p = net.effective_arrays()
    act = net.activation
    n = np.asarray(net.n, dtype=np.float64)
    L = net.L
    V = np.zeros((L, N, N, N, N))
    U = np.zeros((L, N, N, N))
    E = _identity_jacobian(N)
    pairs = ((1, 0),)
    for l in range(1, L):
        Kl = K[l - 1]
        _check_blocks(Kl, l)
        CW, g2 = p["C_W"][l], p["gamma"][l] ** 2
        ratio = n[l] / n[l - 1]
        pd = pair_derivatives(act, Kl, second=False, resolution=resolution)
        S4 = four_sigma(act, Kl, resolution=resolution)
        P = pd.f
        V[l] = CW**2 * (S4 - P[:, :, None, None] * P[None, None, :, :])  # (B.24), first term
        if g2:
            C = intralayer_cross(pd.grad, Kl)
            V[l] += CW * g2 * (C + C.transpose(2, 3, 0, 1))  # (B.24), intralayer γ² terms
        if l > 1:
            if g2:
                V[l] += ratio * jacobian_contract(CW * pd.grad + g2 * E, V[l - 1])  # (B.24), C_W², C_Wγ², γ⁴ terms
            else:
                V[l] += ratio * CW**2 * jacobian_contract(pd.grad, V[l - 1])  # (4.119) as in the plain MLP
        if three_point and (g2 or np.any(U[l - 1])):
            d = np.diagonal(Kl).copy()
            m = engine.two_point_core(act, d, d, Kl, pairs, same=True)[0]  # m_ab = ⟨σ′_a σ_b⟩
            JU = ratio * _apply_jacobian3(CW * pd.grad + g2 * E, U[l - 1])
            T = np.einsum("abc,cd->abcd", JU, m) + np.einsum("abd,dc->abcd", JU, m)  # Σ_γ (JU)_{abγ} D_{(cd)γ}
            V[l] += CW * (T + T.transpose(2, 3, 0, 1))
            Y = np.einsum("ca,ab->abc", Kl, m) + np.einsum("cb,ba->abc", Kl, m)  # ⟨σ_aσ_b z_c⟩ (Stein)
            U[l] = math.sqrt(g2) * (CW * Y + JU)
    sel = np.ix_(inv, inv, inv, inv)
    K, V, U = K[:, inv][:, :, inv], V[(slice(None),) + sel], U[(slice(None),) + np.ix_(inv, inv, inv)]
    return ResidualVertexFlow(net, X, K, V, None, n[:-1].copy(), U)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True, eq=False)
class ResidualSingleInput:
    """Single-input residual recursions, arrays (L,), layer ℓ at index ℓ − 1: K (B.12), V (B.26), Θ, the
    three-point coefficient U (module doc; E[z³] = 3U/n), and the
    susceptibilities χ_∥ (B.15), χ_⊥ (B.16) of the step ℓ → ℓ + 1 evaluated at K^{(ℓ)} (index ℓ − 1; the last
    entry uses the output layer's C_W, γ)."""

    net: ResidualMLP
    norm: float
    K: np.ndarray
    V: np.ndarray
    Theta: np.ndarray
    chi_parallel: np.ndarray
    chi_perp: np.ndarray
    U: np.ndarray

    @property
    def normalized_vertex(self) -> np.ndarray:
        """V^{(ℓ)}/(K^{(ℓ)})² — divided by n this is ν r at the output (B.22)."""
        return self.V / self.K**2


def residual_single_input(
    net: ResidualMLP, x: ArrayLike | None = None, *, norm: float | None = None, three_point: bool = True
) -> ResidualSingleInput:
    """K, V, Θ, U, χ_∥, χ_⊥ of one input through a residual MLP (B.12), (B.26), from 1-D Gaussian integrals.

    Give the input ``x`` (n_0,) or its ``norm`` (1/n_0)Σx² (default 1). ``three_point=False``: (B.26) as printed.
    """
    net = check_residual(net)
    if x is not None:
        xx = net.check_inputs(np.asarray(x, dtype=np.float64).reshape(1, -1), "x")[0]
        norm = float(xx @ xx) / xx.size
    norm = 1.0 if norm is None else float(norm)
    if not math.isfinite(norm) or norm < 0:
        raise DeepEFTInputError(f"norm must be a finite number >= 0 ((1/n_0)Σx²), got {norm!r}.")
    p = net.effective_arrays()
    act = net.activation
    n = np.asarray(net.n, dtype=np.float64)
    L = net.L
    K, V, T, U = np.zeros(L), np.zeros(L), np.zeros(L), np.zeros(L)
    chi_par, chi_perp = np.full(L, np.nan), np.full(L, np.nan)
    K[0] = p["C_b"][0] + p["C_W"][0] * norm
    T[0] = p["lambda_b"][0] + p["lambda_W"][0] * norm
    for l in range(1, L + 1):
        nxt = min(l, L - 1)  # the output entry: susceptibilities of the last step's hyperparameters
        g2 = p["gamma"][nxt] ** 2
        hf = helper_functions(act, K[l - 1], p["C_W"][nxt])
        chi_par[l - 1] = g2 + float(hf.chi_parallel)  # (B.15)
        chi_perp[l - 1] = g2 + float(hf.chi_perp)  # (B.16)
        if l == L:
            break
        K[l] = p["C_b"][l] + p["C_W"][l] * float(hf.g) + g2 * K[l - 1]  # (B.12)
        cp = chi_par[l - 1]
        V[l] = float(hf.source) + (n[l] / n[l - 1]) * cp**2 * V[l - 1] + 4 * g2 * (cp - g2) * K[l - 1] ** 2  # (B.26)
        if three_point and (g2 or U[l - 1]):
            m = float(engine.one_point_core(act, (0, 1), np.array([K[l - 1]]))[0])  # ⟨σσ′⟩
            cw = p["C_W"][l]
            V[l] += 4 * cw * cp * U[l - 1] * m
            U[l] = math.sqrt(g2) * (2 * cw * K[l - 1] * m + cp * U[l - 1])
        T[l] = p["lambda_b"][l] + p["lambda_W"][l] * float(hf.g) + chi_perp[l - 1] * T[l - 1]
    return ResidualSingleInput(net, norm, K, V, T, chi_par, chi_perp, U)


def residual_deep_single_input(
    activation, K1: float, C_W: float, gamma: float, depth: int, *, three_point: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(K, V) of one input through ``depth`` layers with uniform C_b = 0, C_W, γ (B.12), (B.26), equal widths,
    as one jitted ``lax.scan`` (10⁵ layers in about a second) — for the deep asymptotics ν(γ) (B.29)/(B.35).

    The moments use the engine's composite Gauss–Legendre nodes (:func:`deepeft.gaussian.engine.gauss1d_nodes`)
    in x = z/√K at the largest kernel value, as the MLP's deep single-input scan does; K must stay
    ≤ max(K1, 1) (true at and below criticality of the K* = 0 and scale-invariant classes).
    """
    import jax
    import jax.numpy as jnp

    from .._x64 import x64
    from ..activations import activation as _act

    act = _act(activation)
    depth = int(depth)
    K1, C_W, g2 = float(K1), float(C_W), float(gamma) ** 2
    if not (K1 > 0 and C_W >= 0 and depth >= 1):
        raise DeepEFTInputError("need K1 > 0, C_W >= 0 and depth >= 1.")
    Kmax = max(K1, 1.0)
    z, w = engine.gauss1d_nodes(np.array(Kmax), engine.breakpoints(act), panels=6 * int(np.ceil(np.sqrt(Kmax))))
    x = z / np.sqrt(Kmax)
    with x64():
        xs, ws = jnp.asarray(x), jnp.asarray(w)

        tp = 1.0 if three_point else 0.0

        def step(carry, _):
            K, V, U = carry
            s, ds = jax.jvp(act.fn, (jnp.sqrt(K) * xs,), (jnp.ones_like(xs),))
            g = jnp.sum(ws * s * s)
            m = tp * jnp.sum(ws * s * ds)  # ⟨σσ′⟩ (three-point feed, module doc)
            chi = g2 + C_W / (2 * K) * (jnp.sum(ws * s * s * xs * xs) - g)  # (B.15): ⟨σσ(z² − K)⟩/2K² with z² = Kx²
            src = C_W**2 * (jnp.sum(ws * s**4) - g * g)
            Kn = C_W * g + g2 * K  # (B.12), C_b = 0
            Vn = src + chi**2 * V + 4 * g2 * (chi - g2) * K * K + 4 * C_W * chi * U * m  # (B.26) + three-point
            Un = math.sqrt(g2) * (2 * C_W * K * m + chi * U)
            return (Kn, Vn, Un), (K, V)

        init = (jnp.float64(K1), jnp.float64(0.0), jnp.float64(0.0))
        _, (K, V) = jax.lax.scan(step, init, None, length=depth)
        return np.asarray(K), np.asarray(V)
