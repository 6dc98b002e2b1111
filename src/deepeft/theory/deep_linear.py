"""Deep linear networks: exact results at any width   (book Ch. 3, (3.9)–(3.57)).

z^{(1)} = W^{(1)} x,  z^{(ℓ+1)} = W^{(ℓ+1)} z^{(ℓ)}  (biases off), W ~ N(0, C_W/n_{ℓ−1}).
With an :class:`~deepeft.MLP` whose activation is linear with slope a, layer ℓ ≥ 2 sees the effective
gain C_W^{(ℓ)} a² (layer 1 sees C_W^{(1)}: the input is not passed through σ). Widths and gains may
differ per layer. Everything is exact (no 1/n expansion) unless marked "double scaling".

Results over layers are arrays with layer ℓ = 1..L at index ℓ − 1.

Single input, with G_2^{(0)} = x·x/n_0 (3.19) and g_ℓ the gain of layer ℓ:
    G_2^{(ℓ)} = g_1⋯g_ℓ G_2^{(0)}                                          (3.15)
    G_{2m}^{(ℓ)} = [Π_{ℓ'=1}^{ℓ−1} c_{2m}(n_{ℓ'})] (G_2^{(ℓ)})^m               (3.47), (3.25), (3.43)
    c_{2m}(n) = Π_{s=1}^{m−1} (1 + 2s/n) = Γ(n/2 + m)/Γ(n/2) (2/n)^m           (3.46)
Multi-input two-point G^{(ℓ)} = g_1⋯g_ℓ (1/n_0) X Xᵀ (3.9), (3.15); in the MLP convention this is
K^{(ℓ)} (with C_b = 0, K^{(1)} = C_b + C_W G^{(0)}).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from .. import _validate as v
from ..errors import DeepEFTInputError
from ..network import MLP

__all__ = [
    "DeepLinearNet",
    "G0_matrix",
    "G2",
    "G2m",
    "G4",
    "as_deep_linear",
    "c2m",
    "connected4",
    "connected6",
    "double_scaling_G2m",
    "double_scaling_connected4",
    "double_scaling_connected6",
    "excess_kurtosis",
    "log_c2m",
    "sample_output",
    "var_O",
    "vertex",
]

_PRODUCT_MAX_M = 2048  # product form (log1p sum) up to this m, Γ form beyond


# ---------------------------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DeepLinearNet:
    """A bias-free deep linear network: all widths n = (n_0, …, n_L) and effective gains g_1..g_L.

    ``gains[ℓ−1]`` multiplies the two-point function at layer ℓ: G^{(ℓ)} = gains[ℓ−1] G^{(ℓ−1)} (3.14).
    """

    n: tuple[int, ...]
    gains: tuple[float, ...]

    @property
    def L(self) -> int:
        return len(self.gains)


def as_deep_linear(
    net: MLP | DeepLinearNet | Sequence[int],
    *,
    C_W: float | Sequence[float] | None = None,
    input_dim: int | None = None,
    output_dim: int = 1,
) -> DeepLinearNet:
    """Normalise the accepted network descriptions to a :class:`DeepLinearNet`.

    * an :class:`~deepeft.MLP` with a linear activation (slope a; gains C_W^{(1)}, C_W^{(ℓ)} a²) and C_b = 0;
    * a :class:`DeepLinearNet` (returned as is);
    * a sequence of hidden widths (n_1, …, n_{L−1}) as in ``MLP(widths=...)``, with ``C_W`` (scalar or
      per layer, default 1), ``output_dim`` (n_L, default 1) and optionally ``input_dim``.
    """
    if isinstance(net, DeepLinearNet):
        if C_W is not None:
            raise DeepEFTInputError("C_W cannot be given together with a DeepLinearNet (it already has gains).")
        return net
    if isinstance(net, MLP):
        if C_W is not None or input_dim is not None:
            raise DeepEFTInputError(
                "C_W / input_dim cannot be given together with an MLP: they are read from the MLP; "
                "use net.replace(C_W=...) to change them."
            )
        act = net.activation
        if act.a_plus is None or act.a_plus != act.a_minus:
            raise DeepEFTInputError(
                f"deep_linear needs a linear activation (σ(z) = a z), but the MLP has {act!r}. "
                "Use de.MLP(..., activation='linear') or the general theory (de.kernel, de.four_point_vertex)."
            )
        if any(cb != 0.0 for cb in net.C_b):
            raise DeepEFTInputError(
                f"deep_linear results assume biases off (book Ch. 3), but the MLP has C_b = {net.C_b}; "
                "set C_b=0 or use the general theory (de.kernel, de.four_point_vertex)."
            )
        a2 = act.a_plus**2
        gains = (net.C_W[0],) + tuple(c * a2 for c in net.C_W[1:])
        return DeepLinearNet(net.n, gains)
    if isinstance(net, (int, np.integer)):
        raise DeepEFTInputError(
            f"pass hidden widths as a sequence, e.g. [{net}] * (L - 1), or an MLP; got the integer {net}."
        )
    ws = tuple(v.positive_int(w, f"widths[{i}]") for i, w in enumerate(v.sequence_of(net, "widths")))
    n0 = 0 if input_dim is None else v.positive_int(input_dim, "input_dim")
    nL = v.positive_int(output_dim, "output_dim")
    L = len(ws) + 1
    gains = v.per_layer(1.0 if C_W is None else C_W, "C_W", L)
    return DeepLinearNet((n0, *ws, nL), gains)


def _single_G0(net: DeepLinearNet, x, G0) -> float:
    if x is not None and G0 is not None:
        raise DeepEFTInputError("give either the input x or its G0 = x·x/n0, not both.")
    if x is None:
        return 1.0 if G0 is None else v.finite_scalar(G0, "G0")
    X = np.asarray(x, dtype=np.float64)
    if X.ndim == 2 and X.shape[0] == 1:
        X = X[0]
    if X.ndim != 1:
        raise DeepEFTInputError(
            f"x must be one input of shape (n0,) for single-input results, got shape {X.shape}; "
            "use G2/G4/vertex for several inputs."
        )
    return float(G0_matrix(X[None, :], n0=net.n[0] or None)[0, 0])


def _cum_gains(net: DeepLinearNet) -> np.ndarray:
    """g_1 g_2 ⋯ g_ℓ for ℓ = 1..L (3.15)."""
    return np.cumprod(np.asarray(net.gains, dtype=np.float64))


# ---------------------------------------------------------------------------------------------
# combinatorial factor and two-point function
# ---------------------------------------------------------------------------------------------
def log_c2m(n, m: int, *, method: str = "auto") -> np.ndarray:
    """log c_{2m}(n) (3.46), vectorised over n (n = ∞ gives 0).

    method "product": Σ_{s=1}^{m−1} log1p(2s/n) (accurate for any n); "gamma":
    gammaln(n/2 + m) − gammaln(n/2) + m log(2/n) (fast for large m); "auto" picks product for m ≤ 2048.
    """
    m = v.positive_int(m, "m")
    if method not in ("auto", "product", "gamma"):
        raise DeepEFTInputError(f"method must be 'auto', 'product' or 'gamma', got {method!r}.")
    n = np.asarray(n, dtype=np.float64)
    if np.any(~(n > 0)):
        raise DeepEFTInputError(f"widths n must be > 0, got {n}.")
    inf = np.isinf(n)
    nf = np.where(inf, 1.0, n)
    if method == "product" or (method == "auto" and m <= _PRODUCT_MAX_M):
        s = np.arange(1, m, dtype=np.float64)
        out = np.log1p(2.0 * s / nf[..., None]).sum(axis=-1)
    else:
        from scipy.special import gammaln  # lazily: scipy.special costs ~0.2 s at `import deepeft`

        out = gammaln(nf / 2 + m) - gammaln(nf / 2) + m * np.log(2.0 / nf)
    return np.where(inf, 0.0, out)


def c2m(n, m: int, *, method: str = "auto") -> float | np.ndarray:
    """c_{2m}(n) = Π_{s=1}^{m−1}(1 + 2s/n) = Γ(n/2 + m)/Γ(n/2) (2/n)^m (3.46); c_{2m}(1) = (2m−1)!!, c_{2m}(2) = m!."""
    out = np.exp(log_c2m(n, m, method=method))
    return float(out) if out.ndim == 0 else out


def G0_matrix(X, *, n0: int | None = None) -> np.ndarray:
    """Input Gram matrix G^{(0)}_{α1α2} = (1/n_0) Σ_i x_{i;α1} x_{i;α2} (3.9), X of shape (N, n0)."""
    X = v.inputs(X, n0)
    return X @ X.T / X.shape[1]


def G2(net, X, **net_kwargs) -> np.ndarray:
    """G^{(ℓ)}_{α1α2} = (g_1⋯g_ℓ) G^{(0)} (3.15), shape (L, N, N); exact at any width (widths drop out)."""
    dl = as_deep_linear(net, **net_kwargs)
    G0 = G0_matrix(X, n0=dl.n[0] or None)
    return _cum_gains(dl)[:, None, None] * G0


# ---------------------------------------------------------------------------------------------
# single input: 2m-point functions and derived observables
# ---------------------------------------------------------------------------------------------
def G2m(net, m: int, x=None, *, G0: float | None = None, **net_kwargs) -> np.ndarray:
    """G_{2m}^{(ℓ)} = [Π_{ℓ'<ℓ} c_{2m}(n_{ℓ'})] (G_2^{(ℓ)})^m for ℓ = 1..L (3.47), shape (L,).

    E[z_{i1}⋯z_{i2m}] = (Σ_pairings δ⋯δ) G_{2m} (3.44); m = 1 is G_2 (3.15), m = 2 is G_4 (3.25).
    Single input: pass x (shape (n0,)) or G0 = G_2^{(0)} (default G0 = 1).
    """
    dl = as_deep_linear(net, **net_kwargs)
    g0 = _single_G0(dl, x, G0)
    m = v.positive_int(m, "m")
    hidden = np.asarray(dl.n[1:-1], dtype=np.float64)  # n_1..n_{L−1}
    logc = np.concatenate([[0.0], np.cumsum(log_c2m(hidden, m))]) if hidden.size else np.zeros(1)
    g2 = _cum_gains(dl) * g0
    with np.errstate(divide="ignore"):
        return np.exp(logc + m * np.log(g2))


def connected4(net, x=None, *, G0: float | None = None, **net_kwargs) -> np.ndarray:
    """G_4^{(ℓ)} − (G_2^{(ℓ)})² (3.28): E[z_i1 z_i2 z_i3 z_i4]|_c = (δδ + δδ + δδ)(G_4 − G_2²) (3.29), shape (L,)."""
    dl = as_deep_linear(net, **net_kwargs)
    return G2m(dl, 2, x, G0=G0) - G2m(dl, 1, x, G0=G0) ** 2


def connected6(net, x=None, *, G0: float | None = None, **net_kwargs) -> np.ndarray:
    """G_6 − 3 G_2 G_4 + 2 G_2³ (3.57, exact form before the double-scaling limit), shape (L,).

    The connected six-point correlator (1.61) of one layer is (Σ_15 pairings δδδ) × this.
    """
    dl = as_deep_linear(net, **net_kwargs)
    g2, g4, g6 = (G2m(dl, m, x, G0=G0) for m in (1, 2, 3))
    return g6 - 3 * g2 * g4 + 2 * g2**3


def excess_kurtosis(net, x=None, *, G0: float | None = None, **net_kwargs) -> np.ndarray:
    """Excess kurtosis of one neuron, E[z⁴]|_c / E[z²]² = 3(G_4 − G_2²)/G_2², shape (L,) (≈ 6(ℓ−1)/n)."""
    dl = as_deep_linear(net, **net_kwargs)
    return 3.0 * connected4(dl, x, G0=G0) / G2m(dl, 1, x, G0=G0) ** 2


def var_O(net, x=None, *, G0: float | None = None, **net_kwargs) -> np.ndarray:
    """Var O^{(ℓ)} of O^{(ℓ)} = (1/n_ℓ) Σ_j z_j^{(ℓ)} z_j^{(ℓ)}: (2/n_ℓ) G_4 + G_4 − G_2² (3.33), shape (L,).

    Layer ℓ averages over its own n_ℓ neurons (ℓ = L uses the output width n_L); with equal widths
    this is [(1 + 2/n)^ℓ − 1] G_2².
    """
    dl = as_deep_linear(net, **net_kwargs)
    n = np.asarray(dl.n[1:], dtype=np.float64)
    return (1.0 + 2.0 / n) * G2m(dl, 2, x, G0=G0) - G2m(dl, 1, x, G0=G0) ** 2


# ---------------------------------------------------------------------------------------------
# multi-input four-point function and the Ch. 4 vertex
# ---------------------------------------------------------------------------------------------
def G4(net, X, **net_kwargs) -> np.ndarray:
    """Exact multi-input four-point tensor G_4^{(ℓ)}_{(α1α2)(α3α4)}, shape (L, N, N, N, N)   [derived].

    E[z_{i1;α1} z_{i2;α2} z_{i3;α3} z_{i4;α4}] = δ_{i1i2}δ_{i3i4} G4_{(α1α2)(α3α4)} + δ_{i1i3}δ_{i2i4} G4_{(α1α3)(α2α4)}
    + δ_{i1i4}δ_{i2i3} G4_{(α1α4)(α2α3)}, with the Wick recursion of (3.20) for several inputs:
        G4^{(1)}_{(12)(34)} = G^{(1)}_{12} G^{(1)}_{34},
        G4^{(ℓ+1)}_{(12)(34)} = g_{ℓ+1}² [G4^{(ℓ)}_{(12)(34)} + (G4^{(ℓ)}_{(13)(24)} + G4^{(ℓ)}_{(14)(23)})/n_ℓ].
    For one input it reduces to (3.24)/(3.25).
    """
    dl = as_deep_linear(net, **net_kwargs)
    G = G2(dl, X)
    T = np.einsum("ab,cd->abcd", G[0], G[0])
    out = [T]
    for ell in range(1, dl.L):  # build layer ℓ+1 from ℓ (index ℓ)
        swap = np.einsum("acbd->abcd", T) + np.einsum("adbc->abcd", T)
        T = dl.gains[ell] ** 2 * (T + swap / dl.n[ell])
        out.append(T)
    return np.stack(out)


def vertex(net, X, **net_kwargs) -> np.ndarray:
    """Four-point vertex in the Ch. 4 convention, V^{(ℓ)}_{(12)(34)} = n_{ℓ−1}(G4_{(12)(34)} − G_{12}G_{34}).

    Shape (L, N, N, N, N); exact for deep linear networks (V^{(1)} = 0), with (1/n_{ℓ−1}) V = E[ΔĜ ΔĜ] (4.76)
    and connected 4-pt = (1/n_{ℓ−1}) (δδ V + δδ V + δδ V) (4.117). Leading order at C_W = 1, equal widths:
    V^{(ℓ)} ≈ (ℓ−1)(K13 K24 + K14 K23), i.e. single input V/(n K²) ≈ 2(ℓ−1)/n.
    """
    dl = as_deep_linear(net, **net_kwargs)
    G = G2(dl, X)
    n_prev = np.asarray(dl.n[:-1], dtype=np.float64)
    n_prev[0] = 1.0  # layer 1 is exactly Gaussian: V^{(1)} = 0 whatever n_0
    disc = G4(dl, X) - np.einsum("lab,lcd->labcd", G, G)
    return n_prev[:, None, None, None, None] * disc


# ---------------------------------------------------------------------------------------------
# double-scaling limit n, L → ∞ at fixed r = L/n (equal widths, criticality)
# ---------------------------------------------------------------------------------------------
def _r(r) -> np.ndarray:
    r = np.asarray(r, dtype=np.float64)
    if np.any(~np.isfinite(r)) or np.any(r < 0):
        raise DeepEFTInputError(f"the aspect ratio r = L/n must be finite and >= 0, got {r}.")
    return r


def double_scaling_G2m(r, m: int):
    """G_{2m}/G_2^m → e^{m(m−1) r} (3.55) in the double-scaling limit."""
    m = v.positive_int(m, "m")
    return np.exp(m * (m - 1) * _r(r))


def double_scaling_connected4(r):
    """(G_4 − G_2²)/G_2² → e^{2r} − 1 ≈ 2r (3.56)."""
    return np.expm1(2 * _r(r))


def double_scaling_connected6(r):
    """(G_6 − 3G_2G_4 + 2G_2³)/G_2³ → e^{6r} − 3e^{2r} + 2 ≈ 12 r² (3.57)."""
    r = _r(r)
    return np.expm1(6 * r) - 3 * np.expm1(2 * r)


# ---------------------------------------------------------------------------------------------
# exact sampler
# ---------------------------------------------------------------------------------------------
def sample_output(
    net,
    n_samples: int,
    x=None,
    *,
    G0: float | None = None,
    layer: int | None = None,
    seed: int | np.random.Generator = 0,
    **net_kwargs,
) -> np.ndarray:
    """Exact draws of z^{(ℓ)} for one input, shape (n_samples, n_ℓ) (default ℓ = L)   [derived].

    z^{(ℓ)} = √(G_2^{(ℓ)} Π_{ℓ'=1}^{ℓ−1} χ²_{n_ℓ'}/n_ℓ') · ξ, ξ ~ N(0, I_{n_ℓ}), independent χ²'s:
    given z^{(ℓ)}, z^{(ℓ+1)} ~ N(0, g_{ℓ+1} |z^{(ℓ)}|²/n_ℓ · I) and |z^{(ℓ)}|² is a scaled χ²_{n_ℓ}.
    Costs O(n_samples · (ℓ + n_ℓ)) instead of O(n_samples · Σ n_ℓ n_{ℓ−1}) for explicit weights.
    """
    dl = as_deep_linear(net, **net_kwargs)
    g0 = _single_G0(dl, x, G0)
    S = v.positive_int(n_samples, "n_samples")
    ell = dl.L if layer is None else v.positive_int(layer, "layer")
    if ell > dl.L:
        raise DeepEFTInputError(f"layer must be in 1..L = 1..{dl.L}, got {ell}.")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    g2 = _cum_gains(dl)[ell - 1] * g0
    scale = np.full(S, g2)
    for n_l in dl.n[1:ell]:
        scale *= rng.chisquare(n_l, size=S) / n_l
    return np.sqrt(scale)[:, None] * rng.standard_normal((S, dl.n[ell]))
