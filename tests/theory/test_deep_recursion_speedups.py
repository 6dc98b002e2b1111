"""The two devices that make the 10⁵-layer single-input runs fast, each against the plain computation.

* ``fold_even``: a mirror-symmetric 1-D rule folded onto x ≥ 0 integrates even functions as the full rule does
  (to rounding) and leaves a rule split at a kink c ≠ 0 unchanged.
* ``_affine_prefix``: the two-level (blocked) prefix of y ↦ a y + b equals the sequential recursion.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from deepeft._x64 import x64
from deepeft.gaussian.engine import fold_even, gauss1d_nodes
from deepeft.theory.ntk_single_input import _affine_prefix


def test_fold_even_halves_the_rule_for_even_integrands():
    z, w = gauss1d_nodes(np.array(2.0), (), panels=12)
    x = z / np.sqrt(2.0)
    xf, wf = fold_even(x, w)
    assert xf.size == x.size // 2 and np.all(xf >= 0)
    for f in (lambda t: np.tanh(1.3 * t) ** 2, lambda t: t * np.tanh(t) / np.cosh(t) ** 2, lambda t: t**4):
        assert abs(np.sum(wf * f(xf)) - np.sum(w * f(x))) <= 1e-15 * abs(np.sum(w * f(x))) + 1e-17
    # an odd integrand is NOT integrated by the folded rule (why it is only used for even ones)
    assert abs(np.sum(wf * np.tanh(xf)) - np.sum(w * np.tanh(x))) > 0.1
    # a rule split at a kink c ≠ 0 is not mirror-symmetric: returned unchanged
    z2, w2 = gauss1d_nodes(np.array(1.0), (0.3,), panels=12)
    x2, v2 = fold_even(z2, w2)
    assert np.array_equal(x2, z2) and np.array_equal(v2, w2)


def test_affine_prefix_equals_sequential_recursion():
    rng = np.random.default_rng(0)
    for L, y0 in ((3001, None), (3001, 0.7), (2, 0.7), (257, None), (513, 1.3)):  # several blocks, padding, one map
        a, b = rng.uniform(0.5, 1.05, L), rng.normal(size=L)
        y = np.empty(L)
        y[0] = 0.0 if y0 is None else y0
        for k in range(L - 1):
            y[k + 1] = a[k] * y[k] + b[k]
        with x64():
            got = np.asarray(_affine_prefix(jnp.asarray(a), jnp.asarray(b), None if y0 is None else jnp.float64(y0)))
        assert got.shape == (L,)
        np.testing.assert_allclose(got, y, rtol=1e-11, atol=1e-12 * np.abs(y).max())
        if L > 2:
            assert not np.allclose(got[1:], y[:-1])  # an off-by-one layer shift would fail
