"""Shared test policy: one tolerance table per dtype and the z-score policy of ``deepeft.statistics``.

Import from here (``from conftest import Z_MAX, TOL, assert_close``) instead of writing numbers in tests:

* ``Z_MAX`` — a Monte Carlo test passes when |z| < Z_MAX (the library's agreement rule, 5σ);
* ``TOL[dtype][kind]`` — relative tolerances of deterministic comparisons, by what limits the accuracy:
  ``"exact"`` (closed forms, identities: rounding only), ``"quadrature"`` (a numerical integral or series
  against a closed form), ``"solve"`` (a root, fixed point or fit found iteratively).
"""

from __future__ import annotations

import numpy as np

from deepeft.statistics import Z_CLAIM, Z_MAX

__all__ = ["TOL", "Z_CLAIM", "Z_MAX", "assert_close"]

TOL: dict[type, dict[str, float]] = {
    np.float64: {"exact": 1e-12, "quadrature": 1e-9, "solve": 1e-7},
    np.float32: {"exact": 1e-5, "quadrature": 1e-4, "solve": 1e-3},
}


def assert_close(actual, desired, kind: str = "exact", *, atol: float = 0.0, dtype=None):
    """``np.testing.assert_allclose`` with rtol = TOL[dtype][kind] (dtype defaults to ``actual``'s, float64
    for non-float input)."""
    a = np.asarray(actual)
    dt = np.dtype(dtype or (a.dtype if a.dtype in (np.float32, np.float64) else np.float64)).type
    np.testing.assert_allclose(actual, desired, rtol=TOL[dt][kind], atol=atol)
