"""Gaussian integrals (book ch. 1, §4.4): Wick pairings, cumulants from samples, nearly-Gaussian actions and
the expectation engine ⟨F(z_1..z_k)⟩_K — the one place that decides how an expectation is computed
(closed forms, Mehler series, quadrature split at an activation's breakpoints, Monte Carlo). See docs/engine.md.

Internals (``closed_forms``, ``mehler``, ``batched``, ``quadrature``, ``gauss1d``, ``montecarlo``) are reached
through :mod:`deepeft.gaussian.engine`; the recursions use its entry points (``two_point_core``,
``one_point_core``, ``fused_mode``, ``closed_two_point_jax``, ``mehler_plan``, ``mehler_two_point_jax``,
``batched_expect``, ``expect1d``, ``breakpoints``).
"""

from typing import TYPE_CHECKING

from .._lazy import attach

if TYPE_CHECKING:  # imported on first use (PEP 562, deepeft._lazy)
    from .action import ExactCorrelators, NearlyGaussianAction
    from .cumulants import connected, moment
    from .engine import Factor, breakpoints, expect, expect1d, two_point, two_point_maps
    from .wick import gaussian_moment, pairings, wick_tensor

__getattr__, __dir__ = attach(globals())

__all__ = [
    "ExactCorrelators",
    "Factor",
    "NearlyGaussianAction",
    "breakpoints",
    "connected",
    "expect",
    "expect1d",
    "gaussian_moment",
    "moment",
    "pairings",
    "two_point",
    "two_point_maps",
    "wick_tensor",
]
