"""Predicted output of one real network after MSE gradient descent at finite width (PDLT (∞.141)/(∞.154)).

:func:`trained_output` evaluates the closed form of :func:`deepeft.theory.finite_width_solution.trained_output_from_tensors`
for a network's own parameters without ever forming its dNTK (n N)³ or ddNTK (n N)⁴ tensors: every term of (∞.141)
is one of these tensors contracted with a known weight tensor w (the algorithm projector times εε or εεε, rotated
back from H̃'s eigenbasis), and each contraction is a handful of nested Jacobian–vector products of the network.
With g_A = λ ∇_θ z_A (the λ-weighted gradient of a fused training output A = (j, α̃), (8.6)), G_q = Σ_A V_{Aq} g_A
(H̃'s eigen-directions in parameter space) and ẑ_p = Σ_A V_{Ap} z_A:

    dĤ_{E A1 A2}      = D²z_E[g_A1, g_A2]                                   (11.8)
    dd_IĤ_{E A1A2A3}  = D³z_E[g_A1, g_A2, g_A3]                             (∞.5)
    dd_IIĤ_{1 2 3 4}  = (Hess z_1 · g_3)ᵀ λ (Hess z_2 · g_4)                 (∞.7)

so, e.g., Σ w_{pqr} dd_IĤ_{E pqr} = Σ_{pqr} w_{pqr} D³z_E[G_p, G_q, G_r], Σ w dd_IĤ_{p E q r} =
g_E · ∇_θ Σ w_{pqr} D²ẑ_p[G_q, G_r] (one gradient), and the dd_II terms are gradients of
c_q(θ) = Σ_{pr} w_{pqr} Dẑ_p(θ)[G_r] followed by one more JVP. M = n_L·N_A. The second and (summed) third
directional derivatives come from one layer-wise pass (:func:`_taylor`) that computes the M first-order tangents
once per layer, all M² second-order ones as batched matrix products, and sums the third order over the M³ weights
before it meets the next layer's weights; the dĤ and dd_IĤ terms therefore cost O(M²) matrix products per layer
rather than M² nested JVPs of the whole network.

The test checks this against the same closed form built from brute-force autodiff tensors of a tiny network,
and the experiment trains the network: the finite-width prediction's error is far below the frozen-NTK one.

References:
  Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory* (arXiv:2106.10165), §∞.1–§∞.2.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._x64 import x64
from ..activations import require_smooth
from ..errors import DeepEFTInputError
from ..network import MLP
from ..theory.algorithm_projectors import algorithm_projectors
from ..theory.finite_width_solution import TrainedOutput
from . import forward as fw

__all__ = ["trained_output"]


def _jvp(f, x, v):
    return jax.jvp(f, (x,), (v,))[1]


def _d2(f, x, u, v):
    """D²f(x)[u, v]."""
    return _jvp(lambda y: _jvp(f, y, u), x, v)


def _shapes(net: MLP):
    n = net.n
    return [((n[l], n[l - 1]), (n[l],)) for l in range(1, net.L + 1)]


def _flatten(params) -> jax.Array:
    return jnp.concatenate([jnp.concatenate([W.reshape(-1), b.reshape(-1)]) for W, b in params])


def _unflatten(net: MLP, theta):
    out, o = [], 0
    for sW, sb in _shapes(net):
        kW, kb = sW[0] * sW[1], sb[0]
        out.append((theta[o : o + kW].reshape(sW), theta[o + kW : o + kW + kb]))
        o += kW + kb
    return tuple(out)


def _lambda_flat(net: MLP) -> np.ndarray:
    """λ per parameter (8.6): λ_W^{(ℓ)}/n_{ℓ−1} for weights, λ_b^{(ℓ)} for biases, in :func:`_flatten` order."""
    parts = []
    for l, (sW, sb) in enumerate(_shapes(net)):
        parts += [np.full(sW[0] * sW[1], net.lambda_W[l] / net.n[l]), np.full(sb[0], float(net.lambda_b[l]))]
    return np.concatenate(parts)


@functools.lru_cache(maxsize=16)
def _jacobian_program(net: MLP):
    """Fused outputs z (nN,), λ-weighted gradients G = λ ∇_θ z (nN, P) and the NTK Ĥ = G Jᵀ (8.6): one backward pass
    per input (z_{i;δ} depends on x_δ only) instead of one per fused output over the whole batch. Two programs: fused
    into one, XLA CPU picks a layout for J that makes G Jᵀ about ten times slower."""
    lam = jnp.asarray(_lambda_flat(net))

    def f1(t, x):
        return fw.forward_preactivations(net, _unflatten(net, t), x[None, :])[-1][0]

    @jax.jit
    def jac(theta, X):
        z = jax.vmap(f1, in_axes=(None, 0), out_axes=1)(theta, X).reshape(-1)  # (n, N) → fused (i, δ)
        return z, jax.vmap(jax.jacrev(f1), in_axes=(None, 0), out_axes=1)(theta, X).reshape(z.shape[0], -1)

    @jax.jit
    def ntk(J):
        G = J * lam[None, :]
        return G, G @ J.T

    def run(theta, X):
        z, J = jac(theta, X)
        return (z, *ntk(J))

    return run


def _fns(net: MLP, X, n_train: int, V, G):
    """The network's fused outputs on all / training inputs, ẑ = Vᵀ z_𝒜, and the eigen-directions G_q."""
    n, N = net.n[-1], X.shape[0]

    def f_all(t):
        return fw.forward_preactivations(net, _unflatten(net, t), X)[-1].T.reshape(-1)

    def zhat(t):  # ẑ_p(θ) = Σ_A V_{Ap} z_A(θ)
        return V.T @ fw.forward_preactivations(net, _unflatten(net, t), X[:n_train])[-1].T.reshape(-1)

    tr = (jnp.arange(n)[:, None] * N + jnp.arange(n_train)[None, :]).reshape(-1)
    return f_all, zhat, V.T @ G[tr]


def _term_A(net, n_train, theta, G, X, V, W):
    """Σ_pq W_pq dĤ_{p E q} = g_E · ∇_θ Σ_p Dẑ_p[Σ_q W_pq G_q]."""
    _, zhat, Gq = _fns(net, X, n_train, V, G)
    h = W @ Gq

    def s(t):
        return jnp.sum(jnp.diagonal(jax.vmap(lambda hp: _jvp(zhat, t, hp))(h)))

    return G @ jax.grad(s)(theta)


def _act_derivs(net: MLP, z):
    """σ(z), σ′(z), σ″(z), σ‴(z) elementwise (nested JVPs with unit tangents: σ acts elementwise)."""
    one = jnp.ones_like(z)

    def d1(y):
        return _jvp(net.activation.fn, y, one)

    def d2(y):
        return _jvp(d1, y, one)

    return net.activation.fn(z), d1(z), d2(z), _jvp(d2, z, one)


def _taylor_rows(net: MLP, theta, X, Gq, Ws=None):
    """Layer by layer (2.5), the output's second directional derivatives along all M eigen-directions,
    T2_pq = D²z[G_p, G_q] (M, M, N, n_L), and, given a symmetric Ws (M, M, M), the summed third derivative
    S = Σ_pqr Ws_pqr D³z[G_p, G_q, G_r] (N, n_L); the first-order T1_p = Dz[G_p] are carried along.

    With a = σ(z^(ℓ)) and z^(ℓ+1) = a Wᵀ + b, the chain rule gives, for the tangents (dW_p, db_p) of G_p,
        Dz′[p]     = a dW_pᵀ + db_p + Da[p] Wᵀ
        D²z′[p,q]  = Da[q] dW_pᵀ + Da[p] dW_qᵀ + D²a[p,q] Wᵀ
        S′         = 3 Σ_r (Σ_pq Ws_pqr D²a[p,q]) dW_rᵀ + (Σ Ws D³a) Wᵀ,
    with Da[p] = σ′T1_p, D²a[p,q] = σ″T1_pT1_q + σ′T2_pq, Σ Ws D³a = Σ_r (σ‴ Σ_pq Ws_pqr T1_pT1_q + 3σ″ Σ_pq Ws_pqr T2_pq) T1_r
    + σ′S. First-order tangents are computed once and reused by every pair, and the third order is summed before
    it meets the next layer's weights, so the cost is O(M²) matrix products per layer instead of M² nested JVPs.
    """
    params = _unflatten(net, theta)
    dirs = jax.vmap(lambda g: _unflatten(net, g))(Gq)  # per layer (M, n′, n), (M, n′)
    W, b = params[0]
    dW, db = dirs[0]
    z = X @ W.T + b
    T1 = jnp.einsum("nk,pjk->pnj", X, dW) + db[:, None, :]
    # The first layer is linear in θ: no second or third derivatives. (Starting from explicit zero arrays instead
    # made XLA CPU (jax 0.10.2) return garbage for S when the Ws contraction was a program argument.)
    T2 = S = None
    for (W, b), (dW, db) in zip(params[1:], dirs[1:], strict=True):
        a, s1, s2, s3 = _act_derivs(net, z)
        Da = s1 * T1
        T1T1 = T1[:, None] * T1[None, :]
        D2a = s2 * T1T1 if T2 is None else s2 * T1T1 + s1 * T2
        if Ws is not None:
            Sa = s3 * jnp.einsum("rnj,rnj->nj", jnp.einsum("pqr,pqnj->rnj", Ws, T1T1), T1)
            if T2 is not None:
                Sa = Sa + 3.0 * s2 * jnp.einsum("rnj,rnj->nj", jnp.einsum("pqr,pqnj->rnj", Ws, T2), T1) + s1 * S
            R = jnp.einsum("pqr,pqnj->rnj", Ws, D2a)
            RdW = jnp.swapaxes(R, 0, 1).reshape(R.shape[1], -1) @ jnp.swapaxes(dW, 0, 1).reshape(dW.shape[1], -1).T
            S = 3.0 * RdW + Sa @ W.T
        Bpq = jnp.einsum("qnk,pjk->pqnj", Da, dW)
        T1 = jnp.einsum("nk,pjk->pnj", a, dW) + db[:, None, :] + Da @ W.T
        T2 = Bpq + jnp.swapaxes(Bpq, 0, 1) + D2a @ W.T
        z = a @ W.T + b

    if T2 is None:  # L = 1: the network is linear in θ
        T2 = jnp.zeros((T1.shape[0],) + T1.shape, T1.dtype)
    return T2, (None if Ws is None else (jnp.zeros_like(z) if S is None else S))


TAYLOR_CHUNK_BYTES = 1 << 29  # inputs per layer-wise pass are chunked so that one M² × chunk × width array ≲ this


def _taylor(net: MLP, theta, X, Gq, Ws=None):
    """:func:`_taylor_rows` in fused (i, δ) order, T2 (M, M, n N) and S (n N,) (None without Ws), over chunks of
    inputs (every input is independent) so that memory stays bounded for large M·N·width; each chunk is
    rematerialized under reverse mode."""
    N, M = X.shape[0], Gq.shape[0]
    c = int(max(1, min(N, TAYLOR_CHUNK_BYTES // (8 * M * M * max(net.n)))))
    if c >= N:
        T2, S = _taylor_rows(net, theta, X, Gq, Ws)
    else:
        k = -(-N // c)
        Xc = jnp.concatenate([X, jnp.zeros((k * c - N, X.shape[1]), X.dtype)]).reshape(k, c, X.shape[1])
        T2c, Sc = jax.lax.map(jax.checkpoint(lambda x: _taylor_rows(net, theta, x, Gq, Ws)), Xc)
        T2 = jnp.moveaxis(T2c, 0, 2).reshape((M, M, k * c, -1))[:, :, :N]
        S = None if Sc is None else Sc.reshape(k * c, -1)[:N]

    def fuse(x):  # (..., N, n) → (..., n N)
        return jnp.swapaxes(x, -1, -2).reshape(x.shape[:-2] + (-1,))

    return fuse(T2), (None if S is None else fuse(S))


def _term_B_IB(net, n_train, theta, G, X, V, W2, W3):
    """Σ_pq W2_pq dĤ_{E p q} = Σ_pq W2_pq D²z_E[G_p, G_q] and Σ_pqr W3_pqr dd_IĤ_{E p q r} = Σ W3 D³z_E[G_p, G_q, G_r]
    (dd_IĤ is symmetric in its last three slots (∞.5), so W3 is symmetrized) from one layer-wise pass (:func:`_taylor`)."""
    _, _, Gq = _fns(net, X, n_train, V, G)
    Ws = sum(jnp.transpose(W3, perm) for perm in itertools.permutations(range(3))) / 6.0
    T2, S = _taylor(net, theta, X, Gq, Ws)
    return jnp.einsum("pq,pqE->E", W2, T2), S


def _term_IA(net, n_train, theta, G, X, V, W):
    """Σ_pqr W_pqr dd_IĤ_{p E q r} = g_E · ∇_θ Σ_pqr W_pqr D²ẑ_p[G_q, G_r], D²ẑ from :func:`_taylor` on the training
    inputs (reverse mode through the layer-wise pass)."""
    _, _, Gq = _fns(net, X, n_train, V, G)
    Xa = X[:n_train]

    def s(t):
        T2 = _taylor(net, t, Xa, Gq)[0]  # (M, M, n N_A) in fused training order = V's row order
        return jnp.einsum("pqr,Ap,qrA->", W, V, T2)

    return G @ jax.grad(s)(theta)


def _khat(zhat, Gq):
    """K̂_{pr}(θ) = Dẑ_p(θ)[G_r]."""
    return lambda t: jax.vmap(lambda g: _jvp(zhat, t, g), out_axes=1)(Gq)


def _term_IIA(net, n_train, theta, G, X, V, W):
    """Σ W_pqr dd_IIĤ_{p q E r} = Σ W (Hess ẑ_p g_E)ᵀλ(Hess ẑ_q G_r) = g_E · ∇ Σ_p Dẑ_p[λ r_p], r_p = ∇ Σ_qr W_pqr K̂_qr."""
    _, zhat, Gq = _fns(net, X, n_train, V, G)
    lam = jnp.asarray(_lambda_flat(net))
    K = _khat(zhat, Gq)
    r = jax.jacrev(lambda t: jnp.einsum("pqr,qr->p", W, K(t)))(theta) * lam[None, :]

    def s(t):
        return jnp.sum(jnp.diagonal(jax.vmap(lambda h: _jvp(zhat, t, h))(r)))

    return G @ jax.grad(s)(theta)


def _term_IIB(net, n_train, theta, G, X, V, W):
    """Σ W_pqr dd_IIĤ_{E p q r} = Σ W (Hess z_E G_q)ᵀλ(Hess ẑ_p G_r) = Σ_q D²z_E[G_q, λ u_q], u_q = ∇ Σ_pr W_pqr K̂_pr."""
    f_all, zhat, Gq = _fns(net, X, n_train, V, G)
    lam = jnp.asarray(_lambda_flat(net))
    K = _khat(zhat, Gq)
    u = jax.jacrev(lambda t: jnp.einsum("pqr,pr->q", W, K(t)))(theta) * lam[None, :]
    return jnp.sum(jax.vmap(lambda gq, uq: _d2(f_all, theta, gq, uq))(Gq, u), axis=0)


_TERMS: dict[str, Callable[..., Any]] = {
    "Z_A": _term_A,
    "Z_B+Z_IB": _term_B_IB,  # one layer-wise pass gives both
    "Z_IA": _term_IA,
    "Z_IIA": _term_IIA,
    "Z_IIB": _term_IIB,
}


@functools.lru_cache(maxsize=64)
def _program(net: MLP, n_train: int, name: str):
    """One jitted contraction (small programs compile much faster than one big one)."""
    return jax.jit(functools.partial(_TERMS[name], net, n_train))


def _check_params(net: MLP, params):
    try:
        p = tuple((jnp.asarray(W, jnp.float64), jnp.asarray(b, jnp.float64)) for W, b in params)
    except (TypeError, ValueError):
        raise DeepEFTInputError("params must be a sequence of (W, b) pairs, as returned by de.sample_params.") from None
    if len(p) != net.L:
        raise DeepEFTInputError(f"params must hold L = {net.L} (W, b) pairs, got {len(p)}.")
    for l, ((W, b), (sW, sb)) in enumerate(zip(p, _shapes(net), strict=True), start=1):
        if W.shape != sW or b.shape != sb:
            raise DeepEFTInputError(f"layer {l}: expected W {sW} and b {sb}, got {tuple(W.shape)} and {tuple(b.shape)}.")
        if not (bool(jnp.all(jnp.isfinite(W))) and bool(jnp.all(jnp.isfinite(b)))):
            raise DeepEFTInputError(f"layer {l}: params contain NaN or inf.")
    return p


def trained_output(params, net: MLP, X_train, Y_train, X_test, *, eta=None, algorithm: str = "gd") -> TrainedOutput:
    """Predicted test outputs of THIS network after training on (X_train, Y_train) to convergence, (∞.141).

    Parameters
    ----------
    params : the network's (W, b) pairs at initialization (:func:`deepeft.sample_params`).
    net : its architecture (:class:`deepeft.MLP`); the activation must be smooth (tanh, gelu, swish, …, linear).
    X_train (N_A, n_0), Y_train (N_A, n_L), X_test (N_B, n_0).
    eta, algorithm : "gd" (full-batch GD with constant η, 0 < ηλ_max(Ĥ_train) < 2), "ode" (gradient flow),
        "two_step" (giant leap + small step (∞.79)).

    Returns :class:`~deepeft.theory.finite_width_solution.TrainedOutput` (arrays (N_B, n_L)): ``output`` and its
    parts ``ntk`` (frozen-NTK/linearized prediction with this network's NTK), ``dntk``, ``ddntk_I``, ``ddntk_II``.
    """
    net = fw.check_net(net)
    require_smooth(net.activation, "The trained output (∞.141) of finite-width training dynamics")
    Xa = net.check_inputs(X_train)
    Xb = net.check_inputs(X_test)
    n = net.n[-1]
    try:
        Y = np.asarray(Y_train, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeepEFTInputError("Y_train must be a numeric (N_A, n_L) array.") from None
    if Y.ndim == 1 and n == 1:
        Y = Y[:, None]
    if Y.shape != (Xa.shape[0], n):
        raise DeepEFTInputError(f"Y_train must be (N_A, n_L) = {(Xa.shape[0], n)}, got {Y.shape}.")
    if not np.all(np.isfinite(Y)):
        raise DeepEFTInputError("Y_train contains NaN or inf.")
    NA, NB = Xa.shape[0], Xb.shape[0]
    X = np.concatenate([Xa, Xb])
    with x64():
        theta = _flatten(_check_params(net, params))
        Xj = jnp.asarray(X, jnp.float64)
        zj, Gj, Hj = _jacobian_program(net)(theta, Xj)  # fused (i, δ): (nN,), (nN, P), (nN, nN)
        zf, Hall = np.asarray(zj), np.asarray(Hj)
        N = NA + NB
        tr = (np.arange(n)[:, None] * N + np.arange(NA)[None, :]).reshape(-1)
        te = (np.arange(n)[:, None] * N + NA + np.arange(NB)[None, :]).reshape(-1)
        proj = algorithm_projectors(Hall[np.ix_(tr, tr)], eta, algorithm)
        V, lamH = proj.eigvecs, proj.eigvals
        eps = zf[tr] - Y.T.reshape(-1)
        e = V.T @ eps
        ee = np.outer(e, e)
        eee = ee[:, :, None] * e
        w = {k: getattr(proj, k) * (ee if k in ("Z_A", "Z_B") else eee) for k in ("Z_A", "Z_B", "Z_IA", "Z_IB", "Z_IIA", "Z_IIB")}
        Vj = jnp.asarray(V)
        v: dict[str, Any] = {}
        for name in _TERMS:
            if algorithm == "two_step" and name in ("Z_A", "Z_IA", "Z_IIA", "Z_IIB"):  # (∞.148): identically zero
                v[name] = np.zeros(n * N)
                continue
            ws = [jnp.asarray(w[k]) for k in name.split("+")]
            out = _program(net, NA, name)(theta, Gj, Xj, Vj, *ws)
            v[name] = tuple(np.asarray(o) for o in out) if isinstance(out, tuple) else np.asarray(out)
        vA, (vB, vIB), vIA, vIIA, vIIB = (v[k] for k in _TERMS)
    Hinv = (V / lamH) @ V.T
    P = Hall[np.ix_(te, tr)] @ Hinv
    ntk = zf[te] - P @ eps

    def bracket(v):
        return v[te] - P @ v[tr]

    def shape(v):
        return v.reshape(n, NB).T

    parts = [ntk, bracket(vA) + bracket(vB), bracket(vIA) + bracket(vIB), bracket(vIIA) + bracket(vIIB)]
    return TrainedOutput.from_parts([shape(v) for v in parts], algorithm, proj.eta, proj.max_stable_eta)
