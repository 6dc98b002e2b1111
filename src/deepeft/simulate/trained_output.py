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

so, e.g., Σ w_{pqr} dd_IĤ_{E pqr} = Σ_{pq} D³z_E[G_p, G_q, Σ_r w_{pqr} G_r] (M² third-order JVPs for all E at once),
Σ w dd_IĤ_{p E q r} = g_E · ∇_θ Σ w_{pqr} D²ẑ_p[G_q, G_r] (one gradient), and the dd_II terms are gradients of
c_q(θ) = Σ_{pr} w_{pqr} Dẑ_p(θ)[G_r] followed by one more JVP. M = n_L·N_A; the cost is O(M²) network passes.

The test checks this against the same closed form built from brute-force autodiff tensors of a tiny network,
and the experiment trains the network: the finite-width prediction's error is far below the frozen-NTK one.

References:
  Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory* (arXiv:2106.10165), §∞.1–§∞.2.
"""

from __future__ import annotations

import functools
import itertools
import time

import jax
import jax.numpy as jnp
import numpy as np

from .._x64 import x64
from ..errors import DeepEFTInputError
from ..network import MLP
from ..theory.algorithm_projectors import algorithm_projectors
from ..theory.finite_width_solution import TrainedOutput
from . import forward as fw

__all__ = ["check_smooth", "trained_output"]

_TIMES: dict[str, float] = {}  # seconds of the latest call per term (diagnostics for the benchmark)


def check_smooth(net: MLP, what: str = "finite-width training dynamics") -> None:
    """Refuse kinked activations (ReLU, leaky ReLU, ELU, …) for the η-expansion of §∞.1."""
    act = net.activation
    if not act.smooth:
        raise DeepEFTInputError(
            f"{what} needs a smooth activation, got {act.name!r} with a kink at {act.breakpoints}: the Taylor "
            "expansion in the learning rate breaks down there (PDLT §∞.1: ⟨σ″σ″⟩ diverges, an update can switch a "
            "unit off at O(1)). Use a smooth one — 'tanh', 'gelu', 'swish', 'softplus' — or 'linear'."
        )


def _jvp(f, x, v):
    return jax.jvp(f, (x,), (v,))[1]


def _d2(f, x, u, v):
    """D²f(x)[u, v]."""
    return _jvp(lambda y: _jvp(f, y, u), x, v)


def _d3(f, x, u, v, w):
    """D³f(x)[u, v, w]."""
    return _jvp(lambda y: _d2(f, y, u, v), x, w)


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
    def run(theta, X):
        def f_all(t):
            return fw.forward_preactivations(net, _unflatten(net, t), X)[-1].T.reshape(-1)

        return f_all(theta), jax.jacrev(f_all)(theta)

    return jax.jit(run)


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


def _term_B(net, n_train, theta, G, X, V, W):
    """Σ_pq W_pq dĤ_{E p q} = Σ_p D²z_E[G_p, Σ_q W_pq G_q]."""
    f_all, _, Gq = _fns(net, X, n_train, V, G)
    return jnp.sum(jax.vmap(lambda a, b: _d2(f_all, theta, a, b))(Gq, W @ Gq), axis=0)


def _term_IA(net, n_train, theta, G, X, V, W):
    """Σ_pqr W_pqr dd_IĤ_{p E q r} = g_E · ∇_θ Σ_pqr W_pqr D²ẑ_p[G_q, G_r]."""
    _, zhat, Gq = _fns(net, X, n_train, V, G)

    def s(t):
        def row(gq, Wq):  # Σ_pr W_pqr D²ẑ_p[G_q, G_r] for one q; Wq[p, r]
            d = jax.vmap(lambda hp: _d2(zhat, t, gq, hp))(Wq @ Gq)  # [p, p']
            return jnp.trace(d)

        return jnp.sum(jax.vmap(row)(Gq, jnp.transpose(W, (1, 0, 2))))

    return G @ jax.grad(s)(theta)


def _term_IB(net, n_train, theta, G, X, V, W):
    """Σ_pqr W_pqr dd_IĤ_{E p q r} = Σ_pq D³z_E[G_p, G_q, Σ_r W_pqr G_r]; dd_IĤ is symmetric in its last three
    slots (∞.5), so with W symmetrized only the M(M+1)/2 pairs p ≤ q are needed (weight 2 off the diagonal)."""
    f_all, _, Gq = _fns(net, X, n_train, V, G)
    M = Gq.shape[0]
    Ws = sum(jnp.transpose(W, perm) for perm in itertools.permutations(range(3))) / 6.0
    p_idx, q_idx = np.triu_indices(M)
    pad = (-len(p_idx)) % M
    p_idx, q_idx = np.r_[p_idx, np.zeros(pad, int)], np.r_[q_idx, np.zeros(pad, int)]
    weight = np.where(p_idx == q_idx, 1.0, 2.0)
    weight[len(weight) - pad :] = 0.0  # padding pairs contribute nothing
    chunks = (jnp.asarray(p_idx.reshape(-1, M)), jnp.asarray(q_idx.reshape(-1, M)), jnp.asarray(weight.reshape(-1, M)))

    def chunk(args):
        ps, qs, ws = args
        h = jnp.einsum("kr,rP->kP", Ws[ps, qs], Gq)
        d = jax.vmap(lambda a, b, c: _d3(f_all, theta, a, b, c))(Gq[ps], Gq[qs], h)
        return ws @ d

    return jnp.sum(jax.lax.map(chunk, chunks), axis=0)


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


_TERMS = {"Z_A": _term_A, "Z_B": _term_B, "Z_IA": _term_IA, "Z_IB": _term_IB, "Z_IIA": _term_IIA, "Z_IIB": _term_IIB}


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
    check_smooth(net)
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
        zf, J = (np.asarray(a) for a in _jacobian_program(net)(theta, Xj))  # fused (i, δ), (nN, P)
        G = J * _lambda_flat(net)[None, :]
        N = NA + NB
        tr = (np.arange(n)[:, None] * N + np.arange(NA)[None, :]).reshape(-1)
        te = (np.arange(n)[:, None] * N + NA + np.arange(NB)[None, :]).reshape(-1)
        Hall = G @ J.T
        proj = algorithm_projectors(Hall[np.ix_(tr, tr)], eta, algorithm)
        V, lamH = proj.eigvecs, proj.eigvals
        eps = zf[tr] - Y.T.reshape(-1)
        e = V.T @ eps
        ee = np.outer(e, e)
        eee = ee[:, :, None] * e
        weights = [proj.Z_A * ee, proj.Z_B * ee] + [getattr(proj, k) * eee for k in ("Z_IA", "Z_IB", "Z_IIA", "Z_IIB")]
        Gj, Vj = jnp.asarray(G), jnp.asarray(V)
        v = {}
        for name, w in zip(_TERMS, weights, strict=True):
            if algorithm == "two_step" and name in ("Z_A", "Z_IA", "Z_IIA", "Z_IIB"):  # (∞.148): identically zero
                v[name] = np.zeros(n * N)
                continue
            t0 = time.perf_counter()
            v[name] = np.asarray(_program(net, NA, name)(theta, Gj, Xj, Vj, jnp.asarray(w)))
            _TIMES[name] = time.perf_counter() - t0
        vA, vB, vIA, vIB, vIIA, vIIB = (v[k] for k in _TERMS)
    Hinv = (V / lamH) @ V.T
    P = Hall[np.ix_(te, tr)] @ Hinv
    ntk = zf[te] - P @ eps

    def bracket(v):
        return v[te] - P @ v[tr]

    def shape(v):
        return v.reshape(n, NB).T

    parts = [ntk, bracket(vA) + bracket(vB), bracket(vIA) + bracket(vIB), bracket(vIIA) + bracket(vIIB)]
    parts = [shape(v) for v in parts]
    return TrainedOutput(
        output=parts[0] + parts[1] + parts[2] + parts[3],
        ntk=parts[0],
        dntk=parts[1],
        ddntk_I=parts[2],
        ddntk_II=parts[3],
        algorithm=algorithm,
        eta=proj.eta,
        max_stable_eta=proj.max_stable_eta,
    )
