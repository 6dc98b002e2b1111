"""Shared test policy: one tolerance table per dtype and the z-score policy of ``deepeft.statistics``.

Import from here (``from conftest import Z_MAX, TOL, assert_close``) instead of writing numbers in tests:

* ``Z_MAX`` — a Monte Carlo test passes when |z| < Z_MAX (the library's agreement rule, 5σ);
* ``TOL[dtype][kind]`` — relative tolerances of deterministic comparisons, by what limits the accuracy:
  ``"exact"`` (closed forms, identities: rounding only), ``"quadrature"`` (a numerical integral or series
  against a closed form), ``"solve"`` (a root, fixed point or fit found iteratively).
"""

from __future__ import annotations

import sys

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


def _import_every_module() -> None:
    """Import every deepeft module and resolve every lazily exported name once, before any test runs.

    The package namespaces are lazy (deepeft._lazy): a module or name is bound on first use. A mutation test
    monkeypatches a function (e.g. ``residual_recursions.residual_single_input``); a module first imported *while* the
    patch is active (through ``deepeft.dispatch``) would bind the patched function by ``from … import …`` for the rest
    of the worker's tests, so later tests saw the mutated theory (CI: residual phase × 1.3). Importing everything
    first makes every binding the real one, as the eager imports did. Only a missing optional
    package (torch, flax, equinox, scikit-learn, neural-tangents) is skipped (their tests skip too); any other
    import error fails the session at once."""
    import importlib
    import pkgutil

    import deepeft

    optional = {"torch", "flax", "equinox", "sklearn", "neural_tangents"}

    def load(get):
        try:
            get()
        except ModuleNotFoundError as exc:  # only an absent optional package is skipped; any other failure is raised
            if (exc.name or "").split(".")[0] not in optional:
                raise

    for info in pkgutil.walk_packages(deepeft.__path__, "deepeft."):
        load(lambda info=info: importlib.import_module(info.name))
        mod = sys.modules.get(info.name)
        for name in getattr(mod, "__all__", ()) if info.ispkg and mod is not None else ():
            load(lambda mod=mod, name=name: getattr(mod, name))
    for name in deepeft.__all__:
        load(lambda name=name: getattr(deepeft, name))


_import_every_module()
