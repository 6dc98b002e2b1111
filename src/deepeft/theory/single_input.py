"""Single-input recursions of an MLP at leading order in 1/n, and the NLO metric (book §5.1, §5.4).

Helper functions of the kernel value K (x = z/√K, ⟨·⟩_K the 1-D Gaussian expectation (5.5)):

    g(K)  = ⟨σσ⟩_K                                                            (5.5), (5.49)
    χ_∥(K) = C_W g′(K) = (C_W/K)⟨zσ′σ⟩_K = (C_W/√K)⟨xσ′σ⟩                      (5.50)
    χ_⊥(K) = C_W⟨σ′σ′⟩_K                                                       (5.51)
    h(K)  = (C_W/4K²)⟨σ′σ′(z² − K)⟩_K = ½ dχ_⊥/dK                             (5.52)
    j(K)  = C_W⟨σσ[(z²/K)² − 6z²/K + 3]⟩_K  (= 4C_W K² g″(K), Hermite identity) (5.111)
    source(K) = C_W²[⟨σ⁴⟩_K − ⟨σ²⟩_K²]                                         (5.109)

Recursions (layer ℓ → ℓ + 1, per-layer C_b^{(ℓ+1)}, C_W^{(ℓ+1)}, widths n_ℓ):

    K^{(ℓ+1)}    = C_b + C_W g(K^{(ℓ)})                                        (5.108), (4.118)
    V^{(ℓ+1)}    = (n_ℓ/n_{ℓ−1}) χ_∥² V^{(ℓ)} + source                          (5.109), (4.119)
    G^{1}(ℓ+1)  = c_b^{1} + c_W^{1} g + (n_ℓ/n_{ℓ−1})[χ_∥ G^{1} + ⅛ j V/K²]      (5.110), (5.140), (4.115)

with K^{(1)} from (5.2), V^{(1)} = 0, G^{1}(1) = 0 (5.118). The width ratio sits where (4.119) and (4.115)
put it: E[z⁴]_connected carries V^{(ℓ)}/n_{ℓ−1} and G = K + G^{1}/n_{ℓ−1}; for equal widths it is 1 and
the recursions are the book's (5.108)–(5.110). Along the same trajectory we also carry the bootstrapped
two-input perturbations δK_[1]⁺ = χ_∥ δK_[1] (5.47) and δδK_[2]⁺ = χ_⊥ δδK_[2] + h (δK_[1])² (5.48).

Deep recursions (ℓ ~ 10⁵) run as one jitted ``lax.scan`` in float64: every layer evaluates σ, σ′ at a
fixed set of nodes x (the composite Gauss–Legendre rule of :mod:`deepeft.gaussian.gauss1d`, evaluated
once for the whole run), z = √K x. Only the node set is chosen here; the moments are the same code for
the NumPy path (:func:`helper_functions`, which uses ``gauss1d_nodes`` per K) and the scan.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from .._x64 import x64
from ..activations import Activation
from ..activations import activation as _activation
from ..errors import DeepEFTInputError, DeepEFTWarning
from ..gaussian.engine import activation_parity, fold_even, gauss1d_nodes, gauss1d_nodes_jax

__all__ = [
    "HelperFunctions",
    "SingleInputRecursion",
    "helper_functions",
    "single_input",
    "single_input_recursion",
]

_BASE_PANELS = 12  # panels (20 nodes each) on x ∈ [−12, 12] per unit of √K: z-panels of width 2, ≲ 3e-15
_MAX_PANELS = 768  # resolves K up to 64² = 4096 for activations with a scale; beyond: warning
_SCALE_FREE = ("scale_invariant", "monomial", "step")  # σ(√K x) has no K-dependent structure in x
_TINY = 1e-300


# ----------------------------------------------------------------------------------------------
# Moments and helper functions: one formula, used by the NumPy path and the jitted scan.
# ----------------------------------------------------------------------------------------------


def _moments(x, w, s, d, xp):
    """Six Gaussian moments from values s = σ(√K x), d = σ′(√K x) at nodes x with weights w."""
    s2, d2, x2 = s * s, d * d, x * x
    return (
        xp.sum(w * s2, axis=-1),  # ⟨σσ⟩
        xp.sum(w * x * d * s, axis=-1),  # ⟨zσ′σ⟩/√K
        xp.sum(w * d2, axis=-1),  # ⟨σ′σ′⟩
        xp.sum(w * d2 * (x2 - 1.0), axis=-1),  # ⟨σ′σ′(z² − K)⟩/K
        xp.sum(w * s2 * s2, axis=-1),  # ⟨σ⁴⟩
        xp.sum(w * s2 * (x2 * x2 - 6.0 * x2 + 3.0), axis=-1),  # ⟨σσ[(z²/K)² − 6z²/K + 3]⟩
    )


def _helpers(m, K, C_W, xp, jump: bool):
    """(g, χ_∥, χ_⊥, h, j, source) from the moments (5.49)–(5.52), (5.109), (5.111).

    With a jump in σ (perceptron) σ′ contains δ(z): χ_⊥ is infinite and h undefined.
    """
    g = m[0]
    chi_par = C_W * m[1] / xp.sqrt(K)
    if jump:
        chi_perp = xp.full_like(g, np.inf)
        h = xp.full_like(g, np.nan)
    else:
        chi_perp = C_W * m[2]
        h = C_W * m[3] / (4.0 * K)
    j = C_W * m[5]
    source = C_W * C_W * (m[4] - g * g)
    return g, chi_par, chi_perp, h, j, source


@functools.lru_cache(maxsize=64)
def _sd_program(act: Activation):
    fn = act.fn
    return jax.jit(lambda z: jax.jvp(fn, (z,), (jnp.ones_like(z),)))


def _sigma_and_derivative(act: Activation, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """σ(z), σ′(z) in float64; inputs padded to a power of two so that few shapes get compiled."""
    flat = z.ravel()
    size = max(1024, 1 << (flat.size - 1).bit_length())
    with x64():
        s, d = _sd_program(act)(jnp.asarray(np.pad(flat, (0, size - flat.size))))
        s, d = np.asarray(s)[: flat.size], np.asarray(d)[: flat.size]
    return s.reshape(z.shape), d.reshape(z.shape)


@dataclasses.dataclass(frozen=True, eq=False)
class HelperFunctions:
    """g, χ_∥, χ_⊥, h, j and the vertex source at kernel values K (arrays shaped like K)."""

    K: np.ndarray
    C_W: np.ndarray
    g: np.ndarray  # (5.49)
    chi_parallel: np.ndarray  # (5.50)
    chi_perp: np.ndarray  # (5.51)
    h: np.ndarray  # (5.52)
    j: np.ndarray  # (5.111)
    source: np.ndarray  # C_W²[⟨σ⁴⟩ − ⟨σ²⟩²] (5.109)

    @property
    def ratio(self) -> np.ndarray:
        """χ_⊥/χ_∥ = K⟨σ′σ′⟩/⟨zσ′σ⟩, free of C_W: equals 1 at a critical K* (5.73)."""
        return self.chi_perp / self.chi_parallel

    @property
    def a1_tilde(self) -> np.ndarray:
        """½ C_W g″(K) = j/(8K²): the quadratic coefficient of ΔK⁺ = χ_∥ΔK + ã₁ΔK² [derived], → a₁ as K → 0 (5.123)."""
        return self.j / (8.0 * self.K**2)


def helper_functions(act, K, C_W=1.0) -> HelperFunctions:
    """g, χ_∥, χ_⊥, h, j, source at every K (> 0, any shape), by 1-D Gaussian quadrature (≲1e-14).

    ``act``: a name, :class:`~deepeft.Activation` or callable. ``C_W`` broadcasts against ``K``.
    The K → 0 limits follow from the Taylor data, see :func:`deepeft.theory.criticality.criticality`.
    """
    act = _activation(act)
    Karr = np.asarray(K, dtype=np.float64)
    if Karr.size == 0:
        raise DeepEFTInputError("K is empty; pass at least one kernel value K > 0.")
    if not np.all(np.isfinite(Karr)) or np.any(Karr <= 0):
        raise DeepEFTInputError(
            "every kernel value K must be finite and > 0 (K is the variance of a preactivation); "
            f"got min {np.nanmin(Karr):g}. For K → 0 use the Taylor data of criticality(...)."
        )
    CW = np.asarray(C_W, dtype=np.float64)
    if not np.all(np.isfinite(CW)) or np.any(CW < 0):
        raise DeepEFTInputError(f"C_W must be finite and >= 0 (it is a variance), got {C_W!r}.")
    Kb, CWb = np.broadcast_arrays(Karr, CW)
    flat = Kb.ravel()
    order = np.argsort(flat)
    moms = [np.empty(flat.size) for _ in range(6)]
    kinks = act.breakpoints
    for start in range(0, flat.size, 128):  # chunks of similar K share a panel count
        idx = order[start : start + 128]
        Kc = flat[idx]
        z, w = gauss1d_nodes(Kc, kinks)
        x = z / np.sqrt(Kc)[:, None]
        s, d = _sigma_and_derivative(act, z)
        for out, val in zip(moms, _moments(x, w, s, d, np), strict=True):
            out[idx] = val
    m = tuple(a.reshape(Kb.shape) for a in moms)
    vals = _helpers(m, Kb, CWb, np, bool(act.jumps))
    core = np.stack([vals[0], vals[1], vals[4]])
    if not np.all(np.isfinite(core)):
        raise DeepEFTInputError(
            f"the Gaussian expectations of {act!r} are not finite at some K (e.g. ⟨σ⁴⟩ diverges); "
            "use an activation that grows at most polynomially."
        )
    return HelperFunctions(Kb.copy(), CWb.copy(), *vals)


# ----------------------------------------------------------------------------------------------
# The jitted deep recursion.
# ----------------------------------------------------------------------------------------------


def _panels_for(act: Activation, Kmax: float) -> int:
    """Panels on x ∈ [−T, T]: 12⌈√K⌉ (σ(√K x) varies on the scale 1/√K in x; measured ≲ 3e-15 relative
    for tanh, erf, GELU, SWISH, sin, softplus, sigmoid, ELU against the 4× denser rule)."""
    if act.family in _SCALE_FREE or not math.isfinite(Kmax) or Kmax <= 1.0:
        return _BASE_PANELS
    return int(min(_BASE_PANELS * math.ceil(math.sqrt(Kmax)), _MAX_PANELS))


_CHUNK = 2048  # layers per jitted scan call: one compilation per (activation, panels), whatever the depth


@functools.lru_cache(maxsize=64)
def _program(act: Activation, panels: int):
    """Jitted scan over a chunk of layers: carry (K, V, G¹, δK_[1], δδK_[2]) → per-layer values and helpers."""
    kinks = act.breakpoints
    dynamic = any(c != 0.0 for c in kinks)
    jump = bool(act.jumps)
    if not dynamic:
        x0, w0 = gauss1d_nodes(np.array(1.0), kinks, panels=panels)
        if activation_parity(act):
            # σ odd or even: all six integrands of _moments are even in x (σ′ has the opposite parity of σ,
            # and x enters as x·σ′σ or x²) — sum over x ≥ 0 with mirrored weights: half the σ evaluations
            x0, w0 = fold_even(x0, w0)
    fn = act.fn

    def step(carry, xs):
        K, V, G1, dK1, ddK2 = carry
        Cb, CW, ratio, cb1, cW1 = xs
        Kc = jnp.maximum(K, _TINY)
        if dynamic:
            x, w = gauss1d_nodes_jax(Kc, kinks, panels)
        else:
            x, w = jnp.asarray(x0), jnp.asarray(w0)
        s, d = jax.jvp(fn, (jnp.sqrt(Kc) * x,), (jnp.ones_like(x),))
        g, chi_par, chi_perp, h, j, source = _helpers(_moments(x, w, s, d, jnp), Kc, CW, jnp, jump)
        new = (
            Cb + CW * g,  # (5.108)
            ratio * chi_par * chi_par * V + source,  # (5.109)
            cb1 + cW1 * g + ratio * (chi_par * G1 + j * (V / Kc) / (8.0 * Kc)),  # (5.110), (5.140); (V/K)/K: K² underflows
            chi_par * dK1,  # (5.47)
            chi_perp * ddK2 + h * dK1 * dK1,  # (5.48)
        )
        return new, (K, V, G1, dK1, ddK2, g, chi_par, chi_perp, h, j, source)

    @jax.jit
    def run(carry, params):
        """params (5, _CHUNK) → (carry, (11, _CHUNK)): one transfer in and one out per chunk."""
        carry, out = jax.lax.scan(step, carry, tuple(params), unroll=4)
        return carry, jnp.stack(out)

    return run


_FIELDS = ("K", "V", "G1", "dK1", "ddK2", "g", "chi_parallel", "chi_perp", "h", "j", "source")


def _run_chunks(act, panels, K1, dK1, ddK2, params: np.ndarray) -> list[np.ndarray]:
    """Scan all layers chunk by chunk (params: (5, L), padded by repeating the last layer)."""
    L = params.shape[1]
    nchunk = -(-L // _CHUNK)
    padded = np.concatenate([params, np.repeat(params[:, -1:], nchunk * _CHUNK - L, axis=1)], axis=1)
    chunks = np.ascontiguousarray(padded.reshape(5, nchunk, _CHUNK).transpose(1, 0, 2))  # chunk c: (5, _CHUNK)
    run = _program(act, panels)
    z = jnp.float64(0.0)
    carry = (jnp.float64(K1), z, z, jnp.float64(dK1), jnp.float64(ddK2))
    outs = []
    for c in range(nchunk):
        carry, out = run(carry, chunks[c])
        outs.append(out)
    return list(np.concatenate([np.asarray(o) for o in outs], axis=1)[:, :L])


def scan_recursion(act, K1, Cb_next, CW_next, ratio, cb1, cW1, dK1=0.0, ddK2=0.0) -> dict[str, np.ndarray]:
    """Run the recursion for L = len(Cb_next) layers (unvalidated, for the theory modules); picks (and if
    needed raises) the node count."""
    L = len(Cb_next)
    params = np.stack([np.asarray(a, dtype=np.float64) for a in (Cb_next, CW_next, ratio, cb1, cW1)])
    panels = _panels_for(act, max(float(K1), 1.0))
    with x64():
        while True:
            out = _run_chunks(act, panels, K1, dK1, ddK2, params)
            K = out[0]
            fin = K[np.isfinite(K)]
            need = _panels_for(act, float(fin.max()) if fin.size else 1.0)
            if need <= panels:
                break
            panels = need
    res = dict(zip(_FIELDS, out, strict=True))
    bad = ~np.isfinite(K) | (K > 1e300)
    if np.any(bad):
        first = int(np.argmax(bad)) + 1
        warnings.warn(
            f"the kernel overflows at layer ℓ = {first} of {L} ({act!r}): the network is in an exponentially "
            "exploding phase; lower C_W or C_b (see criticality()).",
            DeepEFTWarning,
            stacklevel=3,
        )
    elif act.family not in _SCALE_FREE and fin.size and fin.max() > (_MAX_PANELS / _BASE_PANELS) ** 2:
        warnings.warn(
            f"the kernel reaches K = {fin.max():.3g}; the per-layer quadrature resolves K ≤ "
            f"{(_MAX_PANELS / _BASE_PANELS) ** 2:g} to full accuracy, so values beyond are approximate.",
            DeepEFTWarning,
            stacklevel=3,
        )
    return res


# ----------------------------------------------------------------------------------------------
# Public recursion API.
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class SingleInputRecursion:
    """Per-layer single-input quantities, layer ℓ = 1..L at index ℓ − 1.

    ``K`` (5.108), ``V`` (5.109) in the book's normalisation (the connected four-point function of one
    neuron is 3V^{(ℓ)}/n_{ℓ−1}), ``G1`` = G^{1} (5.110)/(5.140) (the metric is K + G^{1}/n_{ℓ−1}).
    Helper arrays (``g``, ``chi_parallel``, ``chi_perp``, ``h``, ``j``, ``source``) are evaluated at
    K^{(ℓ)} with the weight variance C_W^{(ℓ+1)} of the step ℓ → ℓ + 1 (C_W^{(L)} at ℓ = L).
    """

    activation: Activation
    K: np.ndarray
    V: np.ndarray
    G1: np.ndarray
    g: np.ndarray
    chi_parallel: np.ndarray
    chi_perp: np.ndarray
    h: np.ndarray
    j: np.ndarray
    source: np.ndarray
    C_b: np.ndarray
    C_W: np.ndarray
    c_b1: np.ndarray
    c_W1: np.ndarray
    widths: tuple[int, ...] | None = None

    @property
    def L(self) -> int:
        return int(self.K.shape[0])

    @property
    def layers(self) -> np.ndarray:
        """ℓ = 1..L."""
        return np.arange(1, self.L + 1)

    def _n_prev(self, n) -> np.ndarray:
        """n_{ℓ−1} for ℓ = 1..L (∞ at ℓ = 1, where V = G^{1} = 0 exactly)."""
        if n is not None:
            nn = v.finite_scalar(n, "n", minimum=0.0, strict=True)
            out = np.full(self.L, nn)
        elif self.widths is not None:
            out = np.concatenate([[np.inf], np.asarray(self.widths, dtype=np.float64)])
        else:
            raise DeepEFTInputError(
                "this recursion was run without widths: pass the hidden width, e.g. .normalized_vertex(n=256), "
                "or run single_input_recursion(..., widths=[...])."
            )
        out[0] = np.inf
        return out

    def normalized_vertex(self, n=None) -> np.ndarray:
        """V^{(ℓ)}/(n_{ℓ−1} K^{(ℓ)}²): = E[z_i²z_j²]/E[z²]² − 1 = (E[z⁴]/3E[z²]² − 1) (5.128)."""
        return self.V / (self._n_prev(n) * self.K**2)

    def excess_kurtosis(self, n=None) -> np.ndarray:
        """E[z⁴]/E[z²]² − 3 = 3V/(nK²) at leading order (4.117)."""
        return 3.0 * self.normalized_vertex(n)

    def metric(self, n=None) -> np.ndarray:
        """G^{(ℓ)} = K^{(ℓ)} + G^{1}(ℓ)/n_{ℓ−1} (4.116), (5.135)."""
        return self.K + self.G1 / self._n_prev(n)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f: getattr(self, f) for f in ("K", "V", "G1", "g", "chi_parallel", "chi_perp", "h", "j", "source")}


def _widths(widths, L: int) -> tuple[int, ...] | None:
    if widths is None:
        return None
    if np.ndim(widths) == 0:
        return (v.positive_int(widths, "widths"),) * (L - 1)
    arr = np.asarray(widths)
    if arr.ndim == 1 and arr.dtype.kind in "iu" and np.all(arr >= 1):  # fast path (10⁵ layers)
        ws = tuple(arr.tolist())
    else:
        ws = tuple(v.positive_int(w, f"widths[{i}]") for i, w in enumerate(v.sequence_of(widths, "widths")))
    if len(ws) != L - 1:
        raise DeepEFTInputError(
            f"widths must give the L − 1 = {L - 1} hidden widths n_1..n_(L−1) (as MLP.widths), got {len(ws)}."
        )
    return ws


def next_layer_values(arr: tuple[float, ...]) -> np.ndarray:
    """Per-layer values (layer ℓ at index ℓ − 1) → the value used in the step ℓ → ℓ + 1 (last repeated)."""
    a = np.asarray(arr, dtype=np.float64)
    return np.concatenate([a[1:], a[-1:]])


def single_input_recursion(
    activation,
    K1,
    depth,
    *,
    C_b=0.0,
    C_W=1.0,
    widths=None,
    c_b1=0.0,
    c_W1=0.0,
) -> SingleInputRecursion:
    """Iterate (5.108)–(5.110) for one input from K^{(1)} = ``K1`` through ``depth`` = L layers.

    ``C_b``, ``C_W``: scalars or length-L sequences (layer ℓ at index ℓ − 1; index 0 is not used since
    K^{(1)} is given). ``widths``: hidden widths n_1..n_{L−1} (scalar = all equal; None = equal widths,
    then pass ``n`` to the normalised accessors). ``c_b1``, ``c_W1``: NLO hyperparameter corrections
    C = c^{0} + c^{1}/n_{ℓ−1} (5.138)–(5.139) entering G^{1} via (5.140); (5.142) tunes them.

    Runs in float64 as one jitted scan: 10⁵ layers take well under a second after compilation.
    """
    act = _activation(activation)
    L = v.positive_int(depth, "depth")
    k1 = v.finite_scalar(K1, "K1 (the first-layer kernel K^(1))", minimum=0.0, strict=True)
    Cb = v.per_layer(C_b, "C_b", L)
    CW = v.per_layer(C_W, "C_W", L)
    cb1 = v.per_layer(c_b1, "c_b1", L, minimum=None)
    cW1 = v.per_layer(c_W1, "c_W1", L, minimum=None)
    ws = _widths(widths, L)
    n_all = np.asarray((ws[0],) + ws if ws else (1,), dtype=np.float64)  # n_0 placeholder: V^{(1)} = 0
    ratio = np.ones(L)
    if ws:
        ratio[1 : L - 1] = n_all[2:] / n_all[1:-1]  # step ℓ → ℓ+1 uses n_ℓ/n_{ℓ−1}, ℓ = 2..L−1
    nxt = next_layer_values
    tr = scan_recursion(act, k1, nxt(Cb), nxt(CW), ratio, nxt(cb1), nxt(cW1))
    return SingleInputRecursion(
        activation=act,
        K=tr["K"],
        V=tr["V"],
        G1=tr["G1"],
        g=tr["g"],
        chi_parallel=tr["chi_parallel"],
        chi_perp=tr["chi_perp"],
        h=tr["h"],
        j=tr["j"],
        source=tr["source"],
        C_b=np.asarray(Cb),
        C_W=np.asarray(CW),
        c_b1=np.asarray(cb1),
        c_W1=np.asarray(cW1),
        widths=ws,
    )


def input_norm(net, x=None, norm=None) -> float:
    """(1/n_0) Σ_i x_i² for one input x of shape (n0,) or (1, n0); ``norm`` given directly; default 1."""
    if x is not None and norm is not None:
        raise DeepEFTInputError("pass either x or norm, not both.")
    if x is None:
        return 1.0 if norm is None else v.finite_scalar(norm, "norm")
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.shape[0] != 1:
        raise DeepEFTInputError(f"single-input analysis takes one input x of shape (n0,); got shape {arr.shape}.")
    arr = net.check_inputs(arr, "x")
    return float(np.mean(arr[0] ** 2))


def single_input(net, x=None, *, norm=None, c_b1=0.0, c_W1=0.0) -> SingleInputRecursion:
    """The single-input recursion of an :class:`~deepeft.MLP` for input ``x`` (n0,) (or its ``norm`` =
    (1/n_0)Σx², default 1): K^{(1)} = C_b^{(1)} + C_W^{(1)} norm (5.2), widths and per-layer C_b, C_W from ``net``."""
    nrm = input_norm(net, x, norm)
    K1 = net.C_b[0] + net.C_W[0] * nrm
    if K1 <= 0:
        raise DeepEFTInputError(
            "the first-layer kernel K^(1) = C_b + C_W·|x|²/n0 is 0 (zero input and C_b = 0): every layer is then "
            "identically zero; use a nonzero input or C_b > 0."
        )
    return single_input_recursion(
        net.activation, K1, net.L, C_b=net.C_b, C_W=net.C_W, widths=net.widths or None, c_b1=c_b1, c_W1=c_W1
    )

