"""Closed-form Gaussian expectations ⟨Π_a g_a(z_a)⟩_K for the activation families that have them.

Each factor is g_a(z) = z^{p_a} Π_d σ^{(d)}(z) (see :class:`deepeft.gaussian.engine.Factor`).
Covariances are passed as an *accessor* ``Kl[a][b]`` (arrays that broadcast together), so the
same formula serves a batch of k×k matrices (``Kl[a][b] = K[..., a, b]``) and the Gram pieces
of a two-point map over N×N2 input pairs (``Kaa[:, None]``, ``Kbb[None, :]``, ``Kab``).
``xp`` is ``numpy`` or ``jax.numpy`` (the kernel recursions jit these formulas).

Families (``Activation.family``) and what is closed here:
* ``"monomial"`` and linear σ — Wick/Isserlis moments (1.45), any k and powers;
* ``"sin"`` — σ^{(d)}(z) = sin(z + dπ/2) = Im e^{i(z + dπ/2)}: ⟨z^p e^{iω·z}⟩ = e^{−½ωᵀKω}⟨(z + iKω)^p⟩;
* ``"erf"`` — σ^{(d≥1)} = (2/√π)(−1)^{d−1} H_{d−1}(z) e^{−z²}; the Gaussians re-weight K → (I + 2KΓ)⁻¹K,
  then ⟨erf erf⟩_K' = (2/π) arcsin(2K'_ab/√((1 + 2K'_aa)(1 + 2K'_bb))) or Wick moments;
* ``"scale_invariant"`` (2.14) and ``"step"`` (2.9) — g(z) = z^q [c₊θ(z) + c₋θ(−z)]: orthant moments,
  any q for k = 1; q ≤ 1 for k = 2 (arc-cosine kernels of order 0 and 1, book (5.158)–(5.161)).

Zero-variance variables must be removed by the caller (the engine does) — except for k = 1 and
the two-point maps, whose callers patch those rows. Returns ``None`` where no closed form applies.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = ["JAX_XP", "closed_form", "fast_arcsin", "has_closed_form", "gaussian_moment", "poly_expect"]

_SQRT_PI = math.sqrt(math.pi)
_SQRT_2PI = math.sqrt(2.0 * math.pi)


# ----------------------------------------------------------------------------------------------
# Wick moments (1.45) with an optional (complex) mean, by Stein's recursion
#   E[z_a z^m] = μ_a E[z^m] + Σ_b K_ab m_b E[z^{m − e_b}].
# ----------------------------------------------------------------------------------------------
def gaussian_moment(Kl, n, mean=None):
    """E[Π_a z_a^{n_a}] for z ~ N(mean, K); ``Kl`` accessor, ``mean`` list of arrays or None."""
    return _moment_fn(Kl, mean)(tuple(int(v) for v in n))


def _moment_fn(Kl, mean):
    cache: dict = {}

    def M(n):
        if n in cache:
            return cache[n]
        if not any(n):
            r = 1.0
        else:
            a = next(i for i, v in enumerate(n) if v)
            m = list(n)
            m[a] -= 1
            r = mean[a] * M(tuple(m)) if mean is not None else 0.0
            for b, nb in enumerate(m):
                if nb:
                    mm = list(m)
                    mm[b] -= 1
                    r = r + nb * Kl[a][b] * M(tuple(mm))
        cache[n] = r
        return r

    return M


def poly_expect(Kl, polys, mean=None):
    """E[Π_a P_a(z_a)], P_a given by ascending power-series coefficients."""
    M = _moment_fn(Kl, mean)
    total = 0.0
    nz = [[(j, c) for j, c in enumerate(p) if c != 0] for p in polys]
    for combo in itertools.product(*nz):
        coef = 1.0
        for _, c in combo:
            coef = coef * c
        total = total + coef * M(tuple(j for j, _ in combo))
    return total


def _monomial(power: int) -> np.ndarray:
    p = np.zeros(power + 1)
    p[power] = 1.0
    return p


# ----------------------------------------------------------------------------------------------
# Per-family representation of one factor
# ----------------------------------------------------------------------------------------------
def _piecewise_rep(act, f):
    """g(z) = z^q [c₊θ(z) + c₋θ(−z)] for scale-invariant (2.14) and step (2.9) σ."""
    q, cp, cm = int(f.power), 1.0, 1.0
    for d in f.derivs:
        if act.family == "scale_invariant":
            if d == 0:
                cp, cm, q = cp * act.a_plus, cm * act.a_minus, q + 1
            elif d == 1:
                cp, cm = cp * act.a_plus, cm * act.a_minus
            else:
                cp = cm = 0.0
        else:  # step: σ = θ(z); σ^{(d≥1)} = 0 (the δ of the jump is not represented)
            if d == 0:
                cm = 0.0
            else:
                cp = cm = 0.0
    return q, cp, cm


def _poly_rep(act, f):
    """Monomial σ = z^m (or linear σ = a z): g(z) = c z^q as a coefficient array."""
    if act.family == "monomial":
        m = int(act.param_dict["power"])
        c, q = 1.0, int(f.power)
        for d in f.derivs:
            if d > m:
                return np.zeros(1)
            c *= math.factorial(m) / math.factorial(m - d)
            q += m - d
        return c * _monomial(q)
    q, cp, cm = _piecewise_rep(act, f)
    return cp * _monomial(q) if cp == cm else None


def _erf_rep(f):
    """(number of erf factors, number of e^{−z²} factors, polynomial part) of one erf factor."""
    n_erf = sum(1 for d in f.derivs if d == 0)
    gamma = sum(1 for d in f.derivs if d >= 1)
    poly = _monomial(int(f.power))
    for d in f.derivs:
        if d >= 1:
            h = np.polynomial.hermite.herm2poly(_monomial(d - 1))  # physicists' H_{d−1}
            poly = np.polynomial.polynomial.polymul(poly, (2.0 / _SQRT_PI) * (-1) ** (d - 1) * h)
    return n_erf, gamma, poly


def _sin_rep(f):
    """Π_d sin(z + dπ/2) = Σ_ω c_ω e^{iωz} (dict ω → c) and the power p."""
    terms = {0: 1.0 + 0j}
    for d in f.derivs:
        new: dict = {}
        for w, c in terms.items():
            for s in (1, -1):
                cc = c * s * np.exp(1j * s * d * np.pi / 2) / 2j
                new[w + s] = new.get(w + s, 0.0) + cc
        terms = {w: c for w, c in new.items() if abs(c) > 1e-300}
    return terms, int(f.power)


# ----------------------------------------------------------------------------------------------
# Closed forms per family
# ----------------------------------------------------------------------------------------------
def _half_moment(q: int) -> float:
    """E[x^q θ(x)] for x ~ N(0, 1): 2^{q/2} Γ((q+1)/2) / (2√π)."""
    return 2.0 ** (q / 2) * math.gamma((q + 1) / 2) / (2.0 * _SQRT_PI)


def _orthant_pp(q1, q2, c, e, xp):
    """E[z1^{q1} z2^{q2} θ(z1)θ(z2)] for (q1, q2) ≤ 1 and correlation sign e = ±1 applied to z2.

    ``c`` = (s1, s2, r, arcsin r, s1 s2, √(K11 K22 − K12²), K12) from :func:`_correlation`.
    Arc-cosine kernels: order 0 (π − ψ)/2π = ¼ + arcsin(r)/2π; order 1 (5.158)
    s1 s2 (sin ψ + (π − ψ)cos ψ)/2π = (√det + (π/2 + arcsin r) K12)/2π; mixed E[z1 θθ] = s1 (1 + r)/(2√(2π)).
    """
    s1, s2, r, asr, _, sdet, k12 = c
    if (q1, q2) == (0, 0):
        return 0.25 + (e / (2.0 * np.pi)) * asr
    if (q1, q2) == (1, 0):
        return s1 * (1.0 + e * r) / (2.0 * _SQRT_2PI)
    if (q1, q2) == (0, 1):
        return s2 * (1.0 + e * r) / (2.0 * _SQRT_2PI)
    return (sdet + (0.5 * np.pi + e * asr) * (e * k12)) / (2.0 * np.pi)


def _correlation(Kl, xp, cache):
    """(s1, s2, r, arcsin r, s1 s2, √det, K12) of a pair, computed once per accessor (``cache``)."""
    if cache is not None and "r" in cache:
        return cache["r"]
    s1, s2 = xp.sqrt(Kl[0][0]), xp.sqrt(Kl[1][1])
    den = s1 * s2
    k12 = xp.clip(Kl[0][1], -den, den)
    r = k12 / xp.where(den > 0, den, 1.0)
    # sin ψ = √((1 − r)(1 + r)): 1 − r is exact near r = 1, so sin ψ stays consistent with arcsin r
    # (√(den² − K12²) would cancel catastrophically and break the ψ-cancellation in (5.158)).
    sdet = den * xp.sqrt(xp.maximum((1.0 - r) * (1.0 + r), 0.0))
    out = (s1, s2, r, xp.arcsin(r), den, sdet, k12)
    if cache is not None:
        cache["r"] = out
    return out


def _piecewise(act, factors, Kl, xp, cache=None):
    reps = [_piecewise_rep(act, f) for f in factors]
    if all(cp == cm for _, cp, cm in reps):
        return poly_expect(Kl, [cp * _monomial(q) for q, cp, _ in reps])
    k = len(reps)
    if k == 1:
        q, cp, cm = reps[0]
        return (cp + cm * (-1) ** q) * _half_moment(q) * Kl[0][0] ** (q / 2)
    if k == 2 and all(q <= 1 for q, _, _ in reps):
        c = _correlation(Kl, xp, cache)
        (q1, p1, m1), (q2, p2, m2) = reps
        total = None
        for e1, c1 in ((1, p1), (-1, m1)):
            for e2, c2 in ((1, p2), (-1, m2)):
                if c1 == 0 or c2 == 0:
                    continue
                coef = c1 * c2 * (e1**q1) * (e2**q2)
                # θ(e1 z1)θ(e2 z2): flip signs so both are positive orthants (correlation e1 e2 r)
                term = _orthant_pp(q1, q2, c, e1 * e2, xp)
                term = term if coef == 1 else coef * term
                total = term if total is None else total + term
        return 0.0 if total is None else total
    return None


def _reweight(Kl, gammas, xp):
    """K' = (I + 2KΓ)⁻¹K and det(I + 2KΓ): ⟨P e^{−zᵀΓz}⟩_K = det^{−1/2} ⟨P⟩_{K'}."""
    k = len(gammas)
    if k == 1:
        g = gammas[0]
        det = 1.0 + 2.0 * g * Kl[0][0]
        return [[Kl[0][0] / det]], det
    if k == 2:
        ga, gb = gammas
        a, b, c = Kl[0][0], Kl[1][1], Kl[0][1]
        det = (1.0 + 2.0 * ga * a) * (1.0 + 2.0 * gb * b) - 4.0 * ga * gb * c * c
        kaa = (a * (1.0 + 2.0 * gb * b) - 2.0 * gb * c * c) / det
        kbb = (b * (1.0 + 2.0 * ga * a) - 2.0 * ga * c * c) / det
        kab = c / det
        return [[kaa, kab], [kab, kbb]], det
    K = xp.stack([xp.stack(xp.broadcast_arrays(*row), -1) for row in Kl], -2)
    A = xp.eye(k) + 2.0 * K * xp.asarray(gammas, dtype=float)
    Kp = xp.linalg.solve(A, K)
    return [[Kp[..., a, b] for b in range(k)] for a in range(k)], xp.linalg.det(A)


def _erf(factors, Kl, xp):
    reps = [_erf_rep(f) for f in factors]
    n_erf = [r[0] for r in reps]
    gammas = [float(r[1]) for r in reps]
    polys = [r[2] for r in reps]
    total = sum(n_erf)
    constant = all(len(np.trim_zeros(p, "b")) <= 1 for p in polys)
    if any(gammas) and total == 0 and constant and len(gammas) <= 2:
        # only the normalisation det(I + 2KΓ)^{−1/2} is needed (e.g. ⟨σ'σ'⟩ = (4/π)/√det)
        g = gammas + [0.0] * (2 - len(gammas))
        a = Kl[0][0]
        if len(gammas) == 1:
            det = 1.0 + 2.0 * g[0] * a
        else:
            b, c = Kl[1][1], Kl[0][1]
            det = (1.0 + 2.0 * g[0] * a) * (1.0 + 2.0 * g[1] * b) - 4.0 * g[0] * g[1] * c * c
        return float(np.prod([p[0] for p in polys])) / xp.sqrt(det)
    if any(gammas):
        Kl, det = _reweight(Kl, gammas, xp)
        pref = 1.0 / xp.sqrt(det)
    else:
        pref = 1.0
    if total == 0:
        return pref * poly_expect(Kl, polys)
    if total > 2 or any(len(np.trim_zeros(p, "b")) > 1 for p in polys):
        return None
    const = float(np.prod([p[0] for p in polys]))
    if total == 1 or const == 0.0:
        return pref * 0.0 * Kl[0][0]
    a, b = [i for i, n in enumerate(n_erf) for _ in range(n)]
    if a == b:
        arg = 2.0 * Kl[a][a] / (1.0 + 2.0 * Kl[a][a])
    else:  # 1/√(1 + 2K) per variable: for a two-point map these are vectors, not N×N square roots
        # (the outer product first, one rounding: exactly symmetric under swapping the two inputs)
        arg = (2.0 * Kl[a][b]) * ((1.0 / xp.sqrt(1.0 + 2.0 * Kl[a][a])) * (1.0 / xp.sqrt(1.0 + 2.0 * Kl[b][b])))
    return pref * const * (2.0 / np.pi) * xp.arcsin(xp.clip(arg, -1.0, 1.0))


def _sin(factors, Kl, xp):
    reps = [_sin_rep(f) for f in factors]
    powers = [p for _, p in reps]
    k = len(reps)
    total = 0.0
    for combo in itertools.product(*[list(t.items()) for t, _ in reps]):
        w = [om for om, _ in combo]
        c = complex(np.prod([cc for _, cc in combo]))
        if c == 0:
            continue
        # ωᵀKω as (Σ_a ω_a² K_aa) + (Σ_{a<b} 2ω_aω_b K_ab): for k = 2 this is exactly symmetric
        # under swapping the two inputs, so two-point maps come out exactly symmetric.
        Q = 0.0
        for a in range(k):
            if w[a]:
                Q = Q + w[a] * w[a] * Kl[a][a]
        for a in range(k):
            for b in range(a + 1, k):
                if w[a] and w[b]:
                    Q = Q + 2 * w[a] * w[b] * Kl[a][b]
        term = c * xp.exp(-0.5 * Q)
        if any(powers):
            mu = [1j * sum(Kl[a][b] * w[b] for b in range(k) if w[b]) for a in range(k)]
            term = term * gaussian_moment(Kl, powers, mu)
        total = total + term
    return xp.real(total) if not isinstance(total, float) else total


def has_closed_form(act, factors) -> bool:
    """Whether :func:`closed_form` returns a value for these factors (shape-independent)."""
    fam = act.family
    if fam in ("monomial", "sin"):
        return True
    if fam == "erf":
        reps = [_erf_rep(f) for f in factors]
        total = sum(r[0] for r in reps)
        return total == 0 or (total <= 2 and all(len(np.trim_zeros(r[2], "b")) <= 1 for r in reps))
    if fam in ("scale_invariant", "step"):
        reps = [_piecewise_rep(act, f) for f in factors]
        return (
            all(cp == cm for _, cp, cm in reps)
            or len(reps) == 1
            or (len(reps) == 2 and all(q <= 1 for q, _, _ in reps))
        )
    return False


def closed_form(act, factors, Kl, xp=np, cache=None):
    """⟨Π_a g_a(z_a)⟩_K in closed form, or ``None`` when the family/factors have none.

    ``Kl`` is the covariance accessor (all variables with positive variance for k ≥ 2);
    ``cache`` (a dict) shares the correlation and its arcsine between calls on the same ``Kl``.
    """
    if not has_closed_form(act, factors):
        return None
    fam = act.family
    if fam == "monomial" or (fam == "scale_invariant" and act.a_plus == act.a_minus):
        val = poly_expect(Kl, [_poly_rep(act, f) for f in factors])
    elif fam in ("scale_invariant", "step"):
        val = _piecewise(act, factors, Kl, xp, cache)
    elif fam == "erf":
        val = _erf(factors, Kl, xp)
    else:
        val = _sin(factors, Kl, xp)
    if val is None:
        return None
    shape = np.broadcast_shapes(*[np.shape(e) for row in Kl for e in row])
    return val if np.shape(val) == shape else xp.broadcast_to(val, shape)  # constants → batch shape


# ----------------------------------------------------------------------------------------------
# jax.numpy with a fast float64 arcsin, for closed forms traced inside the kernel recursions.
# ----------------------------------------------------------------------------------------------
# Cephes asin (rational minimax fits, ≤ 1 ulp from np.arcsin on [−1, 1]); XLA's own CPU arcsin goes
# through atan2 and is ~10× slower, and it dominates the erf/ReLU layer update.
_ASIN_P = (4.253011369004428248960e-3, -6.019598008014123785661e-1, 5.444622390564711410273e0,
           -1.626247967210700244449e1, 1.956261983317594739197e1, -8.198089802484824371615e0)  # fmt: skip
_ASIN_Q = (1.0, -1.474091372988853791896e1, 7.049610280856842141659e1, -1.471791292232726029859e2,
           1.395105614657485689735e2, -4.918853881490881290097e1)  # fmt: skip
_ASIN_R = (2.967721961301243206100e-3, -5.634242780008963776856e-1, 6.968710824104713396794e0,
           -2.556901049652824852289e1, 2.853665548261061424989e1)  # fmt: skip
_ASIN_S = (1.0, -2.194779531642920639778e1, 1.470656354026814941758e2, -3.838770957603691357202e2,
           3.424398657913078477438e2)  # fmt: skip
_PIO4, _PIO2_LO = 0.78539816339744830962, 6.123233995736765886130e-17


def _horner1(c, x):
    r = c[0]
    for v in c[1:]:
        r = r * x + v
    return r


def fast_arcsin(x):
    """arcsin x in float64 for JAX: x + x³P(x²)/Q(x²) for |x| ≤ 0.625, else π/2 − √(2w)(1 + wR(w)/S(w)), w = 1 − |x|."""
    import jax.numpy as jnp

    a = jnp.abs(x)
    zz = a * a
    small = a + a * (zz * _horner1(_ASIN_P, zz) / _horner1(_ASIN_Q, zz))
    w = 1.0 - a
    p = w * _horner1(_ASIN_R, w) / _horner1(_ASIN_S, w)
    s = jnp.sqrt(w + w)
    big = ((_PIO4 - s) - (s * p - _PIO2_LO)) + _PIO4
    return jnp.sign(x) * jnp.where(a > 0.625, big, small)


class _JnpFastArcsin:
    """``jax.numpy`` for the closed forms, with :func:`fast_arcsin`."""

    arcsin = staticmethod(fast_arcsin)

    def __getattr__(self, name):
        import jax.numpy as jnp

        return getattr(jnp, name)


JAX_XP = _JnpFastArcsin()  # pass as ``xp`` to trace a closed form with the fast arcsin
