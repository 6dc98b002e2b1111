"""Shared pieces of the learning experiments (bayes-posterior, evidence-criticality, kernel-gd-vs-trained,
generalization): fixed training/test data, the power-law exponent fit and labelled checks.

Not an experiment module (the leading underscore keeps the registry from importing it as one).
Every check's rule starts with its kind: "prediction" (theory vs simulation, z-score from the standard
error), "resolution" (the run resolves what it claims: a grid step, a fitted error), or "finding" (a
property of the theory or of the data that the run establishes, e.g. a maximum at criticality).
"""

from __future__ import annotations

import math

import numpy as np

from .checks import Check
from ._foundation import fixed_inputs, intercept_fit

__all__ = ["exponent_fit", "kind_check", "learning_data", "power_law_check", "allowance_check"]


def learning_data(n_train: int, n_test: int, n0: int, n_out: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic (X_train, Y_train, X_test): inputs from :func:`fixed_inputs` (|x|²/n0 in [0.6, 1.4]),
    targets y_{i;α} = sin(2 x_{1;α} + i) / 2 + x_{2;α}/4 (a smooth function of the input, O(1))."""
    X = fixed_inputs(n_train + n_test, n0)
    XA, XB = X[:n_train], X[n_train:]
    i = np.arange(n_out)[None, :]
    Y = np.sin(2.0 * XA[:, :1] + i) / 2.0 + XA[:, 1 % n0 : 1 % n0 + 1] / 4.0
    return XA, Y, XB


def kind_check(kind: str, name: str, theory, simulation, stderr, ok: bool, rule: str) -> Check:
    """A Check whose rule text begins with its kind (prediction/resolution/finding)."""
    if kind not in ("prediction", "resolution", "finding"):
        raise ValueError(kind)
    return Check(name, float(theory), float(simulation), None if stderr is None else float(stderr),
                 _z(theory, simulation, stderr), bool(ok), f"{kind}: {rule}")


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


def exponent_fit(n, D, se) -> tuple[float, float, float, float]:
    """Weighted log–log fit D = A n^{−p}: (p, se_p, log A, se_logA) with se(log D) = se/D (delta method).

    Two widths give the exact line through the two points with propagated errors."""
    n, D, se = (np.asarray(a, np.float64) for a in (n, D, se))
    if np.any(D <= 0):
        return math.nan, math.inf, math.nan, math.inf
    a, sa, b, sb = intercept_fit(np.log(n), np.log(D), se / D)
    return -b, sb, a, sa


def power_law_check(name: str, n, D, se, *, expected: float, max_z: float, max_se: float) -> list[Check]:
    """Two checks on D(n) ∝ n^{−p}: prediction |p − expected| < max_z·se_p, and resolution se_p ≤ max_se
    (so the first is not passed by an unresolved fit)."""
    p, sp, _, _ = exponent_fit(n, D, se)
    widths = ", ".join(str(int(w)) for w in np.asarray(n))
    pred = kind_check("prediction", f"{name}: exponent p of D ∝ n^-p (widths {widths})", expected, p, sp,
                      bool(math.isfinite(p) and abs(p - expected) < max_z * sp),
                      f"|p − {expected:g}| < {max_z:g}·se_p (weighted log–log fit over widths; se from the ensemble errors)")
    res = kind_check("resolution", f"{name}: exponent resolved", max_se, sp, None,
                     bool(math.isfinite(sp) and sp <= max_se), f"se_p ≤ {max_se:g} (the fit resolves the exponent)")
    return [pred, res]
