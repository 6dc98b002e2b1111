"""Lazy package namespaces (issue 15, `deepeft advise` in ≤ 2 s): ``import deepeft`` imports no numerical library,
every public name still resolves (``de.X``, ``from deepeft import X``, ``dir``), the dispatch registry finds the
implementations of ResidualMLP/GCN without their modules being imported first, and ``deepeft advise`` does not
import the heavy optional stacks (xarray, zarr, matplotlib, dask, networkx, torch, scipy.sparse)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import deepeft as de

SRC = Path(__file__).resolve().parents[2] / "src"
HEAVY = ("jax", "scipy", "xarray", "zarr", "matplotlib", "dask", "networkx", "torch", "pandas")
ADVISE_FORBIDDEN = ("xarray", "zarr", "matplotlib", "dask", "networkx", "torch", "pandas", "scipy.sparse",
                    "deepeft.experiments", "deepeft.simulate", "deepeft.diagnostics")

_SCRIPT = r"""
import json, sys
heavy = json.loads(sys.argv[1]); forbidden = json.loads(sys.argv[2])
import deepeft as de
after_import = sorted(m for m in heavy if m in sys.modules)
import numpy as np
from deepeft.cli import main
try:
    main(["advise", "--activation", "tanh", "--depth", "5", "--width", "16", "--json"])
except SystemExit as exc:
    assert not exc.code, exc.code
after_advise = sorted(m for m in forbidden if m in sys.modules)
net = de.ResidualMLP(3, [8, 8], 1, "tanh", C_b=0.0, C_W=0.5, gamma=0.7)
X = np.array([[0.3, -1.0, 0.5], [1.2, 0.1, -0.4]])
lazy = "deepeft.theory.residual_recursions" not in sys.modules
K = de.kernel(net, X)
from deepeft.theory.residual_recursions import residual_kernels
same = bool(np.array_equal(K, residual_kernels(net, X, ntk=False).K))
print(json.dumps({"import": after_import, "advise": after_advise, "lazy": lazy, "same": same}), file=sys.stderr)
"""


@pytest.fixture(scope="module")
def fresh_process():
    env = dict(os.environ, JAX_PLATFORMS="cpu", DEEPEFT_JAX_CACHE="0", PYTHONPATH=str(SRC))
    p = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps(HEAVY), json.dumps(ADVISE_FORBIDDEN)],
                       env=env, capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stderr.strip().splitlines()[-1])


def test_import_deepeft_imports_no_numerical_library(fresh_process):
    assert fresh_process["import"] == []


def test_advise_imports_no_heavy_stack(fresh_process):
    assert fresh_process["advise"] == []


def test_dispatch_loads_the_implementing_module_on_demand(fresh_process):
    assert fresh_process["lazy"] and fresh_process["same"]


@pytest.mark.parametrize("pkg", ["deepeft", "deepeft.theory", "deepeft.simulate", "deepeft.gaussian",
                                 "deepeft.diagnostics", "deepeft.interop"])
def test_every_public_name_resolves_and_is_listed(pkg):
    import importlib

    m = importlib.import_module(pkg)
    missing = [n for n in m.__all__ if getattr(m, n, None) is None]
    assert not missing, f"{pkg}.__all__ names that do not resolve: {missing}"
    assert set(m.__all__) <= set(dir(m))
    assert len(set(m.__all__)) == len(m.__all__), "duplicate names in __all__"


def test_lazy_names_are_the_module_objects():
    from deepeft import kernel as k1
    from deepeft.theory.kernel import kernel as k2
    from deepeft.theory.residual import residual_critical_point

    assert k1 is k2 is de.kernel
    assert de.residual_critical_point is residual_critical_point
    assert isinstance(de.theory, types.ModuleType) and isinstance(de.lattice, types.ModuleType)
    assert isinstance(de.deep_linear, types.ModuleType)
    assert isinstance(de.__version__, str)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        de.no_such_name  # noqa: B018


_SAME_NAME = r'''
import types
from deepeft.diagnostics.diagnose import diagnose_series  # the submodules first: the import system then sets
from deepeft.theory.dntk import DNTK  # package.<name> = <module>, which must not shadow the function of that name
import deepeft.simulate.metric_cumulants
import deepeft as de
import deepeft.diagnostics as dg, deepeft.simulate as sm, deepeft.theory as th
for f in (de.diagnose, dg.diagnose, dg.series_dbm, de.dntk, th.dntk, th.ddntk, th.function_space_gd,
          th.algorithm_projectors, sm.metric_cumulants):
    assert callable(f) and not isinstance(f, types.ModuleType), f
print("ok")
'''


def test_functions_named_like_their_module_survive_importing_the_module_first():
    """`de.diagnose` was the module deepeft.diagnostics.diagnose after `from deepeft.diagnostics.diagnose import …`
    (found by CI: 'module' object is not callable); the lazy packages keep the function, as the eager imports did."""
    p = subprocess.run([sys.executable, "-c", _SAME_NAME], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]
