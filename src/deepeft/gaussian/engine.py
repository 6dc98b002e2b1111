"""The Gaussian expectation engine: ⟨Π_a g_a(z_a)⟩_K for k ≤ 4 correlated variables  (book (4.25)).

This is the ONE module that decides how a Gaussian integral is computed (see docs/engine.md):
zero-variance variables are fixed at 0; then closed forms (``closed_forms``) where the activation
family admits one; else quadrature split at kinks: for k ≥ 3 and rtol ≥ 1e-9 the batched, jitted
product rule (``batched``), otherwise nested Gauss–Legendre (``quadrature``, k ≤ 4);
Monte Carlo with a standard error (``montecarlo``) only on request or for k > 4. Two-point maps
over many inputs (``two_point``) use closed forms or the Hermite/Mehler series (``mehler``) with a
quadrature fallback for entries where the series does not converge.

Coincident samples must be merged by the caller (marginalization, book §4.4): K is the
covariance of the distinct variables; several activations on one sample form one :class:`Factor`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import warnings

import numpy as np

from .. import _validate as v
from .._x64 import x64
from ..activations import Activation, require_smooth
from ..activations import activation as _activation
from ..errors import DeepEFTInputError, suggest
from . import batched, closed_forms, mehler, montecarlo, quadrature
from .batched import activation_parity
from .gauss1d import expect1d, fold_even, gauss1d_nodes, gauss1d_nodes_jax

__all__ = [
    "FUSED_T",
    "FUSED_UNIT",
    "Factor",
    "MehlerPlan",
    "activation_parity",
    "batched_expect",
    "breakpoints",
    "closed_two_point_jax",
    "expect",
    "expect1d",
    "fold_even",
    "gauss1d_nodes",
    "gauss1d_nodes_jax",
    "fused_mode",
    "mehler_plan",
    "mehler_two_point_jax",
    "one_point_core",
    "one_point_trajectory",
    "rho_max",
    "two_point",
    "two_point_core",
    "two_point_maps",
]

_METHODS = ("auto", "closed", "quadrature", "mc")
_TP_METHODS = ("auto", "closed", "mehler", "quadrature")
_EPS = 2.220446049250313e-16
_BATCHED_MIN_RTOL = 1e-9  # k >= 3 with rtol >= this: batched jitted product rule; tighter: nested quadrature


@dataclasses.dataclass(frozen=True)
class Factor:
    """One per-variable factor g(z) = z^power · Π_{d in derivs} σ^{(d)}(z).

    ``Factor((0,))`` = σ(z); ``Factor((1, 1))`` = σ'(z)²; ``Factor((0,), 2)`` = z²σ(z); ``Factor((), 1)`` = z.
    """

    derivs: tuple[int, ...] = (0,)
    power: int = 0

    def __post_init__(self):
        try:
            derivs = tuple(sorted(int(d) for d in self.derivs))
        except TypeError:
            raise DeepEFTInputError(f"Factor derivs must be a tuple of derivative orders, got {self.derivs!r}.") from None
        if any(d < 0 for d in derivs) or int(self.power) != self.power or self.power < 0:
            raise DeepEFTInputError(
                f"Factor needs derivative orders >= 0 and an integer power >= 0, got derivs={self.derivs}, "
                f"power={self.power}."
            )
        object.__setattr__(self, "derivs", derivs)
        object.__setattr__(self, "power", int(self.power))

    @classmethod
    def parse(cls, text: str) -> Factor:
        """``"z^2 s s'"`` → Factor((0, 1), 2): tokens ``z``, ``z^p``, ``s``/``σ`` with primes or ``s^(d)``."""
        derivs, power = [], 0
        for tok in text.replace("σ", "s").split():
            if m := re.fullmatch(r"z(?:\^(\d+))?", tok):
                power += int(m.group(1) or 1)
            elif m := re.fullmatch(r"s('*)", tok):
                derivs.append(len(m.group(1)))
            elif m := re.fullmatch(r"s\^\((\d+)\)", tok):
                derivs.append(int(m.group(1)))
            else:
                raise DeepEFTInputError(f"cannot parse factor token {tok!r}; use z, z^p, s, s', s'', s^(d).")
        return cls(tuple(derivs), power)

    def __str__(self):
        parts = ([f"z^{self.power}"] if self.power else []) + ["σ" + "'" * d for d in self.derivs]
        return " ".join(parts) or "1"

    def kinks(self, act: Activation) -> tuple[float, ...]:
        """Points where this factor is not smooth (the activation's kinks and jumps)."""
        return act.breakpoints if self.derivs else ()

    def numpy_fn(self, act: Activation):
        """g(z) as a float64 NumPy function."""

        def g(z):
            z = np.asarray(z, dtype=np.float64)
            out = z**self.power if self.power else np.ones_like(z)
            for d in sorted(set(self.derivs)):
                out = out * _eval(act, d, z) ** self.derivs.count(d)
            return out

        return g


def _eval(act: Activation, d: int, z: np.ndarray) -> np.ndarray:
    """σ^{(d)}(z) with the input padded to a power-of-two length (few jit shapes)."""
    flat = z.ravel()
    n = max(1024, 1 << int(np.ceil(np.log2(max(flat.size, 1)))))
    buf = np.zeros(n)
    buf[: flat.size] = flat
    return act.numpy(buf, d)[: flat.size].reshape(z.shape)


def _as_factors(factors) -> tuple[Factor, ...]:
    if isinstance(factors, Factor):
        return (factors,)
    if isinstance(factors, str):
        return (Factor.parse(factors),)
    try:
        out = tuple(Factor.parse(f) if isinstance(f, str) else f for f in factors)
    except TypeError:
        raise DeepEFTInputError(f"factors must be a Factor or a tuple of Factors, got {factors!r}.") from None
    if not out or not all(isinstance(f, Factor) for f in out):
        raise DeepEFTInputError("factors must be a non-empty tuple of Factor objects (one per variable).")
    return out


def _check_method(method, allowed):
    if method not in allowed:
        raise DeepEFTInputError(f"unknown method {method!r}.{suggest(str(method), allowed)} Use one of {allowed}.")


def _accessor(K: np.ndarray):
    k = K.shape[-1]
    return [[K[..., a, b] for b in range(k)] for a in range(k)]


def expect(
    act,
    factors,
    K,
    *,
    method: str = "auto",
    rtol: float = 1e-12,
    return_error: bool = False,
    n_samples: int = 1_000_000,
    seed: int = 0,
):
    """⟨Π_a g_a(z_a)⟩_K for z ~ N(0, K), K of shape (..., k, k); returns an array of shape (...).

    ``factors``: one :class:`Factor` per variable. ``method``: "auto" (closed form → quadrature →
    MC for k > 4), "closed", "quadrature" or "mc". Quadrature: for k ≥ 3 and rtol ≥ 1e-9 the batched
    jitted product rule (``batched``), else nested Gauss–Legendre (``quadrature``), see docs/engine.md. With ``return_error=True``
    returns (value, absolute error estimate). Float64 throughout.
    """
    act = _activation(act)
    fs = _as_factors(factors)
    _check_method(method, _METHODS)
    K = v.kernel_matrix(K, "K")
    k = len(fs)
    if K.shape[-1] != k:
        raise DeepEFTInputError(
            f"K has shape {K.shape}: its last two axes must be (k, k) with k = {k}, the number of factors."
        )
    rtol = v.finite_scalar(rtol, "rtol", minimum=0.0, strict=True)
    batch = K.shape[:-2]
    Kb = 0.5 * (K + np.swapaxes(K, -1, -2)).reshape(-1, k, k)
    if method == "mc" or (method == "auto" and k > 4):
        if method == "auto":
            warnings.warn(f"k = {k} > 4 variables: using Monte Carlo ({n_samples} samples).", stacklevel=2)
        val, err = _mc(act, fs, Kb, n_samples, seed)
    else:
        if k > 4 and method == "quadrature":
            raise DeepEFTInputError(f"nested quadrature supports k <= 4 variables, got k = {k}; use method='mc'.")
        val, err = _deterministic(act, fs, Kb, method, rtol)
    val, err = val.reshape(batch), err.reshape(batch)
    return (val, err) if return_error else val


def _mc(act, fs, Kb, n_samples, seed):
    n_samples = v.positive_int(n_samples, "n_samples", minimum=2)
    gs = [f.numpy_fn(act) for f in fs]

    def F(z):
        out = np.ones(z.shape[:-1])
        for a, g in enumerate(gs):
            out = out * g(z[..., a])
        return out

    return montecarlo.mc_expect(F, Kb, n_samples=n_samples, seed=int(seed))


def _deterministic(act, fs, Kb, method, rtol):
    """Fix zero-variance variables at 0, then closed form or nested quadrature per pattern."""
    B, k, _ = Kb.shape
    val, err = np.empty(B), np.empty(B)
    zero = np.diagonal(Kb, axis1=1, axis2=2) <= 0.0
    for pattern in np.unique(zero, axis=0):
        sel = np.nonzero(np.all(zero == pattern, axis=1))[0]
        keep = [a for a in range(k) if not pattern[a]]
        const = 1.0
        for a in range(k):
            if pattern[a]:
                const *= float(fs[a].numpy_fn(act)(np.zeros(1))[0])
        if not keep or const == 0.0:
            val[sel], err[sel] = const, 0.0
            continue
        sub = Kb[sel][:, keep][:, :, keep]
        v, e = _dispatch(act, tuple(fs[a] for a in keep), sub, method, rtol)
        val[sel], err[sel] = const * v, abs(const) * e
    return val, err


def _dispatch(act, fs, K, method, rtol):
    if method in ("auto", "closed"):
        if closed_forms.has_closed_form(act, fs):
            with x64():
                v = np.asarray(closed_forms.closed_form(act, fs, _accessor(K), xp=np), dtype=np.float64)
            v = np.broadcast_to(v, K.shape[:1]).copy()
            return v, 16 * _EPS * np.abs(v)
        if method == "closed":
            raise DeepEFTInputError(
                f"no closed form for ⟨{', '.join(map(str, fs))}⟩ with {act!r}; use method='auto' or 'quadrature'."
            )
    if len(fs) >= 3 and rtol >= _BATCHED_MIN_RTOL:
        return _batched(act, fs, K, rtol)
    return _nested(act, fs, K, rtol)


def _nested(act, fs, K, rtol):
    funcs = [f.numpy_fn(act) for f in fs]
    kinks = [f.kinks(act) for f in fs]
    return quadrature.nested_quadrature(funcs, kinks, K, rtol=rtol)


def _batched(act, fs, K, rtol):
    """k >= 3: the batched product rule (``batched``) on a ladder of static rules, starting one level
    below the rule whose 1-D probes meet 0.1·rtol; entries are refined until two successive levels agree
    to rtol relative to max(|value|, Π_a ⟨g_a²⟩^{1/2}) or the ladder ends. Returns the finest value and
    the last difference as the error estimate."""
    k = len(fs)
    K_max = float(np.max(np.diagonal(K, axis1=1, axis2=2)))
    rule, _ = batched.batched_rule(act, k, K_max, tol=min(batched.TOL[k], 0.1 * rtol))
    if rule[0] == "trap":
        Ms = [m for m in batched.SMOOTH_M if m <= batched.MAX_M[k]]
        i = Ms.index(rule[1])
        ladder: list[tuple] = [("trap", m) for m in Ms[max(i - 1, 0) : i + 3]]
    else:
        ladder = [(rule[0], rule[1], rule[2] + d) for d in (-2, 0, 2, 4)]
    terms = (tuple((f.derivs, f.power) for f in fs),)
    size = np.ones(K.shape[0])
    for a, f in enumerate(fs):  # natural size of the integrand (Hölder/Cauchy–Schwarz scale)
        g2 = Factor(f.derivs * 2, 2 * f.power).numpy_fn(act)
        size = size * np.sqrt(np.abs(expect1d(g2, K[:, a, a], f.kinks(act))))
    val = batched.run_rule(act, terms, K, ladder[0])[:, 0]
    err = np.full(val.shape, np.inf)
    todo = np.arange(K.shape[0])
    for r in ladder[1:]:
        cur = batched.run_rule(act, terms, K[todo], r)[:, 0]
        err[todo] = np.abs(cur - val[todo])
        val[todo] = cur
        todo = todo[~(err[todo] <= rtol * np.maximum(np.abs(cur), size[todo]))]
        if todo.size == 0:
            break
    return val, err


# ----------------------------------------------------------------------------------------------
# Two-point maps over many inputs
# ----------------------------------------------------------------------------------------------
def two_point(act, K, da: int = 0, db: int = 0, *, diag=None, method: str = "auto", rtol: float = 1e-12):
    """The matrix ⟨σ^{(da)}(z_α) σ^{(db)}(z_β)⟩_K for all pairs of inputs.

    ``K`` is the (N, N) covariance of N inputs; or, with ``diag=(K_aa, K_bb)`` (shapes (N,), (N2,)),
    the (N, N2) cross block of a Gram between two input sets.
    """
    return two_point_maps(act, K, ((da, db),), diag=diag, method=method, rtol=rtol)[0]


def two_point_maps(act, K, pairs=((0, 0), (1, 1)), *, diag=None, method: str = "auto", rtol: float = 1e-12):
    """Several two-point maps at once (tuple of matrices), sharing the Mehler coefficients."""
    act = _activation(act)
    _check_method(method, _TP_METHODS)
    pairs = tuple((int(a), int(b)) for a, b in pairs)
    if any(a < 0 or b < 0 for a, b in pairs):
        raise DeepEFTInputError(f"derivative orders must be >= 0, got {pairs}.")
    rtol = v.finite_scalar(rtol, "rtol", minimum=0.0, strict=True)
    if diag is None:
        K = v.kernel_matrix(K, "K", check_psd=False)
        if K.ndim != 2:
            raise DeepEFTInputError(f"K must be an (N, N) matrix, got shape {K.shape}.")
        Kab = 0.5 * (K + K.T)
        Kaa = Kbb = np.diagonal(Kab).copy()
    else:
        Kab = np.asarray(K, dtype=np.float64)
        Kaa, Kbb = (np.asarray(d, dtype=np.float64) for d in diag)
        if Kab.ndim != 2 or Kaa.shape != Kab.shape[:1] or Kbb.shape != Kab.shape[1:]:
            raise DeepEFTInputError(
                f"with diag=(K_aa, K_bb) the cross block must have shape (len(K_aa), len(K_bb)); got K "
                f"{Kab.shape}, K_aa {Kaa.shape}, K_bb {Kbb.shape}."
            )
        if not (np.all(np.isfinite(Kab)) and np.all(np.isfinite(Kaa)) and np.all(np.isfinite(Kbb))):
            raise DeepEFTInputError("K and diag must be finite.")
    # every pair (α, β) needs a PSD 2×2 covariance: K_αα, K_ββ >= 0 and |K_αβ| <= √(K_αα K_ββ)
    if np.any(Kaa < 0) or np.any(Kbb < 0):
        raise DeepEFTInputError("variances (the diagonal of K) must be >= 0.")
    if np.any(np.abs(Kab) > np.sqrt(np.outer(Kaa, Kbb)) * (1 + 1e-10) + 1e-300):
        raise DeepEFTInputError(
            "K violates |K_ab| <= sqrt(K_aa K_bb) for some pair: not a covariance (not positive semi-definite)."
        )
    if diag is None:
        return tuple(two_point_core(act, Kaa, Kaa, Kab, pairs, same=True, method=method, rtol=rtol))
    return tuple(two_point_core(act, Kaa, Kbb, Kab, pairs, same=False, method=method, rtol=rtol))


def two_point_core(act, Kaa, Kbb, Kab, pairs, *, same, method="auto", rtol=1e-12):
    """Unvalidated two-point maps (for the kernel recursions); ``same``: Kab is the square kernel of
    one input set, whose diagonal is then set by exact 1-D integrals."""
    out: list = [None] * len(pairs)
    series = []
    done_diag: set = set()
    Kl = [[Kaa[:, None], Kab], [Kab, Kbb[None, :]]]
    cache: dict = {}
    for i, (da, db) in enumerate(pairs):
        fs = (Factor((da,)), Factor((db,)))
        if method in ("auto", "closed") and closed_forms.has_closed_form(act, fs):
            with np.errstate(invalid="ignore", divide="ignore"):
                v = np.asarray(closed_forms.closed_form(act, fs, Kl, xp=np, cache=cache), dtype=np.float64)
            if v.shape != Kab.shape or not v.flags.writeable:
                v = np.array(np.broadcast_to(v, Kab.shape))
            out[i] = _patch_zero_variance(act, (da, db), Kaa, Kbb, v)
        elif method == "closed":
            raise DeepEFTInputError(f"no closed form for ⟨σ^({da}) σ^({db})⟩ with {act!r}; use method='auto'.")
        else:
            series.append(i)
    if series:
        sp = tuple(pairs[i] for i in series)
        exact_diag: dict = {}
        if method == "quadrature":
            res = [np.zeros(Kab.shape) for _ in sp]
            bad = np.ones(Kab.shape, dtype=bool)
        else:  # with ``same`` the diagonal is skipped here and set by exact 1-D integrals below
            res, bad, exact_diag = mehler.mehler_two_point(act, sp, Kaa, Kbb, Kab, same=same, rtol=0.1 * rtol)
        if same:
            np.fill_diagonal(bad, False)
        if np.any(bad):
            ia, ib = np.nonzero(np.triu(bad | bad.T) if same else bad)
            K2 = np.empty((ia.size, 2, 2))
            K2[:, 0, 0], K2[:, 1, 1], K2[:, 0, 1] = Kaa[ia], Kbb[ib], Kab[ia, ib]
            K2[:, 1, 0] = K2[:, 0, 1]
            for r, (da, db) in zip(res, sp, strict=True):
                v, _ = _deterministic(act, (Factor((da,)), Factor((db,))), K2, "quadrature", rtol)
                r[ia, ib] = v
                if same:  # mirror (⟨σ^{(a)}σ^{(b)}⟩ is symmetric for the maps used on one input set)
                    r[ib, ia] = v if da == db else _deterministic(act, (Factor((db,)), Factor((da,))), K2, "quadrature", rtol)[0]
        for i, r in zip(series, res, strict=True):
            out[i] = r
        for i, r in zip(series, res, strict=True):
            if same and pairs[i] in exact_diag:  # ⟨(σ^{(d)})²⟩ from the coefficient quadrature
                np.fill_diagonal(r, exact_diag[pairs[i]])
                done_diag.add(i)
    if same:
        for i, (da, db) in enumerate(pairs):
            if i not in done_diag:
                np.fill_diagonal(out[i], one_point_core(act, (da, db), Kaa, rtol))
    return out


def one_point_core(act, derivs, Kdiag, rtol: float = 1e-12) -> np.ndarray:
    """Unvalidated ⟨Π_d σ^{(d)}(z)⟩_K for every variance in ``Kdiag`` (shape (M,))."""
    v, _ = _deterministic(act, (Factor(tuple(derivs)),), np.asarray(Kdiag, dtype=np.float64)[:, None, None], "auto", rtol)
    return v


def _patch_zero_variance(act, pair, Kaa, Kbb, v):
    """Rows/columns with zero variance: z ≡ 0 there, so the map is σ^{(d)}(0) × a one-point function."""
    za, zb = Kaa <= 0, Kbb <= 0
    if np.any(za) or np.any(zb):
        da, db = pair
        ga = float(act.numpy(np.zeros(1), da)[0])
        gb = float(act.numpy(np.zeros(1), db)[0])
        v[za, :] = ga * one_point_core(act, (db,), Kbb)[None, :]
        v[:, zb] = one_point_core(act, (da,), Kaa)[:, None] * gb
        v[np.ix_(za, zb)] = ga * gb
    return v


# ----------------------------------------------------------------------------------------------
# Fused two-point maps: traceable pieces that a recursion composes inside its own jitted layer update
# (so that XLA fuses the maps with the update into one pass over the N×N array).
# ----------------------------------------------------------------------------------------------
FUSED_UNIT = 16  # Horner steps per fused pass of a Mehler plan (more spills registers: measured 2× slower)
FUSED_T = (mehler.MAX_DEGREE + 1,)  # coefficient length of a plan: one compiled update serves every degree


def breakpoints(act) -> tuple[float, ...]:
    """Sorted points where σ is not smooth (kinks ∪ jumps); every quadrature splits its panels there."""
    return _activation(act).breakpoints


def fused_mode(act, pairs) -> str | None:
    """How the maps ⟨σ^{(a)}σ^{(b)}⟩, (a, b) in ``pairs``, are fused: "closed" when every map has a
    closed form, "mehler" when none has, else None (use :func:`two_point_core`)."""
    closed = [closed_forms.has_closed_form(act, (Factor((a,)), Factor((b,)))) for a, b in pairs]
    return "closed" if all(closed) else ("mehler" if not any(closed) else None)


def closed_two_point_jax(act, pairs, Kaa, Kbb, Kab) -> tuple:
    """The closed-form maps ⟨σ^{(a)}(z_α)σ^{(b)}(z_β)⟩ as traceable JAX (float64 under x64), shape of Kab.

    Requires ``fused_mode(act, pairs) == "closed"`` and positive variances; diagonals are the caller's.
    """
    import jax.numpy as jnp

    Kl = [[Kaa[:, None], Kab], [Kab, Kbb[None, :]]]
    cache: dict = {}
    out = []
    for a, b in pairs:
        v = closed_forms.closed_form(act, (Factor((a,)), Factor((b,))), Kl, xp=closed_forms.JAX_XP, cache=cache)
        out.append(jnp.broadcast_to(v, Kab.shape))
    return tuple(out)


@dataclasses.dataclass(frozen=True, eq=False)
class MehlerPlan:
    """Coefficients of the Mehler series of the maps in ``pairs`` for one input set.

    ``A`` (maps, T, N), T in FUSED_T: coefficients, zero beyond the degree; ``n_blocks``: blocks of
    FUSED_UNIT coefficients that meet the truncation bound; ``diag[(d, d)]`` = ⟨(σ^{(d)})²⟩ at every K_αα (exact 1-D integrals).
    """

    A: np.ndarray
    n_blocks: int
    diag: dict


def mehler_plan(act, pairs, Kaa, rho_max: float, rtol: float = 1e-12) -> MehlerPlan | None:
    """The Mehler series plan for one input set with variances ``Kaa`` > 0 and max |ρ| = ``rho_max``;
    None where the truncation bound fails for some pair even at the largest degree (then use
    :func:`two_point_core`, which falls back to quadrature entrywise)."""
    A, _, Ds, coef, _ = mehler.series_plan(act, pairs, Kaa, Kaa, rho_max, rtol)
    if any(D is None for D in Ds):
        return None
    T = A.shape[1]
    Ap = np.zeros((A.shape[0], next(t for t in FUSED_T if t >= T), A.shape[2]))
    Ap[:, :T] = A
    diag = {(d, d): coef[("a", d)][1] for d in {d for p in pairs for d in p}}
    return MehlerPlan(Ap, -(-T // FUSED_UNIT), diag)


def mehler_two_point_jax(Kaa, Kab, A, n_blocks) -> tuple:
    """The Mehler series Σ_k A_kα A_kβ ρ^k of every planned map for one input set, as traceable JAX
    (diagonal left to the caller); ``A``, ``n_blocks`` from :func:`mehler_plan` (``n_blocks`` may be traced)."""
    return mehler.horner_sum(Kaa, Kaa, Kab, A, A, True, n_blocks, FUSED_UNIT)


def rho_max(Kaa, Kbb, Kab, same: bool) -> float:
    """max |K_αβ|/√(K_αα K_ββ) over the pairs (off the diagonal if ``same``)."""
    return mehler.rho_max_of(Kaa, Kbb, Kab, same)


def batched_expect(act, terms, K, *, resolution: float = 1.0, tol: float | None = None) -> np.ndarray:
    """⟨Π_a z_a^{q_a} Π_{d} σ^{(d)}(z_a)⟩ for many (B, k, k) covariances at once, k ≤ 4, by the batched
    jitted product rule (``batched``; the path :func:`expect` takes for k ≥ 3). ``terms``: sequence of
    per-variable tuples ((derivs_0, q_0), …); derivative orders d ≥ 0 (σ″, σ‴ … by autodiff, for smooth σ);
    ``tol``: the smooth rule's accuracy target (default ``batched.TOL[k]``); returns (B, len(terms))."""
    return batched.product_expect(act, terms, K, resolution=resolution, tol=tol)


# ----------------------------------------------------------------------------------------------
# One-point moments along a long (deep) single-input trajectory
# ----------------------------------------------------------------------------------------------
_TRAJECTORY_CHUNK = 1024  # variances per jitted call of the trajectory rule (cache-sized)
# Panels on x = z/√K ∈ [−12, 12] per unit of √K_max of a band: z-panels ≤ 2 wide, ≲ 1e-13 relative against expect1d
# for σ … σ‴ moments of tanh, GELU, SWISH, erf, sin, softplus at K = 1e-4 … 30 (tested; ≤ 4 wide gave 2e-7 at K = 30).
_PANELS_PER_SQRT_K = 12
_MIN_PANELS = 6
_BAND = 4.0  # variances below K_max/_BAND (deep K* = 0 layers) get their own, coarser rule


def _trajectory_terms(terms) -> tuple[tuple[tuple[int, ...], int], ...]:
    out = []
    for t in terms:
        if isinstance(t, Factor):
            out.append((t.derivs, t.power))
            continue
        try:
            out.append((tuple(sorted(int(d) for d in t)), 0))
        except TypeError:
            raise DeepEFTInputError(f"a trajectory term is a Factor or a tuple of derivative orders, got {t!r}.") from None
        if any(d < 0 for d in out[-1][0]):
            raise DeepEFTInputError(f"derivative orders must be >= 0, got {t!r}.")
    return tuple(out)


def one_point_trajectory(act, terms, K) -> np.ndarray:
    """⟨z^p Π_d σ^{(d)}(z)⟩_K for every variance K (M,) — e.g. K^{(ℓ)} of a single input through 10⁵ layers — and
    every term in ``terms``; returns (len(terms), M), float64.

    A term is a tuple of derivative orders (``(0, 0, 1, 1)`` = σσσ′σ′, p = 0) or a :class:`Factor` (``Factor((0, 1),
    1)`` = zσσ′). Orders ≥ 2 (σ″, σ‴, … by forward-mode autodiff) need a smooth activation: at a kink or jump they
    contain Dirac deltas (refused with :func:`deepeft.require_smooth`'s message).

    Closed forms where the activation family has them (as :func:`expect`); otherwise a composite Gauss–Legendre
    rule in x = z/√K (nodes of :func:`gauss1d_nodes` at the largest K of a band of variances — K > K_max/4 and
    the rest — z-panels ≤ 2 wide, error ≲ 1e-13) evaluated by one
    jitted program over chunks of variances — the fast path for deep recursions (≈ 1 s for 10⁵ variances, where
    the per-variance route of :func:`one_point_core` takes ~10–20 s). Activations with a breakpoint c ≠ 0 (which
    moves in x with K) use a per-variance rule (:func:`expect1d`).
    """
    act = _activation(act)
    terms = _trajectory_terms(terms)
    K = np.asarray(K, dtype=np.float64).ravel()
    if K.size == 0 or np.any(~np.isfinite(K)) or np.any(K < 0):
        raise DeepEFTInputError("K must be a non-empty array of finite variances >= 0.")
    order = max((max(d, default=0) for d, _ in terms), default=0)
    if order >= 2:
        require_smooth(act, f"A Gaussian expectation of σ^({order})")
    factors = [Factor(d, p) for d, p in terms]
    if all(closed_forms.has_closed_form(act, (f,)) for f in factors):
        return np.stack([_deterministic(act, (f,), K[:, None, None], "auto", 1e-12)[0] for f in factors])
    kinks = breakpoints(act)
    if any(c != 0.0 for c in kinks):  # breakpoints that move in x = z/√K: per-variance rule
        return np.stack([expect1d(f.numpy_fn(act), K, kinks) for f in factors])
    prog = _trajectory_program(act, terms)
    even = all(batched.term_parity(act, ((d, p),)) == 1 for d, p in terms)  # every integrand even in z: half rule
    out = np.empty((len(terms), K.size))
    Kmax = float(np.max(K))
    for band in (K > Kmax / _BAND, K <= Kmax / _BAND):
        if np.any(band):
            Kb = K[band]
            panels = max(_MIN_PANELS, int(np.ceil(_PANELS_PER_SQRT_K * np.sqrt(float(np.max(Kb))))))
            out[:, band] = _trajectory_on_rule(prog, Kb, kinks, panels, even)
    return out


def _trajectory_on_rule(prog, K: np.ndarray, kinks, panels: int, even: bool = False) -> np.ndarray:
    Kref = max(float(np.max(K)), 1e-300)
    z, w = gauss1d_nodes(np.array(Kref), kinks, panels=panels)
    x = z / np.sqrt(Kref)
    if even:
        x, w = fold_even(x, w)
    M = K.size
    Kp = np.concatenate([K, np.full(-M % _TRAJECTORY_CHUNK, K[-1])]).reshape(-1, _TRAJECTORY_CHUNK)
    import jax.numpy as jnp

    with x64():
        xs, ws = jnp.asarray(x), jnp.asarray(w)
        # one call per chunk of the cached program (dispatched asynchronously): a lax.map over a fresh lambda
        # would recompile every call
        res = [prog(jnp.asarray(k), xs, ws) for k in Kp]  # (T, CHUNK) each
        return np.concatenate([np.asarray(a) for a in res], axis=1)[:, :M]


@functools.lru_cache(maxsize=32)
def _trajectory_program(act: Activation, terms: tuple[tuple[tuple[int, ...], int], ...]):
    import jax
    import jax.numpy as jnp

    order = max((max(d, default=0) for d, _ in terms), default=0)
    def tangent(f):
        return lambda z: jax.jvp(f, (z,), (jnp.ones_like(z),))[1]

    derivs = [act.fn]  # σ^{(k)} by nested forward mode; pairs (σ^{(2j)}, σ^{(2j+1)}) from one jvp each
    for _ in range(order):
        derivs.append(tangent(derivs[-1]))

    def one(Kc, x, w):
        z = jnp.sqrt(Kc)[:, None] * x[None, :]
        vals: list = []
        for k in range(0, order + 1, 2):
            vals.extend(jax.jvp(derivs[k], (z,), (jnp.ones_like(z),)))  # σ^{(k)}, σ^{(k+1)} in one pass
        out = []
        for ds, p in terms:
            f = z**p if p else jnp.ones_like(z)
            for k in ds:
                f = f * vals[k]
            out.append(jnp.sum(w * f, -1))
        return jnp.stack(out)

    return jax.jit(one)
