"""Regression: the speed work on the NTK fluctuations and the vertex (issue 13 (a)) changes no number.

Kind: regression against stored numbers. ``data/ntk_fluctuations_reference.npz`` holds V, A, B, D, F
(``de.ntk_fluctuations``) and ``de.four_point_vertex`` for tanh, relu, gelu at N = 3, L = 4, computed by the
code before the speed changes (commit 29f6bbc); every array must agree to ≤ 1e-12 relative (to its largest
entry). The batched-rule test checks the chunked evaluation of large batches against one unchunked call.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

import deepeft as de
from deepeft.activations import activation
from deepeft.gaussian import batched

REF = Path(__file__).parent / "data" / "ntk_fluctuations_reference.npz"
RTOL = 1e-12
X = np.array([[1.0, 0.2, -0.4], [0.3, -1.1, 0.5], [-0.7, 0.4, 0.9]])


@pytest.mark.slow  # ~20–60 s each on the shared 2-core machine (XLA compiles of the 3- and 4-variable rules)
@pytest.mark.parametrize("act", ["tanh", "relu", pytest.param("gelu", marks=pytest.mark.skipif(
    not __import__("os").environ.get("DEEPEFT_FULL"), reason="full-size only (DEEPEFT_FULL=1): relu covers the no-parity path"))])
def test_ntk_fluctuations_unchanged(act):
    ref = np.load(REF)
    net = de.MLP(3, [32] * 3, 1, act, C_b=0.1, C_W=1.3, lambda_b=0.5, lambda_W=1.5)
    fl = de.ntk_fluctuations(net, X)
    got = {k: getattr(fl, k) for k in "VABDF"}
    got["V4"] = de.four_point_vertex(net, X)
    for k, v in got.items():
        r = ref[f"{act}_{k}"]
        assert v.shape == r.shape
        scale = np.max(np.abs(r))
        assert scale > 0 or k == "V4"
        np.testing.assert_allclose(v, r, rtol=0, atol=RTOL * scale, err_msg=f"{act} {k}")


@pytest.mark.parametrize(
    "name, rule", [("tanh", ("trap", 17)), pytest.param("relu", ("gl", 2, 4), marks=pytest.mark.slow)]
)
def test_chunked_batches_equal_one_call(name, rule):
    """70 rows (cut into fixed chunks, padded to 80) equal the same rows in one power-of-two padded call."""
    act = activation(name)
    rng = np.random.default_rng(3)
    Z = rng.normal(size=(70, 4, 7))
    K = np.einsum("bik,bjk->bij", Z, Z) / 7
    keys = sorted({p for pat in ((0, 0, 0, 0), (0, 0, 1, 1)) for p in itertools.permutations(pat)})
    terms = tuple(tuple(((d,), 0) for d in key) for key in keys)
    terms = batched._norm_terms(terms)
    got = batched.run_rule(act, terms, K, rule)
    Lc = batched._cholesky(K)
    Lp = np.concatenate([Lc, np.broadcast_to(np.eye(4), (128 - 70, 4, 4))])
    from deepeft._x64 import x64

    with x64():
        one = np.array(batched._program(act, terms, 4, rule)(Lp))[:70]
    assert batched._chunk_rows(4, rule) < 70  # the chunked path is taken
    np.testing.assert_allclose(got, one, rtol=1e-13, atol=0)


def test_parity_detection():
    assert batched.activation_parity(activation("tanh")) == -1
    assert batched.activation_parity(activation("erf")) == -1
    assert batched.activation_parity(activation("gelu")) == 0
    assert batched.activation_parity(activation("relu")) == 0  # kinked: never halved (Gauss–Legendre panels)
    import jax.numpy as jnp

    assert batched.activation_parity(activation(lambda z: jnp.tanh(z))) == 0  # a custom σ is never assumed symmetric
    assert batched.term_parity(activation("tanh"), (((0,), 0), ((1,), 0), ((0,), 0))) == 1  # σσ′σ
    assert batched.term_parity(activation("tanh"), (((0,), 0), ((1,), 0), ((0,), 1))) == -1  # σσ′(zσ)
    assert batched.term_parity(activation("tanh"), (((0,), 0), ((1,), 0), ((1,), 0))) == -1  # σσ′σ′


def test_half_grid_equals_full_grid():
    """Even integrands on the half outer grid (tanh) equal the full grid: adding one odd term forces the full grid."""
    act = activation("tanh")
    rng = np.random.default_rng(5)
    Z = rng.normal(size=(5, 3, 6))
    K = np.einsum("bik,bjk->bij", Z, Z) / 6
    even = batched._norm_terms(((((0,), 0), ((0,), 0), ((1,), 0)), ((((1,), 0), ((0,), 1), ((1,), 1)))))
    odd = batched._norm_terms(((((0,), 0), ((0,), 0), ((0,), 0)),))
    half = batched.run_rule(act, even, K, ("trap", 33))
    full = batched.run_rule(act, even + odd, K, ("trap", 33))[:, :2]
    np.testing.assert_allclose(half, full, rtol=1e-13, atol=1e-16)
    assert np.max(np.abs(half)) > 1e-2
