"""The Gaussian expectation engine: dispatch, quadrature, Mehler series, MC and input errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import Z_MAX
from deepeft import DeepEFTInputError
from deepeft.activations import activation
from deepeft.gaussian import closed_forms
from deepeft.gaussian.engine import Factor, expect, two_point, two_point_maps
from deepeft.gaussian.quadrature import pivoted_cholesky

F = Factor
HSET = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _random_K(rng, k, rank, scale):
    A = rng.standard_normal((k, rank))
    K = scale * A @ A.T / rank
    return 0.5 * (K + K.T)


# -- Factor and input validation --------------------------------------------------------------
def test_factor_parse_and_str():
    assert Factor.parse("z^2 s s'") == Factor((0, 1), 2)
    assert Factor.parse("σ'' z") == Factor((2,), 1)
    assert str(Factor((1, 1), 1)) == "z^1 σ' σ'"
    with pytest.raises(DeepEFTInputError):
        Factor.parse("q")
    with pytest.raises(DeepEFTInputError):
        Factor((-1,))


def test_bad_inputs_raise_actionable_errors():
    K = np.eye(2)
    with pytest.raises(DeepEFTInputError, match="not positive semi-definite"):
        expect("tanh", (F(), F()), np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(DeepEFTInputError, match="number of factors"):
        expect("tanh", (F(),), K)
    with pytest.raises(DeepEFTInputError, match="Did you mean 'quadrature'"):
        expect("tanh", (F(), F()), K, method="quadratur")
    with pytest.raises(DeepEFTInputError, match="no closed form"):
        expect("tanh", (F(), F()), K, method="closed")
    with pytest.raises(DeepEFTInputError, match="k <= 4"):
        expect("tanh", tuple(F() for _ in range(5)), np.eye(5), method="quadrature")
    with pytest.raises(DeepEFTInputError, match="symmetric"):
        expect("tanh", (F(), F()), np.array([[1.0, 0.2], [0.1, 1.0]]))
    with pytest.raises(DeepEFTInputError, match="sqrt"):
        two_point("tanh", np.array([[1.0, 1.5], [1.5, 1.0]]))
    with pytest.raises(DeepEFTInputError, match="unknown activation"):
        expect("tanhh", (F(),), np.eye(1))


def test_float64_even_when_jax_is_float32():
    assert not jax.config.read("jax_enable_x64")
    v = expect("tanh", (F(), F()), np.array([[1.0, 0.3], [0.3, 0.5]]))
    assert v.dtype == np.float64
    assert jnp.zeros(1).dtype == jnp.float32  # the user's setting is untouched


# -- Pivoted Cholesky --------------------------------------------------------------------------
def test_pivoted_cholesky_rank_and_reconstruction():
    rng = np.random.default_rng(0)
    Ks = np.stack([_random_K(rng, 4, r, 1.0) for r in (4, 3, 2, 1)] + [np.zeros((4, 4))])
    L, perm, rank = pivoted_cholesky(Ks)
    assert list(rank) == [4, 3, 2, 1, 0]
    for b in range(Ks.shape[0]):
        P = Ks[b][np.ix_(perm[b], perm[b])]
        np.testing.assert_allclose(L[b] @ L[b].T, P, atol=1e-13)


# -- Quadrature vs closed forms on random (near-singular) K -----------------------------------
@HSET
@given(
    seed=st.integers(0, 10_000),
    k=st.integers(1, 3),
    deficit=st.integers(0, 2),
    scale=st.sampled_from([1e-3, 0.3, 1.0, 4.0]),
    name=st.sampled_from(["relu", "erf", "sin", "monomial", "leaky_relu", "perceptron"]),
    eps=st.sampled_from([0.0, 1e-9, 1e-4]),
)
def test_quadrature_matches_closed_forms(seed, k, deficit, scale, name, eps):
    rng = np.random.default_rng(seed)
    rank = max(1, k - deficit)
    K = _random_K(rng, k, rank, scale) + eps * scale * np.eye(k)  # singular or nearly singular
    act = activation(name, slope=0.3) if name == "leaky_relu" else activation(name)
    factors_pool = [F((0,)), F((1,)), F((0,), 1), F((1, 1)), F((0, 0))]
    fs = tuple(factors_pool[i] for i in rng.integers(0, len(factors_pool), k))
    if not closed_forms.has_closed_form(act, fs):
        fs = tuple(F((0,)) for _ in range(k))
    assume(closed_forms.has_closed_form(act, fs))
    c = expect(act, fs, K)
    q, err = expect(act, fs, K, method="quadrature", return_error=True)
    # natural size of the integrand: Π_a ⟨g_a²⟩^{1/2} (Cauchy–Schwarz scale)
    size = 1.0
    for a, f in enumerate(fs):
        size *= float(expect(act, F(f.derivs * 2, 2 * f.power), K[a : a + 1, a : a + 1])) ** 0.5
    assert abs(float(c) - float(q)) <= 1e-10 * max(abs(float(c)), size, 1e-300), (fs, c, q, err)


# -- Quadrature vs high-precision and vs MC for smooth activations without closed forms -------
def test_smooth_custom_activation_pair_vs_mpmath():
    """Quadrature path (no closed form: a custom erf) vs mpmath with the exact inner expectation."""
    act = activation(lambda z: jax.scipy.special.erf(z), name="erf_custom")
    assert act.family is None
    K = np.array([[1.2, 0.7], [0.7, 0.9]])
    mp.mp.dps = 25
    s1 = mp.sqrt(K[0, 0])
    b, v = K[0, 1] / K[0, 0], K[1, 1] - K[0, 1] ** 2 / K[0, 0]
    ref = float(mp.quad(lambda x: mp.erf(s1 * x) * mp.erf(b * s1 * x / mp.sqrt(1 + 2 * v)) * mp.npdf(x), [-mp.inf, 0, mp.inf]))
    got = float(expect(act, (F(), F()), K))
    assert abs(got - ref) <= 1e-12 * abs(ref)


@pytest.mark.parametrize("factor", [F((0, 0)), F((1,), 1), F((1, 1)), F((0,), 3)])
def test_tanh_one_point_vs_mpmath(factor):
    K = 2.3
    mp.mp.dps = 25
    sech2 = lambda z: 1 / mp.cosh(z) ** 2  # noqa: E731
    g = {0: mp.tanh, 1: sech2}

    def f(x):
        z = mp.sqrt(K) * x
        out = z**factor.power
        for d in factor.derivs:
            out *= g[d](z)
        return out * mp.npdf(x)

    ref = float(mp.quad(f, [-mp.inf, 0, mp.inf]))
    assert float(expect("tanh", factor, np.array([[K]]))) == pytest.approx(ref, rel=1e-13)


@pytest.mark.slow
@pytest.mark.skipif(not __import__("os").environ.get("DEEPEFT_FULL"), reason="full-size run only (DEEPEFT_FULL=1)")
def test_tanh_pair_vs_mpmath():
    K = np.array([[1.2, 0.7], [0.7, 0.9]])
    mp.mp.dps = 20
    s1 = mp.sqrt(K[0, 0])
    b = K[0, 1] / K[0, 0]
    v = mp.sqrt(K[1, 1] - K[0, 1] ** 2 / K[0, 0])

    def inner(z1):
        return mp.quad(lambda y: mp.tanh(b * z1 + v * y) * mp.npdf(y), [-mp.inf, 0, mp.inf])

    ref = float(mp.quad(lambda x: mp.tanh(s1 * x) * inner(s1 * x) * mp.npdf(x), [-mp.inf, 0, mp.inf]))
    got = float(expect("tanh", (F(), F()), K))
    assert abs(got - ref) <= 1e-12 * abs(ref)


@pytest.mark.parametrize("name", ["tanh", "gelu", "elu", "softplus"])
def test_three_point_quadrature_vs_mc(name):
    rng = np.random.default_rng(7)
    K = _random_K(rng, 3, 3, 1.0)
    fs = (F((0,)), F((1,)), F((0,), 1))
    q = float(expect(name, fs, K, rtol=1e-10))
    m, se = expect(name, fs, K, method="mc", n_samples=400_000, seed=1, return_error=True)
    z = (q - float(m)) / float(se)
    print(f"{name}: quad {q:.8f} mc {float(m):.8f} ± {float(se):.1e} z = {z:+.2f}")
    assert abs(z) < Z_MAX


def test_four_point_wick_vs_quadrature_rank_deficient():
    """k = 4 with rank-2 K (the two-input ⟨σσσσ⟩ pattern with parallel pairs)."""
    rng = np.random.default_rng(11)
    K = _random_K(rng, 4, 2, 1.0)
    act = activation("monomial", power=2)
    fs = (F(), F(), F((1,)), F((0,), 1))
    c = float(expect(act, fs, K))
    q = float(expect(act, fs, K, method="quadrature"))
    assert abs(c - q) <= 1e-12 * abs(c)


@pytest.mark.slow
def test_four_point_quadrature():
    """k = 4 nested quadrature vs the closed form (rank 3 by default; full rank with DEEPEFT_FULL=1)."""
    rng = np.random.default_rng(1)
    K = _random_K(rng, 4, 4 if __import__("os").environ.get("DEEPEFT_FULL") else 3, 1.0)
    c = float(expect("sin", tuple(F() for _ in range(4)), K))
    q, e = expect("sin", tuple(F() for _ in range(4)), K, method="quadrature", rtol=1e-8, return_error=True)
    assert abs(c - float(q)) <= 1e-8


def test_four_point_tanh_batch_uses_batched_rule_fast_and_agrees_with_mc_and_batched():
    """expect with k = 4 (tanh, a batch of random full-rank K) runs through the batched product rule:
    a few seconds, equal to gaussian.batched.product_expect, and within MC error (z-scores)."""
    import time

    from deepeft.gaussian import batched

    rng = np.random.default_rng(21)
    A = rng.standard_normal((6, 4, 6))
    K = A @ A.transpose(0, 2, 1) / 6
    fs = (F((1,)), F(), F(), F((0,), 1))  # ⟨σ'(z_0) σ(z_1) σ(z_2) z_3 σ(z_3)⟩
    t0 = time.perf_counter()
    v, err = expect("tanh", fs, K, rtol=1e-8, return_error=True)
    sec = time.perf_counter() - t0
    ref = batched.product_expect("tanh", (tuple((f.derivs, f.power) for f in fs),), K, tol=1e-10)[:, 0]
    m, se = expect("tanh", fs, K, method="mc", n_samples=200_000, seed=3, return_error=True)
    z = (v - m) / se
    print(f"k=4 tanh batch of 6: {sec:.2f} s, max err est {np.max(err):.1e}, z = {np.round(z, 2)}")
    assert sec < 10.0
    assert np.all(err <= 1e-8 * np.maximum(np.abs(v), 0.1))
    np.testing.assert_allclose(v, ref, rtol=1e-8, atol=1e-10)
    assert np.all(np.abs(z) < Z_MAX)


def test_zero_kernel_and_zero_rows():
    K0 = np.zeros((3, 3))
    fs = (F((1,)), F((1,), 0), F((0,)))
    assert float(expect("tanh", fs, K0)) == 0.0  # tanh(0) = 0
    assert float(expect("tanh", (F((1,)), F((1, 1))), np.zeros((2, 2)))) == 1.0
    K = np.diag([0.0, 0.7])
    got = float(expect("gelu", (F((1,)), F((0,))), K))
    ref = 0.5 * float(expect("gelu", F((0,)), np.array([[0.7]])))  # gelu'(0) = 1/2
    assert got == pytest.approx(ref, rel=1e-14)


def test_batched_shapes():
    rng = np.random.default_rng(2)
    Ks = np.stack([[_random_K(rng, 2, 2, s) for s in (0.5, 1.0, 2.0)] for _ in range(2)])
    v = expect("tanh", (F(), F()), Ks)
    assert v.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert v[i, j] == pytest.approx(float(expect("tanh", (F(), F()), Ks[i, j])), rel=1e-13)


def test_mc_for_k_above_four_warns_and_agrees_with_wick():
    act = activation("linear")
    rng = np.random.default_rng(4)
    K = _random_K(rng, 6, 6, 1.0)
    fs = tuple(F() for _ in range(6))
    exact = float(expect(act, fs, K, method="closed"))
    with pytest.warns(UserWarning, match="Monte Carlo"):
        m, se = expect(act, fs, K, n_samples=300_000, return_error=True)
    assert abs(float(m) - exact) < 5 * float(se)


# -- Two-point maps: Mehler series vs closed forms and quadrature -----------------------------
def _inputs(rng, N, n0=6):
    X = rng.standard_normal((N, n0))
    X[1] = 2.0 * X[0]  # parallel
    X[2] = -X[0]  # antipodal
    X[3] = X[4] + 1e-7 * rng.standard_normal(n0)  # nearly coincident
    X[5] = 0.0  # zero input
    return X @ X.T / n0


@pytest.mark.parametrize("name", ["erf", "sin"])
def test_mehler_matches_closed_forms(name):
    K = _inputs(np.random.default_rng(0), 40)
    for pair in ((0, 0), (1, 1), (0, 1)):
        c = two_point(name, K, *pair, method="closed") if name != "erf" or pair != (0, 1) else None
        m = two_point(name, K, *pair, method="mehler")
        if c is not None:
            scale = np.sqrt(np.outer(np.abs(np.diag(c)), np.abs(np.diag(c)))) + 1e-300
            assert np.max(np.abs(m - c) / np.maximum(scale, 1e-3)) < 1e-11


@pytest.mark.parametrize("name", ["tanh", "gelu", "elu", "swish"])
def test_mehler_matches_quadrature_entries(name):
    rng = np.random.default_rng(1)
    K = _inputs(rng, 30)
    maps = two_point_maps(name, K, ((0, 0), (1, 1)))
    idx = [(0, 1), (0, 2), (3, 4), (5, 7), (8, 9), (6, 6), (10, 20)]
    K2 = np.stack([[[K[a, a], K[a, b]], [K[a, b], K[b, b]]] for a, b in idx])
    for M, pair in zip(maps, ((0, 0), (1, 1)), strict=True):
        q = expect(name, (F((pair[0],)), F((pair[1],))), K2, method="quadrature")
        got = np.array([M[a, b] for a, b in idx])
        np.testing.assert_allclose(got, q, rtol=1e-10, atol=1e-13)
    np.testing.assert_array_equal(maps[0], maps[0].T)


def test_two_point_gram_pieces_match_square():
    rng = np.random.default_rng(5)
    K = _inputs(rng, 20)
    full = two_point("tanh", K, 1, 1)
    sub = two_point("tanh", K[:7, 7:], 1, 1, diag=(np.diag(K)[:7], np.diag(K)[7:]))
    np.testing.assert_allclose(sub, full[:7, 7:], rtol=1e-12, atol=1e-15)
