"""Shared pieces of the foundation validation experiments (kernel-vs-ensemble, deep-linear-exact,
ntk-forward-vs-autodiff): critical networks, fixed inputs, ensemble seeds and the bias-aware check.

Not an experiment module (the leading underscore keeps the registry from importing it as one).

References:
  Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (2022), arXiv:2106.10165
  (docs/references.md)
"""

from __future__ import annotations

import functools

import numpy as np

from ..activations import activation
from ..errors import DeepEFTInputError
from ..network import MLP
from ..statistics import agrees, zscore
from .checks import Check

__all__ = [
    "biased_check",
    "check_activations",
    "critical_hyperparameters",
    "critical_net",
    "ensemble_seed",
    "fixed_inputs",
    "intercept_fit",
    "line_fit_band",
    "nlo_metric",
    "upper_pairs",
]


def check_activations(names, key: str = "activations") -> None:
    """Every name must be a registered activation (with "Did you mean" hints), listed once."""
    for a in names:
        activation(a)
    if len(set(names)) != len(names):
        raise DeepEFTInputError(f"parameter {key!r} has repeated entries {list(names)}; list each once.")


@functools.lru_cache(maxsize=64)
def critical_hyperparameters(name: str) -> tuple[float, float]:
    """(C_b, C_W) of the activation's critical point (``theory.criticality``, book §5.2–5.3).

    Used only to *choose* the network: every comparison is theory vs simulation at these values.
    """
    from ..theory.criticality import criticality

    point = criticality(name, exponents=False).critical
    if point is None:
        raise DeepEFTInputError(
            f"activation {name!r} has no critical point (criticality({name!r}).universality_class is 'none'); "
            "use an activation with one, e.g. relu, tanh, gelu, erf."
        )
    return float(point.C_b), float(point.C_W)


def critical_net(name: str, width: int, depth: int, input_dim: int, output_dim: int | None = None) -> MLP:
    """L = ``depth`` layers, every hidden layer of width n, at the activation's critical (C_b, C_W); λ_b = λ_W = 1.
    The output has width n too by default (so every layer's metric averages n neurons), else ``output_dim``."""
    C_b, C_W = critical_hyperparameters(name)
    out = width if output_dim is None else output_dim
    return MLP(input_dim=input_dim, widths=[width] * (depth - 1), output_dim=out, activation=name, C_b=C_b, C_W=C_W)


def fixed_inputs(N: int, n0: int) -> np.ndarray:
    """N deterministic inputs (N, n0) with |x|²/n0 spread over [0.6, 1.4] and pairwise correlations well
    away from ±1 (a fixed generator: the inputs belong to the experiment's definition, not to its seed)."""
    rng = np.random.default_rng(20240601)
    X = rng.standard_normal((N, n0))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    target = np.linspace(0.6, 1.4, N) if N > 1 else np.array([1.0])
    return X * np.sqrt(target * n0)[:, None]


def ensemble_seed(ctx) -> int:
    """A 32-bit ensemble seed for ``sample_ensemble``/``empirical_ntk`` from the task's stream."""
    return int(ctx.seed % 2**32)


def upper_pairs(N: int) -> list[tuple[int, int]]:
    """Index pairs (α, β) with α ≤ β: the distinct entries of a symmetric N × N matrix."""
    return [(a, b) for a in range(N) for b in range(a, N)]


def nlo_metric(net: MLP, X) -> np.ndarray:
    """G^{(ℓ)} = K^{(ℓ)} + G^{1}(ℓ)/n_{ℓ−1} (4.104), (4.115), (L, N, N): ``vertex_flow(net, X, nlo=True).metric()``
    (G^{1} from the NLO recursion of :mod:`deepeft.theory.nlo_metric`).

    Fails loudly (RuntimeError) when the NLO theory cannot be imported or returns a non-finite entry: a kernel
    comparison never falls back silently to K alone with a looser allowance.
    """
    try:
        from ..theory.vertex import vertex_flow
    except ImportError as exc:
        raise RuntimeError(f"the NLO metric K + G1/n (deepeft.theory.vertex_flow) is unavailable: {exc}") from exc
    G = np.asarray(vertex_flow(net, X, nlo=True).metric(), dtype=np.float64)
    if not np.all(np.isfinite(G)):
        bad = np.argwhere(~np.isfinite(G))[0]
        raise RuntimeError(f"the NLO metric K + G1/n is not finite at (layer index, α, β) = {tuple(map(int, bad))} for "
                           f"{net!r}; the kernel comparison needs it (no silent K-only fallback).")
    return G


def biased_check(
    name: str,
    theory,
    simulation,
    stderr,
    *,
    scale,
    depth_factor,
    n,
    order: int,
    coef: float,
    max_z: float,
    what: str,
    scale_text: str = "√(K_αα K_ββ)",
) -> Check:
    """A z-score check that allows the next order of the 1/n expansion as a systematic bias.

    Pass when |sim − theory| < max_z·stderr + allowance, allowance = coef·scale·(depth_factor/n)^order (the
    agreement rule of :mod:`deepeft.statistics`), where ``order`` = 1 when ``theory`` is leading order (K, Θ)
    and 2 when it includes the 1/n correction; ``scale`` is e.g. √(K_αα K_ββ) (``scale_text``; off-diagonal
    entries near zero still get a sensible allowance) and ``depth_factor`` is (ℓ−2)₊: the mean metric and mean
    NTK of layers 1 and 2 are exact at any width (z^{(1)} is Gaussian). With stderr = 0 (a deterministic
    layer) the rule is |sim − theory| ≤ 1e-12·max(|theory|, 1) + allowance. The rule text states the allowance.
    ``z`` = (sim − theory)/stderr is reported as is.
    """
    theory, simulation, stderr = float(theory), float(simulation), float(stderr)
    allowance = coef * float(scale) * (float(depth_factor) / float(n)) ** order
    diff = simulation - theory
    z = zscore(diff, stderr)
    pw = {1: "", 2: "²"}.get(order, f"^{order}")
    allow_text = f"{coef:g}·{scale_text}·((ℓ−2)₊/n){pw}"
    if stderr == 0:  # deterministic layer (e.g. ℓ = 1): exact up to rounding (and the allowance, 0 at ℓ ≤ 2)
        rounding = 1e-12 * max(abs(theory), 1.0)
        ok = agrees(diff, 0.0, allowance=rounding + allowance)
        # no z: (sim − theory)/0 is undefined, and the report's z column always means (sim − theory)/stderr
        return Check(name, theory, simulation, stderr, None, ok,
                     f"deterministic: |sim − {what}| ≤ 1e-12·max(|{what}|, 1) + {allow_text} "
                     f"(= {rounding:.3g} + {allowance:.3g})")
    ok = agrees(diff, stderr, max_z=max_z, allowance=allowance)
    rule = (
        f"|sim − {what}| < {max_z:g}·stderr + {allow_text} "
        f"(= {max_z * stderr:.3g} + {allowance:.3g}; allows the O(1/n{pw}) finite-width bias)"
    )
    return Check(name, theory, simulation, stderr, z, ok, rule)


def _line_fit(x, y, se):
    """Weighted least squares y = a + b·x: coefficients (a, b) and their covariance (AᵀWA)⁻¹."""
    x, y, se = (np.asarray(v, dtype=np.float64) for v in (x, y, se))
    A = np.stack([np.ones_like(x), x], axis=1) / se[:, None]
    coef, *_ = np.linalg.lstsq(A, y / se, rcond=None)
    return coef, np.linalg.inv(A.T @ A)


def intercept_fit(x, y, se) -> tuple[float, float, float, float]:
    """Weighted least squares y = a + b·x with independent errors ``se``: (a, se_a, b, se_b).

    The covariance is (AᵀWA)⁻¹ from the stated errors (not rescaled by the residuals), so two points give
    the exact line through them with propagated errors.
    """
    coef, cov = _line_fit(x, y, se)
    return float(coef[0]), float(np.sqrt(cov[0, 0])), float(coef[1]), float(np.sqrt(cov[1, 1]))


def line_fit_band(x, y, se, xs) -> tuple[np.ndarray, np.ndarray]:
    """The fit of :func:`intercept_fit` evaluated at ``xs`` and its 1σ uncertainty √([1 x] Cov [1 x]ᵀ),
    for drawing a fit with its error band."""
    coef, cov = _line_fit(x, y, se)
    xs = np.asarray(xs, dtype=np.float64)
    var = cov[0, 0] + 2 * cov[0, 1] * xs + cov[1, 1] * xs**2
    return coef[0] + coef[1] * xs, np.sqrt(np.maximum(var, 0.0))
