"""conventions="neural_tangents": NT's time, loss normalisation and relative diag_reg (docs/learning.md).

Two checks: (1) the converter identities, always; (2) against neural-tangents' own
``predict.gradient_descent_mse_ensemble`` / ``gp_inference`` when its ``_src.predict`` module can be
imported (NT is not a dependency; the package-level import needs TensorFlow, so only the pure-JAX
``predict`` module is loaded).
"""

from __future__ import annotations

import collections
import importlib.util
import os
import sys
import types

import numpy as np
import pytest

import deepeft as de
from deepeft.theory.kernel_learning import gd_from_kernels
from deepeft.theory.learning_inputs import nt_diag_reg_to_variance, nt_time_to_tau

NET = de.MLP(3, [32] * 2, 2, "erf", C_b=0.1, C_W=1.5, lambda_b=0.1, lambda_W=1.5)


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((9, 3)), rng.standard_normal((9, 2)), rng.standard_normal((4, 3))


def test_converter_identities():
    """NT flow at (t, lr) = ours at τ = lr·t/(N·n_out); diag_reg regularizes Θ̃ by diag_reg·tr Θ̃/N, not K̃."""
    X, Y, XB = _data()
    K, T = de.kernel_and_ntk(NET, np.concatenate([X, XB]))
    K, T = K[-1], T[-1]
    N, n_out = Y.shape
    t, lr, reg = np.array([0.5, 20.0]), 0.3, 0.01
    nt = de.gd_prediction(NET, X, Y, XB, t, eta=lr, noise=reg, conventions="neural_tangents")
    tau = nt_time_to_tau(t, lr, N * n_out)
    np.testing.assert_allclose(tau, lr * t / 18)
    Treg = T[:N, :N] + nt_diag_reg_to_variance(reg, T[:N, :N]) * np.eye(N)
    ours = gd_from_kernels(Treg, T[N:, :N], K[:N, :N], K[N:, :N], K[N:, N:], Y, tau)
    np.testing.assert_allclose(nt.mean, ours.mean, rtol=1e-13)
    np.testing.assert_allclose(nt.cov, ours.cov, rtol=1e-12)
    assert nt.continuous and nt.eta == lr


def _nt_predict():
    """neural_tangents._src.predict without the package __init__ (which imports TensorFlow)."""
    spec = importlib.util.find_spec("neural_tangents")
    if spec is None or not spec.submodule_search_locations:
        if os.environ.get("DEEPEFT_REQUIRE_NEURAL_TANGENTS") == "1":  # CI: pip install --no-deps neural-tangents==0.6.5
            pytest.fail("DEEPEFT_REQUIRE_NEURAL_TANGENTS=1 but neural-tangents is not installed")
        pytest.skip("neural-tangents not installed (optional cross-check)")
    root = next(iter(spec.submodule_search_locations))
    saved = {k: sys.modules.get(k) for k in ("neural_tangents", "neural_tangents._src")}
    try:
        for name, path in (("neural_tangents", root), ("neural_tangents._src", os.path.join(root, "_src"))):
            m = types.ModuleType(name)
            m.__path__ = [path]
            sys.modules[name] = m
        from neural_tangents._src import predict
    except Exception as exc:  # noqa: BLE001 - pragma: no cover; depends on the installed NT/JAX pair
        pytest.skip(f"neural_tangents._src.predict not importable here: {exc}")
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return predict


@pytest.mark.parametrize("diag_reg, lr", [(0.0, 1.0), (0.01, 0.3)])
def test_against_neural_tangents_predict(diag_reg, lr):
    import jax

    predict = _nt_predict()
    X, Y, XB = _data()
    Kern = collections.namedtuple("Kernel", "nngp ntk")

    def kernel_fn(x1, x2, get, **kw):
        K, T = de.kernel_and_ntk(NET, np.asarray(x1), None if x2 is None else np.asarray(x2))
        k = Kern(K[-1], T[-1])
        return getattr(k, get) if isinstance(get, str) else Kern(*(getattr(k, g) if g in get else None for g in Kern._fields))

    with jax.enable_x64(True):
        pf = predict.gradient_descent_mse_ensemble(kernel_fn, X, Y, learning_rate=lr, diag_reg=diag_reg)
        ts = np.array([0.5, 10.0, 200.0])
        ref = pf(t=ts, x_test=XB, get="ntk", compute_cov=True)
        ref_inf = pf(t=None, x_test=XB, get="ntk", compute_cov=True)
        ref_gp = pf(t=None, x_test=XB, get="nngp", compute_cov=True)
    got = de.gd_prediction(NET, X, Y, XB, ts, eta=lr, noise=diag_reg, conventions="neural_tangents")
    np.testing.assert_allclose(got.mean, np.asarray(ref.mean), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.cov, np.asarray(ref.covariance), rtol=1e-10, atol=1e-12)
    inf = de.gd_prediction(NET, X, Y, XB, np.inf, eta=lr, noise=diag_reg, conventions="neural_tangents")
    np.testing.assert_allclose(inf.mean, np.asarray(ref_inf.mean), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(inf.cov, np.asarray(ref_inf.covariance), rtol=1e-10, atol=1e-12)
    gp = de.nngp_posterior(NET, X, Y, XB, noise=diag_reg, conventions="neural_tangents")
    np.testing.assert_allclose(gp.mean, np.asarray(ref_gp.mean), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gp.cov, np.asarray(ref_gp.covariance), rtol=1e-10, atol=1e-12)
