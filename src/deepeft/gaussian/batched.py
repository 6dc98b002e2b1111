"""Batched, jitted product rule for ⟨Π_a g_a(z_a)⟩_K over k ≤ 4 variables, many K at once   (book (4.25)).

Each term is a product of per-variable factors g_a(z) = z^{q_a} Π_{d ∈ derivs_a} σ^{(d)}(z). With the
Cholesky factor z = Lξ (plain Cholesky of K + 1e-12·max(diag)·I, so every block is positive definite),
the independent standard normals ξ_0 (outer) … ξ_{k−1} (inner) are integrated by nested 1-D rules with
STATIC node counts (one jit per activation, term set, k and rule):

* smooth σ: the trapezoidal rule on [−T_k, T_k] (spectrally accurate for analytic integrands); its node
  count M is the smallest one whose 1-D probes (⟨σ⁴⟩, and ⟨σ²z⁴⟩ for k ≤ 2) at the largest variance
  (bucketed up by √2) match the exact 1-D values (:func:`deepeft.gaussian.gauss1d.expect1d`) to ``tol``;
* kinked σ: Gauss–Legendre panels on [−T_k, T_k], the ξ_j panel split at the kinks of factor j, i.e. at
  (c − Σ_{l<j} L_jl ξ_l)/L_jj (a point that moves with the outer variables);
* scale-invariant σ (ReLU family) with σ as the innermost factor of every term: that factor is integrated
  in closed form, E_ξ[σ(μ + sξ)] = a₋μ + (a₊ − a₋)(μΦ(μ/s) + sφ(μ/s)), removing one grid dimension.

Cost ∝ B · M^k (C(N, 4) such integrals per layer for the four-point vertex). The engine
(:mod:`deepeft.gaussian.engine`) decides when this rule is used (docs/engine.md).
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._x64 import x64
from ..activations import Activation
from ..activations import activation as _activation
from .gauss1d import expect1d

__all__ = ["activation_parity", "batched_rule", "product_expect", "run_rule", "smooth_rule", "term_parity"]

_JITTER = 1e-12  # relative diagonal jitter: every block is positive definite (plain Cholesky)
TOL = {1: 1e-13, 2: 1e-12, 3: 1e-10, 4: 1e-8}  # default per-dimension relative accuracy target by k (cost ∝ M^k)
_TRUNC = {1: 10.0, 2: 10.0, 3: 8.0, 4: 7.0}  # ξ ∈ [−T_k, T_k]; k ≤ 2 carries z⁴ moments (mass e^{−T²/2}T⁸ ≪ tol)
MAX_M = {1: 257, 2: 257, 3: 193, 4: 81}  # memory cap of the trapezoid rule (M^k points per integral)
SMOOTH_M = (17, 21, 25, 29, 33, 41, 49, 57, 65, 81, 97, 129, 161, 193, 257)
_KINK_RULE = {1: (16, 12), 2: (10, 12), 3: (6, 10), 4: (5, 8)}  # k → (panels on [−T, T], GL nodes)
_SCALE_FREE = ("scale_invariant", "step", "monomial")


def smooth_rule(act: Activation, K_max: float, k: int, resolution: float = 1.0, tol: float | None = None):
    """(M, need): trapezoid nodes M on [−T_k, T_k] for a smooth σ, and the uncapped requirement ``need``.

    M is the smallest node count whose 1-D probes at the largest variance K_max (bucketed up by √2) meet
    ``tol`` (default TOL[k], a per-dimension accuracy proxy), times ``resolution``, capped at MAX_M[k].
    """
    tol = TOL[k] if tol is None else float(tol)
    Kb = 2.0 ** (math.ceil(2 * math.log2(max(K_max, 1e-3))) / 2)  # bucketed: few distinct rules per activation
    M = _probe_nodes(act, Kb, k, tol)
    need = int(math.ceil((M - 1) * resolution)) + 1
    cap = MAX_M[k]
    return next((m for m in SMOOTH_M if m >= min(need, cap)), cap), need


@functools.lru_cache(maxsize=256)
def _probe_nodes(act: Activation, K: float, k: int, tol: float) -> int:
    s = act.numpy
    probes = (lambda z: s(z) ** 4, lambda z: s(z) ** 2 * z**4)[: 2 if k <= 2 else 1]
    exact = [float(expect1d(F, np.array([K]))[0]) for F in probes]
    for M in SMOOTH_M:
        x = np.linspace(-_TRUNC[k], _TRUNC[k], M)
        w = np.exp(-0.5 * x * x)
        w /= w.sum()
        z = math.sqrt(K) * x
        errs = [abs(float(np.sum(w * F(z))) - e) / max(abs(e), 1e-300) for F, e in zip(probes, exact, strict=True)]
        if max(errs) <= tol:
            return M
    return SMOOTH_M[-1] + 1


def _kink_panels(act: Activation, k: int, K_max: float, resolution: float) -> tuple[int, int]:
    P, m = _KINK_RULE[k]
    if act.family not in _SCALE_FREE:  # smooth pieces vary on the scale 1 in z, i.e. 1/√K in ξ
        P = int(math.ceil(P * max(1.0, math.sqrt(max(K_max, 1.0)) / 2.0)))
    return int(math.ceil(P * resolution)), m


def batched_rule(act: Activation, k: int, K_max: float, resolution: float = 1.0, tol: float | None = None):
    """The static rule used for k variables up to variance K_max: (rule, capped) with rule = ("trap", M) or
    ("gl", P, m); ``capped`` is True when the smooth rule needed more than MAX_M[k] nodes (accuracy below tol)."""
    if act.breakpoints:
        return ("gl",) + _kink_panels(act, k, K_max, resolution), False
    M, need = smooth_rule(act, K_max, k, resolution, tol)
    return ("trap", M), need > MAX_M[k]


def _factor_fns(act: Activation, derivs: tuple[int, ...]):
    return [(d, derivs.count(d), act.fn if d == 0 else act.derivative(d)) for d in sorted(set(derivs))]


@functools.lru_cache(maxsize=128)
def _program(act: Activation, terms: tuple, k: int, rule: tuple):
    """jit: L (B, k, k) lower-triangular → (B, len(terms)); terms[t] = ((derivs_a, q_a) for a in range(k)).

    Variables are integrated in order ξ_0 (outer) … ξ_{k−1} (inner); z_a = Σ_{l≤a} L_al ξ_l, so factor a
    is evaluated on the grid of dims 0..a only.
    """
    kinks = act.breakpoints
    T = _TRUNC[k]
    if rule[0] == "trap":
        M = rule[1]
        x0 = np.linspace(-T, T, M)
        w0 = np.exp(-0.5 * x0 * x0) / math.sqrt(2 * math.pi)
        w0 = w0 / w0.sum()
    else:
        P, m = rule[1], rule[2]
        t, wt = np.polynomial.legendre.leggauss(m)
        base = np.linspace(-T, T, P + 1)

    closed = act.family == "scale_invariant" and k >= 2 and all(tm[k - 1] == ((0,), 0) for tm in terms)
    kq = k - 1 if closed else k  # dimensions integrated by quadrature
    if rule[0] == "trap" and not closed and all(term_parity(act, tm) == 1 for tm in terms):
        # every integrand is even under ξ → −ξ (z = Lξ flips sign exactly): sum the outer dimension over
        # ξ_0 ≥ 0 only, doubling the weights off the centre node — half the grid, the same sum up to rounding
        c = M // 2  # the trapezoid nodes are symmetric and M is odd: x0[c] = 0
        x0_outer, w0_outer = x0[c:], np.concatenate([w0[c : c + 1], 2.0 * w0[c + 1 :]])
    elif rule[0] == "trap":
        x0_outer, w0_outer = x0, w0
    fns: dict = {}
    for tm in terms:
        for derivs, _ in tm:
            for d, _, f in _factor_fns(act, derivs):
                fns.setdefault(d, f)

    def nodes(L):
        xs, ws = [], []
        for j in range(kq):
            if rule[0] == "trap":
                xj, wj = (x0_outer, w0_outer) if j == 0 else (x0, w0)
                xs.append(jnp.asarray(xj).reshape((1,) * j + (-1,)))
                ws.append(jnp.asarray(wj).reshape((1,) * j + (-1,)))
                continue
            mu: Any = 0.0
            for l in range(j):
                mu = mu + L[j, l] * _expand(xs[l], j)
            mu = jnp.broadcast_to(jnp.asarray(mu), xs[j - 1].shape if j else ())
            shape = mu.shape
            splits = [jnp.clip((c - mu) / L[j, j], -T, T) for c in kinks]
            edges = jnp.broadcast_to(jnp.asarray(base), shape + (P + 1,))
            if splits:
                edges = jnp.sort(jnp.concatenate([edges, jnp.stack(splits, -1)], -1), -1)
            a, b = edges[..., :-1], edges[..., 1:]
            half = 0.5 * (b - a)
            x = (0.5 * (a + b))[..., None] + half[..., None] * jnp.asarray(t)
            w = half[..., None] * jnp.asarray(wt) * jnp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
            xs.append(x.reshape(shape + (-1,)))
            ws.append(w.reshape(shape + (-1,)))
        return xs, ws

    def inner(L, xs):
        a = k - 1
        mu: Any = 0.0
        for l in range(a):
            mu = mu + L[a, l] * _expand(xs[l], a)
        sd = L[a, a]
        u = mu / sd
        smooth = mu * jax.scipy.special.ndtr(u) + sd * jnp.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)
        assert act.a_plus is not None and act.a_minus is not None  # closed: a scale-invariant σ
        return act.a_minus * mu + (act.a_plus - act.a_minus) * smooth

    def single(L):
        xs, ws = nodes(L)
        zs = []
        for a in range(kq):
            z = 0.0
            for l in range(a + 1):
                z = z + L[a, l] * _expand(xs[l], a + 1)
            zs.append(z)
        s = {}  # (a, d) → σ^{(d)}(z_a), evaluated once
        S_in = inner(L, xs) if closed else None
        out: list[Any] = []
        # Partial sums are shared between terms with the same factors on dims a..kq−1 (a suffix trie): the
        # M^k-point innermost sums are done once per distinct innermost factor, not once per term — the
        # same operations in the same order, so every term's value is unchanged.
        partial: dict = {}
        for tm in terms:
            acc = S_in
            for a in reversed(range(kq)):
                key = tm[a:kq]
                if key in partial:
                    acc = partial[key]
                    continue
                derivs, q = tm[a]
                f = ws[a]
                for d in sorted(set(derivs)):
                    if (a, d) not in s:
                        s[(a, d)] = fns[d](zs[a])
                    f = f * s[(a, d)] ** derivs.count(d)
                if q:
                    f = f * zs[a] ** q
                if acc is not None:
                    f = f * acc
                acc = jnp.sum(f, axis=-1)
                partial[key] = acc
            out.append(acc)
        return jnp.stack(out)

    def run(Ls):
        return jax.lax.map(single, Ls, batch_size=_batch_size(kq, rule))

    return jax.jit(run)


@functools.lru_cache(maxsize=64)
def activation_parity(act: Activation) -> int:
    """+1 if σ(−z) = σ(z), −1 if σ(−z) = −σ(z) bit for bit on a probe grid (tanh, erf, sin), else 0.

    Only for the package's own smooth activations (a custom σ is never assumed symmetric)."""
    if act.custom or act.breakpoints:
        return 0
    z = np.concatenate([np.linspace(1e-3, 12.0, 241), [0.1234567, 0.7071, 1.9e-7, 3.3, 29.5]])
    with x64():
        f = np.asarray(act.fn(jnp.asarray(z)))
        g = np.asarray(act.fn(jnp.asarray(-z)))
    if not (np.all(np.isfinite(f)) and np.all(np.isfinite(g))):
        return 0
    if np.array_equal(g, -f):
        return -1
    if np.array_equal(g, f):
        return 1
    return 0


def term_parity(act: Activation, tm: tuple) -> int:
    """Parity of Π_a z_a^{q_a} Π_d σ^{(d)}(z_a) under z → −z (σ^{(d)} has parity p·(−1)^d); 0 if σ has none."""
    p = activation_parity(act)
    if p == 0:
        return 0
    sign = 1
    for derivs, q in tm:
        sign *= (-1) ** q
        for d in derivs:
            sign *= p * (-1) ** d
    return sign


def _batch_size(k: int, rule: tuple) -> int:
    n = rule[1] if rule[0] == "trap" else (rule[1] + 2) * rule[2]
    return int(max(1, min(64, 4_000_000 // max(1, n**k))))


def _expand(x, nd: int):
    x = jnp.asarray(x)
    return x.reshape(x.shape + (1,) * (nd - x.ndim))


def _cholesky(K: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of K + jitter·max(diag)·I (B, k, k): every block positive definite."""
    k = K.shape[-1]
    scale = np.maximum(np.max(np.diagonal(K, axis1=-2, axis2=-1), axis=-1), 1e-300)
    Kj = K + (_JITTER * scale)[:, None, None] * np.eye(k)
    return np.linalg.cholesky(Kj)


def _norm_terms(terms) -> tuple:
    return tuple(tuple((tuple(sorted(int(d) for d in derivs)), int(q)) for derivs, q in tm) for tm in terms)


def run_rule(act: Activation, terms: tuple, K: np.ndarray, rule: tuple) -> np.ndarray:
    """Evaluate normalised ``terms`` on K (B, k, k) with a given static rule → (B, len(terms))."""
    B, k = K.shape[0], K.shape[-1]
    if B == 0:
        return np.zeros((0, len(terms)))
    L = _cholesky(K)
    chunk = _chunk_rows(k, rule)
    if B <= chunk:  # pad to a power of two: few compiled shapes, one call
        Bp = chunk = 1 << max(0, (B - 1).bit_length())
    else:  # pad to a multiple of one fixed chunk (70 rows → 80, not 128: padded rows cost as much as real ones)
        Bp = -(-B // chunk) * chunk
    Lp = np.concatenate([L, np.broadcast_to(np.eye(k), (Bp - B, k, k))]) if Bp > B else L
    prog = _program(act, terms, k, rule)
    with x64():
        out = np.concatenate([np.array(prog(jnp.asarray(Lp[i : i + chunk]))) for i in range(0, Bp, chunk)])
    return out[:B]


_CHUNK_MIN = 16  # rows per jitted call above which a batch is cut into fixed chunks (≤ 1/16 + padding waste)


def _chunk_rows(k: int, rule: tuple) -> int:
    """Rows per jitted call for large batches: a power of two ≥ the lax.map batch and ≥ _CHUNK_MIN."""
    b = max(_batch_size(k, rule), _batch_size(max(k - 1, 1), rule))  # k − 1: the ReLU family's closed inner dim
    return max(_CHUNK_MIN, 1 << max(0, (b - 1).bit_length()))


def product_expect(act, terms, K, *, resolution: float = 1.0, tol: float | None = None) -> np.ndarray:
    """⟨Π_a z_a^{q_a} Π_{d ∈ derivs_a} σ^{(d)}(z_a)⟩ for z ~ N(0, K), K (B, k, k), k ≤ 4 → (B, len(terms)).

    ``terms``: sequence of per-variable tuples ((derivs_0, q_0), …, (derivs_{k−1}, q_{k−1})), e.g.
    (((0, 0), 1), ((0,), 0)) = ⟨z_0 σ(z_0)² σ(z_1)⟩. ``resolution`` scales the node density; ``tol`` the
    smooth rule's accuracy target (default TOL[k]). Unvalidated (the engine validates); float64.
    """
    act = _activation(act)
    K = np.asarray(K, dtype=np.float64)
    terms = _norm_terms(terms)
    k = K.shape[-1]
    if K.shape[0] == 0:
        return np.zeros((0, len(terms)))
    K_max = float(np.max(np.diagonal(K, axis1=-2, axis2=-1)))
    rule, capped = batched_rule(act, k, K_max, resolution, tol)
    if capped:
        warnings.warn(
            f"{act!r} at K = {K_max:.3g} needs more than {MAX_M[k]} trapezoid nodes per dimension for {k}-variable "
            f"integrals; using {rule[1]} (accuracy below the {TOL[k] if tol is None else tol:.0e} target).",
            stacklevel=2,
        )
    return run_rule(act, terms, K, rule)
