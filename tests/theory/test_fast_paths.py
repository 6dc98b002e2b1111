"""The fast paths of the kernel recursions equal the general layer-by-layer path.

* one distinct input → the scanned single-input recursion (5.108)–(5.110) for K, Θ (9.5), V (4.119), G¹ (4.115);
* N padded to a bucket size and the Mehler series to a fixed coefficient length (one compiled update).
"""

from __future__ import annotations

import numpy as np
import pytest

import deepeft as de
from deepeft.theory import kernel as kernel_module
from deepeft.theory.kernel import _bucket


def _general(monkeypatch, fn, *args, **kw):
    with monkeypatch.context() as m:
        m.setattr(kernel_module, "SCAN_SINGLE_INPUT", False)
        return fn(*args, **kw)


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize(
    "act, C_b, C_W, widths",
    [
        ("tanh", 0.0, 1.0, [32] * 11),
        ("relu", 0.1, 2.0, [8, 16, 32, 16, 8, 24]),
        ("gelu", 0.17292239, 1.98305826, [20] * 9),
        ("erf", 0.2, 1.3, [16] * 7),
        ("swish", 0.0, 1.8, [40, 20, 40, 20]),
    ],
)
def test_single_input_scan_equals_general_path(monkeypatch, act, C_b, C_W, widths):
    """K, Θ, V, G¹ of one input (and of three copies of it) agree with the general path to 1e-12.

    The copies are compared with the general path's single-input values (at ρ = 1 the general path
    itself loses digits in ⟨σ'σ'⟩ of kinked σ, see test_kernel's ill-conditioned entries)."""
    net = de.MLP(4, widths, 1, act, C_b=C_b, C_W=C_W, lambda_b=0.7, lambda_W=1.3)
    x = np.array([[0.3, -1.2, 0.8, 0.5]])
    Kg, Tg = _general(monkeypatch, de.kernels, net, x)
    flow_g = _general(monkeypatch, de.vertex_flow, net, x, nlo=True)
    for X in (x, np.repeat(x, 3, axis=0)):
        N = len(X)
        K, T = de.kernels(net, X)
        assert K.shape == T.shape == (net.L, N, N)
        assert _rel(K, Kg) < 1e-12 and _rel(T, Tg) < 1e-12
        flow = de.vertex_flow(net, X, nlo=True)
        assert flow.V.shape == (net.L, N, N, N, N)
        assert _rel(flow.K, flow_g.K) < 1e-12
        assert _rel(flow.V, flow_g.V) < 1e-12
        # G¹ can vanish identically (ReLU: g″ = 0): measure it on its natural scale max(|G¹|, |V|/K)
        scale = max(np.max(np.abs(flow_g.G1)), np.max(np.abs(flow_g.V)) / np.max(flow_g.K))
        assert np.max(np.abs(flow.G1 - flow_g.G1)) < 1e-12 * scale
        assert np.array_equal(flow.n_prev, flow_g.n_prev)


def test_single_input_scan_is_taken(monkeypatch):
    """The scan path really runs for one input (the general layer loop is never entered)."""

    def boom(*a, **k):
        raise AssertionError("general path used")

    monkeypatch.setattr(kernel_module, "_same_recursion", boom)
    net = de.MLP(3, [16] * 200, 1, "tanh", C_W=1.0)
    K = de.kernel(net, np.ones((1, 3)))
    assert K.shape == (201, 1, 1) and np.all(np.isfinite(K))


def test_bucketed_sizes_reuse_shapes():
    """Padding keeps the work within 1.25² of N and maps nearby N to one compiled size."""
    for n in range(1, 3000):
        b = _bucket(n)
        assert b >= n and (b <= 16 or b <= 1.25 * n + 1)
    assert _bucket(1000) == _bucket(993) == 1024


@pytest.mark.parametrize("act, C_W", [("tanh", 1.0), ("relu", 2.0)])
def test_padding_does_not_change_results(act, C_W):
    """A sub-matrix of the kernel of N inputs equals the kernel of those inputs alone (different buckets)."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 6))
    net = de.MLP(6, [30] * 6, 1, act, C_b=0.05, C_W=C_W)
    K, T = de.kernels(net, X)
    K5, T5 = de.kernels(net, X[:5])
    assert _rel(K[:, :5, :5], K5) < 1e-12 and _rel(T[:, :5, :5], T5) < 1e-12


def test_kernels_named_tuple_and_old_name():
    X = np.random.default_rng(0).standard_normal((4, 3))
    net = de.MLP(3, [8] * 3, 1, "tanh")
    res = de.kernels(net, X)
    K, T = de.kernel_and_ntk(net, X)
    assert np.array_equal(res.K, K) and np.array_equal(res.Theta, T)
    assert de.kernels(net, X, ntk=False).Theta is None
