"""Physically suspect results warn (README): de.kernel, de.frozen_ntk, de.vertex_flow, de.four_point_vertex and
de.sample_ensemble emit one DeepEFTWarning per call when the kernel flow is exponential in depth (phase()'s
criterion applied to the result: (L − 1)·log(K^(L−1)/K^(L−2)), the last step between hidden layers, beyond
±log 100), and stay silent at criticality, also with an output layer of its own C_W."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import deepeft as de
from deepeft.theory.criticality import kernel_depth_warning

X = np.random.default_rng(0).normal(size=(3, 4))


def _deepeft_warnings(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [w for w in caught if issubclass(w.category, de.DeepEFTWarning)]


def test_off_critical_relu_warns_once_per_call():
    net = de.MLP(input_dim=4, widths=[64] * 59, activation="relu", C_W=1.0)
    K, ws = _deepeft_warnings(de.kernel, net, X)
    assert K[-1, 0, 0] < 1e-15  # halves every layer: 2^-59 of the first layer
    assert len(ws) == 1 and "kernel: " in str(ws[0].message) and "collapses exponentially" in str(ws[0].message)
    assert ws[0].filename == __file__  # points at the caller
    for fn in (de.frozen_ntk, de.kernel_and_ntk):
        assert len(_deepeft_warnings(fn, net, X)[1]) == 1, fn
    small = de.MLP(input_dim=4, widths=[16] * 29, activation="relu", C_W=1.0)
    for fn in (de.vertex_flow, de.four_point_vertex):  # nested calls (vertex_flow → kernel) warn once
        _, ws = _deepeft_warnings(fn, small, X[:1])
        assert len(ws) == 1 and str(ws[0].message).startswith(fn.__name__ + ": "), (fn, ws)
    ens, ws = _deepeft_warnings(de.sample_ensemble, small, X[:2], n_networks=64, seed=0)
    assert len(ws) == 1 and "sample_ensemble: " in str(ws[0].message)


def test_exploding_and_overflowing_kernels_warn():
    net = de.MLP(input_dim=4, widths=[64] * 29, activation="relu", C_W=3.0)
    _, ws = _deepeft_warnings(de.kernel, net, X)
    assert len(ws) == 1 and "grows exponentially" in str(ws[0].message)
    K = np.ones((3, 2, 2))
    K[-1] = np.inf
    assert "overflows" in kernel_depth_warning(K)


@pytest.mark.parametrize(("act", "C_W", "depth"), [("relu", 2.0, 60), ("tanh", 1.0, 200), ("linear", 1.0, 100)])
def test_critical_networks_stay_silent(act, C_W, depth):
    net = de.MLP(input_dim=4, widths=[64] * (depth - 1), activation=act, C_W=C_W)
    K, ws = _deepeft_warnings(de.kernel, net, X)
    assert ws == []
    d = np.diagonal(K, axis1=1, axis2=2)[:, 0]
    assert abs((depth - 1) * math.log(d[-1] / d[-2])) < math.log(100)  # the power law the test relies on


def test_own_readout_C_W_is_not_a_phase():
    """The output layer's C_W only rescales K^(L) once: a critical ReLU net with a C_W = 1 (or zero) readout stays
    silent although K^(L)/K^(L−1) = ½ (= 0), and an off-critical one with a critical readout still warns (the step
    between hidden layers, as de.phase; the last step would have read (L − 1)·log ½ = −8.3 < −log 100)."""
    for out in (1.0, 0.0):
        net = de.MLP(input_dim=4, widths=[64] * 12, activation="relu", C_W=[2.0] * 12 + [out])
        K, ws = _deepeft_warnings(de.kernel, net, X)
        assert ws == [] and K[-1, 0, 0] == pytest.approx(out / 2 * K[-2, 0, 0], rel=1e-12)
    off = de.MLP(input_dim=4, widths=[64] * 12, activation="relu", C_W=[1.0] * 12 + [2.0])
    _, ws = _deepeft_warnings(de.kernel, off, X)
    assert len(ws) == 1 and "K^(L−1)/K^(L−2) = 0.5" in str(ws[0].message)
    assert "collapses exponentially" in str(ws[0].message)


def test_readme_example_is_silent():
    Xr = np.random.default_rng(0).normal(size=(3, 10))
    net = de.MLP(input_dim=10, widths=[128] * 4, activation="tanh", C_b=0.0, C_W=1.0)
    assert _deepeft_warnings(de.kernel, net, Xr)[1] == []
    assert _deepeft_warnings(de.vertex_flow, net, Xr, nlo=True)[1] == []
