"""Shared pieces of the learning experiments (bayes-posterior, evidence-criticality, kernel-gd-vs-trained,
generalization): fixed training/test data, the power-law exponent fit and labelled checks.

Not an experiment module (the leading underscore keeps the registry from importing it as one).
Every check carries its kind (Check.kind): "prediction" (theory vs simulation, z-score from the standard
error), "resolution" (the run resolves what it claims: a grid step, a fitted error), or "finding" (a
property of the theory or of the data that the run establishes, e.g. a maximum at criticality).
"""

from __future__ import annotations

import math

import numpy as np

from ._foundation import fixed_inputs, intercept_fit
from .checks import KINDS, Check

__all__ = [
    "allowance_check",
    "exponent_fit",
    "extrapolation_check",
    "kind_check",
    "learning_data",
    "poly_fit",
    "power_law_check",
]


def learning_data(n_train: int, n_test: int, n0: int, n_out: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic (X_train, Y_train, X_test): inputs from :func:`fixed_inputs` (|x|²/n0 in [0.6, 1.4]),
    targets y_{i;α} = sin(2 x_{1;α} + i) / 2 + x_{2;α}/4 (a smooth function of the input, O(1))."""
    X = fixed_inputs(n_train + n_test, n0)
    XA, XB = X[:n_train], X[n_train:]
    i = np.arange(n_out)[None, :]
    Y = np.sin(2.0 * XA[:, :1] + i) / 2.0 + XA[:, 1 % n0 : 1 % n0 + 1] / 4.0
    return XA, Y, XB


def kind_check(kind: str, name: str, theory, simulation, stderr, ok: bool, rule: str) -> Check:
    """A Check of the given kind (prediction/resolution/finding; :data:`deepeft.experiments.checks.KINDS`)."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    # theory None: a bound or threshold, stated in the rule (the report's theory column holds predictions only)
    return Check(name, None if theory is None else float(theory), float(simulation),
                 None if stderr is None else float(stderr),
                 None if theory is None else _z(theory, simulation, stderr), bool(ok), rule, kind)


def _z(theory, simulation, stderr):
    if stderr is None:
        return None
    d = float(simulation) - float(theory)
    s = float(stderr)
    return d / s if s > 0 else (0.0 if d == 0 else math.copysign(math.inf, d))


def allowance_check(name: str, theory, simulation, stderr, *, allowance: float, max_z: float, what: str,
                    allowance_text: str) -> Check:
    """prediction: |sim − theory| < max_z·stderr + allowance (the allowance is a stated estimate of the
    neglected order, e.g. c·scale·L/n for an infinite-width prediction; never a standard error)."""
    d = float(simulation) - float(theory)
    ok = math.isfinite(d) and abs(d) < max_z * float(stderr) + allowance
    rule = (f"|sim − {what}| < {max_z:g}·stderr + {allowance_text} (= {max_z * float(stderr):.3g} + {allowance:.3g}; "
            "the allowance is the O(1/n) finite-width order, not an error bar)")
    return kind_check("prediction", name, theory, simulation, stderr, ok, rule)


def exponent_fit(n, D, se, *, correction: bool = False) -> tuple[float, float, float, float]:
    """Weighted log–log fit D = A n^{−p} (× e^{c/n} with ``correction``): (p, se_p, log A, se_logA), with
    se(log D) = se/D (delta method). ``correction`` absorbs the next order of a 1/n expansion, D = A n^{−p}(1 + O(1/n)),
    so the fitted p is the asymptotic exponent (needs ≥ 3 widths). Two points give the exact line, errors propagated."""
    n, D, se = (np.asarray(a, np.float64) for a in (n, D, se))
    if np.any(D <= 0):
        return math.nan, math.inf, math.nan, math.inf
    if not correction:
        a, sa, b, sb = intercept_fit(np.log(n), np.log(D), se / D)
        return -b, sb, a, sa
    w = D / se
    A = np.stack([np.ones_like(n), np.log(n), 1.0 / n], axis=1) * w[:, None]
    coef, *_ = np.linalg.lstsq(A, np.log(D) * w, rcond=None)
    cov = np.linalg.inv(A.T @ A)
    return float(-coef[1]), float(np.sqrt(cov[1, 1])), float(coef[0]), float(np.sqrt(cov[0, 0]))


def power_law_check(name: str, n, D, se, *, expected: float, max_z: float, max_se: float,
                    correction: bool = False) -> list[Check]:
    """Two checks on D(n) ∝ n^{−p}: prediction |p − expected| < max_z·se_p, and resolution se_p ≤ max_se
    (so the first is not passed by an unresolved fit). ``correction``: fit D = A n^{−p} e^{c/n} (see exponent_fit)."""
    p, sp, _, _ = exponent_fit(n, D, se, correction=correction)
    widths = ", ".join(str(int(w)) for w in np.asarray(n))
    pred = kind_check("prediction", f"{name}: exponent p of D ∝ n^-p (widths {widths})", expected, p, sp,
                      bool(math.isfinite(p) and abs(p - expected) < max_z * sp),
                      f"|p − {expected:g}| < {max_z:g}·se_p (weighted fit of log D = log A − p log n"
                      + (" + c/n" if correction else "") + " over the widths; se from the ensemble errors)")
    res = kind_check("resolution", f"{name}: exponent resolved", None, sp, None,
                     bool(math.isfinite(sp) and sp <= max_se), f"se_p ≤ {max_se:g} (the fit resolves the exponent)")
    return [pred, res]


def poly_fit(x, y, se, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares y = Σ_k a_k x^k (k ≤ degree) with independent errors se: (a, cov(a)).

    The covariance (AᵀWA)⁻¹ comes from the stated errors (not rescaled by the residuals)."""
    x, y, se = (np.asarray(v, np.float64) for v in (x, y, se))
    A = np.stack([x**k for k in range(degree + 1)], axis=1) / se[:, None]
    coef, *_ = np.linalg.lstsq(A, y / se, rcond=None)
    return coef, np.linalg.inv(A.T @ A)


def extrapolation_check(name: str, theory, n, y, se, *, degree: int, max_z: float, what: str) -> Check:
    """prediction: the n → ∞ intercept a_0 of y(n) = a_0 + a_1/n (+ a_2/n²) fitted over the widths equals the
    infinite-width ``theory``: |a_0 − theory| < max_z·se(a_0)."""
    coef, cov = poly_fit(1.0 / np.asarray(n, np.float64), y, se, degree)
    a0, s0 = float(coef[0]), float(np.sqrt(cov[0, 0]))
    terms = " + a_1/n" + (" + a_2/n²" if degree >= 2 else "")
    ok = math.isfinite(a0) and abs(a0 - float(theory)) < max_z * s0
    return kind_check("prediction", name, theory, a0, s0, ok,
                      f"|a_0 − {what}| < {max_z:g}·se(a_0), a_0 the intercept of a_0{terms} fitted over the widths "
                      "(weighted; se from the ensemble errors)")
