"""Deep linear networks, exact at any width (book Ch. 3), vs explicit-weight Monte Carlo."""

import math

import numpy as np
import pytest
from scipy import stats

import deepeft as de
from conftest import Z_MAX
from deepeft.errors import DeepEFTInputError
from deepeft.gaussian.cumulants import connected, moment
from deepeft.gaussian.wick import double_factorial
from deepeft.statistics import mean
from deepeft.theory import deep_linear as dl

# --- assertable numbers from the digest ------------------------------------------------------


def test_digest_numbers():
    assert dl.connected4([100] * 9)[-1] == pytest.approx(0.1951, abs=5e-5)  # n = 100, ℓ = 10
    assert dl.connected4([10] * 4)[-1] == pytest.approx(1.0736, abs=5e-5)  # n = 10, ℓ = 5
    assert dl.var_O([100] * 9, output_dim=100)[-1] == pytest.approx(0.2190, abs=5e-5)
    assert dl.c2m(10, 3) == pytest.approx(1.68, rel=1e-14)
    assert dl.G2m([10] * 99, 2)[-1] == pytest.approx(1.2**99, rel=1e-12)  # ≈ 6.9e7
    assert 6.8e7 < 1.2**99 < 7.0e7
    assert dl.double_scaling_connected6(0.1) == pytest.approx(0.1579, abs=5e-5)
    assert dl.double_scaling_connected4(0.1) == pytest.approx(math.expm1(0.2), rel=1e-14)
    assert dl.excess_kurtosis([100] * 9)[-1] == pytest.approx(3 * (1.02**9 - 1), rel=1e-13)


def test_independent_of_C_W_and_closed_forms():
    for C_W in (0.9, 1.0, 1.1):
        G2 = dl.G2m([7, 7, 7], 1, G0=1.5, C_W=C_W)
        assert np.allclose(G2, 1.5 * C_W ** np.arange(1, 5), rtol=1e-14)  # (3.15)
        ratio = dl.connected4([7, 7, 7], G0=1.5, C_W=C_W) / G2**2
        assert np.allclose(ratio, (1 + 2 / 7) ** np.arange(4) - 1, rtol=1e-13)  # (3.28)
        vo = dl.var_O([7, 7, 7], G0=1.5, C_W=C_W, output_dim=7) / G2**2
        assert np.allclose(vo, (1 + 2 / 7) ** np.arange(1, 5) - 1, rtol=1e-13)  # (3.33)
        g6 = dl.G2m([7, 7, 7], 3, G0=1.5, C_W=C_W)
        assert np.allclose(g6 / G2**3, (1 + 6 / 7 + 8 / 49) ** np.arange(4), rtol=1e-13)  # (3.43)


def test_c2m_special_values_and_gamma_vs_product():
    for m in range(1, 9):
        assert dl.c2m(1, m) == pytest.approx(double_factorial(2 * m - 1), rel=1e-12)
        assert dl.c2m(2, m) == pytest.approx(math.factorial(m), rel=1e-12)
    n = np.array([1, 2, 3, 10, 17, 100, 1e4, np.inf])
    for m in (1, 2, 3, 7, 30):
        prod = dl.c2m(n, m, method="product")
        gam = dl.c2m(n, m, method="gamma")
        assert np.allclose(gam, prod, rtol=1e-9), m
    assert dl.c2m(np.inf, 5) == 1.0  # (3.48)
    # large m: the Γ form is used and stays finite in log space
    assert np.isfinite(dl.log_c2m(50.0, 5000))


def test_unequal_widths_recursion_3_24():
    ws = [5, 9, 3, 20]
    G4 = dl.G2m(ws, 2, G0=0.7, C_W=[1.2, 0.8, 1.0, 1.1, 0.9])
    G2 = dl.G2m(ws, 1, G0=0.7, C_W=[1.2, 0.8, 1.0, 1.1, 0.9])
    gains = [1.2, 0.8, 1.0, 1.1, 0.9]
    assert G4[0] == pytest.approx(G2[0] ** 2)  # (3.22)
    for ell in range(1, 5):  # G4^{(ℓ+1)} = g²(1 + 2/n_ℓ) G4^{(ℓ)}
        assert G4[ell] == pytest.approx(gains[ell] ** 2 * (1 + 2 / ws[ell - 1]) * G4[ell - 1], rel=1e-13)


def test_double_scaling_limit_is_approached():
    """At fixed r = L/n the exact values converge to (3.55)–(3.57) as n grows (error O(1/n))."""
    r = 0.5
    errs = []
    for n in (20, 200, 2000):
        L = int(r * n)
        ws = [n] * (L - 1)
        c4 = dl.connected4(ws)[-1]
        c6 = dl.connected6(ws)[-1]
        g8 = dl.G2m(ws, 4)[-1]
        errs.append(abs(c4 - dl.double_scaling_connected4(r)))
        assert c6 == pytest.approx(dl.double_scaling_connected6(r), rel=30 / n)
        assert g8 == pytest.approx(dl.double_scaling_G2m(r, 4), rel=60 / n)
    assert errs[1] < errs[0] / 5 and errs[2] < errs[1] / 5
    assert dl.double_scaling_connected6(1e-3) == pytest.approx(12e-6, rel=0.02)  # ≈ 12 r²


def test_mlp_interface_and_errors():
    net = de.MLP(3, [8] * 3, 8, activation="linear", C_W=1.0)
    x = np.array([1.0, 2.0, 0.5])
    assert dl.G2m(net, 1, x)[0] == pytest.approx(5.25 / 3)
    # slope a: effective gain C_W a² beyond layer 1
    net_a = de.MLP(3, [8] * 3, 8, activation="linear", slope=0.5, C_W=2.0)
    assert np.allclose(dl.G2m(net_a, 1, x), 5.25 / 3 * 2.0 * 0.5 ** np.arange(4))
    X = np.array([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0]])
    assert np.allclose(dl.G2(net, X)[-1], X @ X.T / 3)
    with pytest.raises(DeepEFTInputError, match="linear activation"):
        dl.G2m(de.MLP(3, [8], 1, activation="relu"), 2, x)
    with pytest.raises(DeepEFTInputError, match="biases off"):
        dl.G2m(de.MLP(3, [8], 1, activation="linear", C_b=0.1), 2, x)
    with pytest.raises(DeepEFTInputError, match="cannot be given together"):
        dl.G2m(net, 2, x, C_W=2.0)
    with pytest.raises(DeepEFTInputError, match="not both"):
        dl.G2m(net, 2, x, G0=1.0)
    with pytest.raises(DeepEFTInputError, match="input_dim is 3"):
        dl.G2m(net, 2, np.ones(4))
    with pytest.raises(DeepEFTInputError, match="sequence"):
        dl.G2m(8, 2)
    with pytest.raises(DeepEFTInputError, match="layer must be in"):
        dl.sample_output(net, 10, x, layer=5)


def test_vertex_multi_input_reduces_to_single_and_leading_order():
    n = 400
    net = de.MLP(2, [n] * 5, 1, activation="linear", C_W=1.0)
    X = np.array([[1.0, 0.5], [-0.3, 1.2], [0.8, 0.8]])
    V = dl.vertex(net, X)
    G = dl.G2(net, X)
    assert np.all(V[0] == 0)
    # single-input slice equals n(G4 − G2²) of the single-input path
    single = n * dl.connected4(net, X[1])
    assert np.allclose(V[1:, 1, 1, 1, 1], single[1:], rtol=1e-12)
    # symmetries of V_{(12)(34)}
    assert np.allclose(V, V.transpose(0, 2, 1, 3, 4)) and np.allclose(V, V.transpose(0, 3, 4, 1, 2))
    # leading order (Ch. 4, linear σ at criticality): V^{(ℓ)} ≈ (ℓ−1)(K13 K24 + K14 K23)
    K = G[-1]
    lead = 5 * (np.einsum("ac,bd->abcd", K, K) + np.einsum("ad,bc->abcd", K, K))
    # corrections are O(ℓ²/n) relative to K² (here 25/400)
    assert np.abs(V[-1] - lead).max() < 0.1 * np.abs(lead).max()
    n2 = 4000  # ten times wider: the deviation shrinks ~10×
    V2 = dl.vertex(de.MLP(2, [n2] * 5, 1, activation="linear"), X)
    assert np.abs(V2[-1] - lead).max() < 0.15 * np.abs(V[-1] - lead).max()
    assert V[-1, 0, 0, 0, 0] / (n * G[-1, 0, 0] ** 2) == pytest.approx(2 * 5 / n, rel=0.05)  # 2(ℓ−1)/n


# --- Monte Carlo with explicit Gaussian weights (independent of the theory code) -------------


def _explicit_network(X, widths, C_W, S, seed, chunk=50_000):
    """Outputs z^{(ℓ)} of S random bias-free linear nets: list over ℓ of arrays (S, n_ℓ, N)."""
    rng = np.random.default_rng(seed)
    out = [[] for _ in widths[1:]]
    for start in range(0, S, chunk):
        s = min(chunk, S - start)
        z = np.broadcast_to(X.T, (s,) + X.T.shape)
        for ell in range(1, len(widths)):
            W = rng.standard_normal((s, widths[ell], widths[ell - 1])) * np.sqrt(C_W / widths[ell - 1])
            z = W @ z
            out[ell - 1].append(z)
    return [np.concatenate(o) for o in out]


X_MC = np.array([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0]])  # G^{(0)}_{00} = 5.25/3 = 1.75
NET = de.MLP(3, [8] * 3, 8, activation="linear", C_W=1.0)  # n0 = 3, n = 8, L = 4


@pytest.fixture(scope="module")
def mc():
    S = 200_000  # as in the digest's check
    return _explicit_network(X_MC, NET.n, 1.0, S, seed=11)


def _check(name, est, theory):
    zs = est.z(theory)
    print(f"{name:28s} sim {est.value:10.5f} ± {est.stderr:.5f}   theory {theory:10.5f}   z = {zs:+.2f}")
    assert abs(zs) < Z_MAX, name


def test_monte_carlo_single_input_moments(mc):
    zL = mc[-1][:, :, 0]  # (S, 8) output for input 0
    x = X_MC[0]
    _check("E[z^4] (=3 G4)", moment(zL, (0, 0, 0, 0)), 3 * dl.G2m(NET, 2, x)[-1])
    _check("E[z0^2 z1^2] (=G4)", moment(zL, (0, 0, 1, 1)), dl.G2m(NET, 2, x)[-1])
    O = np.mean(zL**2, axis=1)
    _check("Var O^(L)", connected(O, (0, 0)), dl.var_O(NET, x)[-1])
    _check("E[z^6]|c (= 15 c6)", connected(zL, (0,) * 6, symmetric=True), 15 * dl.connected6(NET, x)[-1])
    for ell in range(1, 4):  # every hidden layer
        z = mc[ell - 1][:, :, 0]
        _check(f"conn4 z0z0z1z1 layer {ell}", connected(z, (0, 0, 1, 1), symmetric=True), dl.connected4(NET, x)[ell - 1])


def test_monte_carlo_multi_input_four_point(mc):
    T = dl.G4(NET, X_MC)[-1]
    zL = mc[-1]  # (S, 8, 2)
    cols = np.stack([zL[:, 0, 0], zL[:, 0, 1], zL[:, 1, 0], zL[:, 1, 1]], axis=1)  # z_{0;a} z_{0;b} z_{1;a} z_{1;b}
    # neurons 0 ≠ 1: E[z_{0;α1} z_{0;α2} z_{1;α3} z_{1;α4}] = G4_{(α1α2)(α3α4)}
    _check("E[z0a z0b z1a z1b]=T[abab]", moment(cols, (0, 1, 2, 3)), T[0, 1, 0, 1])
    _check("E[z0a^2 z1b^2]=T[aabb]", moment(cols, (0, 0, 3, 3)), T[0, 0, 1, 1])
    _check("E[z0a^3 z0b]=3T[aaab]", moment(cols, (0, 0, 0, 1)), 3 * T[0, 0, 0, 1])
    G = dl.G2(NET, X_MC)[-1]
    _check("E[z0a z0b] = G_ab", mean(cols[:, 0] * cols[:, 1]), G[0, 1])


def test_exact_sampler_matches_explicit_network(mc):
    x = X_MC[0]
    zs = dl.sample_output(NET, 100_000, x, seed=3)
    assert zs.shape == (100_000, 8)
    ze = mc[-1][:, :, 0]
    for idx in [(0, 0), (0, 0, 0, 0), (0, 0, 1, 1), (0,) * 6]:
        a, b = moment(zs, idx), moment(ze, idx)
        zdiff = (a.value - b.value) / np.hypot(a.stderr, b.stderr)
        print(idx, a, b, f"z={zdiff:+.2f}")
        assert abs(zdiff) < Z_MAX
    ks = stats.ks_2samp(zs[:, 0], ze[:, 0])
    ks_norm = stats.ks_2samp(np.mean(zs**2, axis=1), np.mean(ze**2, axis=1))
    print("KS z0", ks.pvalue, "KS O", ks_norm.pvalue)
    assert ks.pvalue > 1e-3 and ks_norm.pvalue > 1e-3
    # and against theory, at higher precision (the sampler is cheap)
    big = dl.sample_output(NET, 400_000, x, seed=4)
    _check("sampler E[z^6]|c (= 15 c6)", connected(big, (0,) * 6, symmetric=True), 15 * dl.connected6(NET, x)[-1])
    mid = dl.sample_output(NET, 100_000, x, layer=2, seed=5)
    assert mid.shape == (100_000, 8)
    _check("sampler layer 2 E[z^4]", moment(mid, (0, 0, 0, 0)), 3 * dl.G2m(NET, 2, x)[1])
