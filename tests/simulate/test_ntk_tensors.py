"""Per-network dNTK and ddNTKs by autodiff (PDLT (11.8), (∞.5), (∞.7)) and the one-step expansions (∞.4), (∞.6), (∞.9)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deepeft as de
from deepeft._x64 import x64
from deepeft.simulate.forward import forward_preactivations, sample_params
from deepeft.simulate.ntk import empirical_ntk
from deepeft.simulate.ntk_tensors import empirical_ddntk, empirical_dntk, one_step_prediction
from deepeft.simulate.training import lambda_tree

X = np.array([[0.3, -1.0, 2.0], [1.0, 0.5, -0.2]])
NET = de.MLP(3, [5, 4], 2, activation="tanh", C_b=0.1, C_W=1.2, lambda_b=[0.5, 1.0, 2.0], lambda_W=[1.0, 0.3, 2.0])


@pytest.fixture(scope="module")
def params():
    return sample_params(NET, seed=1, dtype="float64")


@pytest.fixture(scope="module")
def tensors(params):
    return empirical_ddntk(NET, params, X)


def test_shapes_ntk_and_symmetries(params, tensors):
    t = tensors
    n, N = 2, 2
    assert t.dntk.shape == (n,) * 3 + (N,) * 3 and t.dd_I.shape == t.dd_II.shape == (n,) * 4 + (N,) * 4
    # Ĥ of the same call is the NTK (8.7) of simulate.ntk
    np.testing.assert_allclose(t.ntk, empirical_ntk(NET, X, params, dtype="float64", method="autodiff"), atol=1e-13)
    np.testing.assert_array_equal(empirical_dntk(NET, params, X), t.dntk)
    scale = np.abs(t.dntk).max()
    # (11.8): symmetric under (i1,δ1) ↔ (i2,δ2) only
    assert np.abs(t.dntk - t.dntk.transpose(0, 2, 1, 3, 5, 4)).max() < 1e-13 * scale
    assert np.abs(t.dntk - t.dntk.transpose(1, 0, 2, 4, 3, 5)).max() > 1e-2 * scale
    # (∞.5): totally symmetric in the last three pairs
    for perm in [(0, 2, 1, 3), (0, 1, 3, 2), (0, 3, 2, 1)]:
        pp = perm + tuple(q + 4 for q in perm)
        assert np.abs(t.dd_I - t.dd_I.transpose(pp)).max() < 1e-13 * np.abs(t.dd_I).max()
    # (∞.7) (digest erratum): joint swap (1)↔(2) with (3)↔(4) only
    d2 = t.dd_II
    assert np.abs(d2 - d2.transpose(1, 0, 3, 2, 5, 4, 7, 6)).max() < 1e-13 * np.abs(d2).max()
    assert np.abs(d2 - d2.transpose(1, 0, 2, 3, 5, 4, 6, 7)).max() > 1e-2 * np.abs(d2).max()


def test_vanish_at_layer_one(params):
    t = empirical_ddntk(NET, params, X, layer=1)
    assert t.dntk.shape == (5,) * 3 + (2,) * 3
    assert np.abs(t.dntk).max() == 0 and np.abs(t.dd_I).max() == 0 and np.abs(t.dd_II).max() == 0
    assert np.abs(t.ntk).max() > 0


def test_neuron_subset_is_a_slice(params, tensors):
    full = tensors
    sel = (1, 0)
    sub = empirical_ddntk(NET, params, X, neurons=sel)
    ix = np.ix_(sel, sel, sel, sel)
    np.testing.assert_allclose(sub.dntk, full.dntk[np.ix_(sel, sel, sel)], atol=1e-14)
    np.testing.assert_allclose(sub.dd_I, full.dd_I[ix], atol=1e-14)
    np.testing.assert_allclose(sub.dd_II, full.dd_II[ix], atol=1e-14)
    np.testing.assert_allclose(sub.z, full.z[list(sel)], atol=0)


def _direction(params, layer, j, d):
    """v = λ ∇_θ z^{(ℓ)}_{j;d} as a (W, b) tree (8.6)."""
    with x64():
        p = tuple((jnp.asarray(W), jnp.asarray(b)) for W, b in params)
        g = jax.grad(lambda q: forward_preactivations(NET, q, jnp.asarray(X))[layer - 1][d, j])(p)
        return tuple((lw * gW, lb * gb) for (gW, gb), (lw, lb) in zip(g, lambda_tree(NET), strict=True))


def test_dntk_is_the_derivative_of_the_ntk(params, tensors):
    """(11.10): ∇Ĥ_{i1i2;δ1δ2}·v_{j;α} = dĤ_{i1i2j;δ1δ2α} + dĤ_{i2i1j;δ2δ1α}, v = λ∇z_{j;α} (central differences)."""
    h = 1e-4
    for j, a in [(0, 1), (1, 0)]:
        vdir = _direction(params, NET.L, j, a)
        shift = [tuple((W + s * h * np.asarray(dW), b + s * h * np.asarray(db)) for (W, b), (dW, db) in
                       zip(params, vdir, strict=True)) for s in (1, -1)]
        Hp, Hm = (empirical_ntk(NET, X, q, dtype="float64", method="autodiff") for q in shift)
        fd = (Hp - Hm) / (2 * h)
        pred = tensors.dntk[:, :, j, :, :, a] + tensors.dntk[:, :, j, :, :, a].transpose(1, 0, 3, 2)
        err = np.abs(fd - pred).max() / np.abs(pred).max()
        print("finite-difference relative error", err)
        assert err < 1e-6


def _slope(etas, errs):
    return np.polyfit(np.log(etas), np.log(errs), 1)[0]


def test_one_step_expansions_error_scaling(params):
    """One real GD step (MSE): remainders of (∞.4), (∞.6), (∞.9) fall as η⁴, η³, η² (and each truncation
    one order lower, so every term is needed)."""
    Y = np.array([[0.5, -0.3], [0.2, 0.9]])
    etas = np.array([0.08, 0.04, 0.02, 0.01])
    rows = []
    for eta in etas:
        o = one_step_prediction(NET, params, X, Y, eta)
        rows.append([np.abs(o.dz_actual - o.dz_terms[:k].sum(0)).max() for k in (1, 2, 3)]
                    + [np.abs(o.dH_actual - o.dH_terms[:k].sum(0)).max() for k in (1, 2)]
                    + [np.abs(o.ddH_actual - o.ddH_predicted).max()])
    rows = np.array(rows)
    slopes = [_slope(etas, rows[:, c]) for c in range(rows.shape[1])]
    print("slopes (dz: 1,2,3 terms; dH: 1,2 terms; ddH):", np.round(slopes, 3))
    expected = [2, 3, 4, 2, 3, 2]
    for s, e in zip(slopes, expected, strict=True):
        assert abs(s - e) < 0.2


def test_one_step_expansions_hidden_layer(params):
    """Layer 2 (features) with the error factor ε^{(ℓ)} (∞.3): the same orders with and without ddNTKs."""
    Y = np.array([[0.5, -0.3], [0.2, 0.9]])
    etas = np.array([0.08, 0.04, 0.02, 0.01])
    full, lite = [], []
    for eta in etas:
        o = one_step_prediction(NET, params, X, Y, eta, layer=2)
        full.append([np.abs(o.dz_actual - o.dz_predicted).max(), np.abs(o.dH_actual - o.dH_predicted).max(),
                     np.abs(o.ddH_actual - o.ddH_predicted).max()])
        q = one_step_prediction(NET, params, X, Y, eta, layer=2, ddntk=False)
        assert q.dz_terms.shape[0] == 2 and q.dH_terms.shape[0] == 1 and q.ddH_terms.shape[0] == 0
        np.testing.assert_allclose(q.dz_terms, o.dz_terms[:2], rtol=1e-12, atol=1e-15)
        lite.append([np.abs(q.dz_actual - q.dz_predicted).max(), np.abs(q.dH_actual - q.dH_predicted).max()])
    full, lite = np.array(full), np.array(lite)
    slopes = [_slope(etas, full[:, c]) for c in range(3)] + [_slope(etas, lite[:, c]) for c in range(2)]
    print("layer-2 slopes (dz, dH, ddH; without ddNTKs: dz, dH):", np.round(slopes, 3))
    for s_, e in zip(slopes, [4, 3, 2, 3, 2], strict=True):
        assert abs(s_ - e) < 0.2


def test_errors(params):
    with pytest.raises(de.DeepEFTInputError, match="layer must be"):
        empirical_dntk(NET, params, X, layer=4)
    with pytest.raises(de.DeepEFTInputError, match="neurons must be distinct"):
        empirical_dntk(NET, params, X, neurons=(0, 0))
    with pytest.raises(de.DeepEFTInputError, match="neurons must be distinct"):
        empirical_dntk(NET, params, X, neurons=(2,))
    with pytest.raises(de.DeepEFTInputError, match="Y must be"):
        one_step_prediction(NET, params, X, np.zeros((3, 2)), 0.1)


def test_expansion_terms_needs_both_ddntks_or_neither(tensors):
    import dataclasses

    from deepeft.simulate.ntk_tensors import expansion_terms

    eps = np.ones((NET.n[-1], X.shape[0]))
    dz, dH, ddH = expansion_terms(dataclasses.replace(tensors, dd_I=None, dd_II=None), eps, 0.1)
    assert (dz.shape[0], dH.shape[0], ddH.shape[0]) == (2, 1, 0)
    with pytest.raises(de.DeepEFTInputError, match="both ddNTKs"):
        expansion_terms(dataclasses.replace(tensors, dd_II=None), eps, 0.1)


# -- ensemble statistics ------------------------------------------------------------------------

def _pair_mean(f, m):
    return sum(f(a, b) for a in range(m) for b in range(m) if a != b) / (m * (m - 1))


def test_statistics_are_the_pair_patterns_of_the_tensors(tensors):
    """dntk/ddntk_statistics = n_{ℓ−1} × mean over networks of the pair patterns of (11.45), (∞.11), (∞.12),
    recomputed here from the full per-network tensors (networks 0, 1 of seed 1: the fixture is network 0)."""
    from deepeft.simulate.ntk_tensors import ddntk_statistics

    L = NET.L
    dd = ddntk_statistics(NET, X, n_networks=2, seed=1, layer=L, micro_batch=1, chunk_size=2)
    nets = [tensors, empirical_ddntk(NET, sample_params(NET, seed=1, index=1, dtype="float64"), X)]
    pat = {
        "P": lambda T: _pair_mean(lambda a, b: np.einsum("xyz,w->xyzw", T.dntk[a, b, b], T.z[a]), 2),
        "Q": lambda T: _pair_mean(lambda a, b: np.einsum("xyz,w->xyzw", T.dntk[a, a, b], T.z[b]), 2),
        "R": lambda T: _pair_mean(lambda a, b: T.dd_I[a, a, b, b], 2),
        "S": lambda T: _pair_mean(lambda a, b: T.dd_II[a, a, b, b], 2),
        "T": lambda T: _pair_mean(lambda a, b: np.einsum("psqr->pqrs", T.dd_II[a, b, a, b]), 2),  # T_{δ1δ3δ4δ2}
        "U": lambda T: _pair_mean(lambda a, b: np.einsum("prsq->pqrs", T.dd_II[a, b, b, a]), 2),  # U_{δ1δ4δ2δ3}
    }
    for k, f in pat.items():
        vals = np.array([NET.n[L - 1] * f(T) for T in nets])
        est = getattr(dd, k)
        np.testing.assert_allclose(est.value[L - 1], vals.mean(0), atol=1e-12 * np.abs(vals).max())
        np.testing.assert_allclose(est.stderr[L - 1], vals.std(0, ddof=1) / np.sqrt(2), atol=1e-12 * np.abs(vals).max())
        assert np.all(np.isnan(est.value[1])) and np.all(est.value[0] == 0) and np.all(est.stderr[0] == 0)


@pytest.mark.slow
def test_statistics_bit_identical_for_any_chunk_size():
    """Micro-batches of 2 networks, chunks of 1 and 2 micro-batches (5 networks: the last ones padded)."""
    from deepeft.simulate.ntk_tensors import dntk_statistics

    runs = [dntk_statistics(NET, X, n_networks=5, seed=2, layer=2, micro_batch=2, chunk_size=c) for c in (2, 4)]
    for r in runs[1:]:
        for k in "PQ":
            np.testing.assert_array_equal(getattr(r, k).value, getattr(runs[0], k).value)
            np.testing.assert_array_equal(getattr(r, k).stderr, getattr(runs[0], k).stderr)
    assert np.all(np.isnan(runs[0].P.value[2])) and np.all(np.isfinite(runs[0].P.value[:2]))


# second layer, exact at any width (derived in the test from (11.8), (∞.5), (∞.7) and the Gaussian first layer;
# P, Q are the book's (11.31)–(11.32)); expectations over G^{(1)} by the Gaussian engine.
NET2 = de.MLP(2, [6], 4, activation="tanh", C_b=0.2, C_W=1.5, lambda_b=[0.7, 1.1], lambda_W=[1.3, 0.8])
X2 = np.array([[0.6, -0.9], [1.1, 0.4]])


def _second_layer_theory():
    import itertools

    from deepeft.gaussian.engine import Factor, expect

    N = X2.shape[0]
    G1 = 0.2 + 1.5 * X2 @ X2.T / 2  # G^{(1)} = K^{(1)}
    H1 = 0.7 + 1.3 * X2 @ X2.T / 2  # H^{(1)} (8.23)
    CW, lW = 1.5, 0.8  # C_W^{(2)}, λ_W^{(2)}
    idx = np.indices((N,) * 4)

    def h(i, j):  # H^{(1)} between the samples at positions i, j of a 4-index tensor
        return H1[idx[i], idx[j]]

    def E4(derivs):  # ⟨σ^{(d0)}_{δ0} σ^{(d1)}_{δ1} σ^{(d2)}_{δ2} σ^{(d3)}_{δ3}⟩_{G^{(1)}}, equal inputs merged
        out = np.empty((N,) * 4)
        for c in itertools.product(range(N), repeat=4):
            ins = sorted(set(c))
            fs = [Factor(tuple(d for d, ci in zip(derivs, c, strict=True) if ci == u)) for u in ins]
            out[c] = expect("tanh", fs, G1[np.ix_(ins, ins)])
        return out

    e2110, e2211 = E4((2, 1, 1, 0)), E4((2, 2, 1, 1))
    P = CW**2 * h(0, 1) * h(0, 2) * e2110  # (11.31)
    Q = P + lW * CW * h(0, 2) * E4((1, 0, 1, 0))  # (11.32)
    R = CW**2 * h(0, 1) * h(0, 2) * h(0, 3) * E4((3, 1, 1, 1)) + lW * CW * h(0, 2) * h(0, 3) * E4((2, 0, 1, 1))
    # dd_II patterns with sample positions (δ1, δ2, δ3, δ4)
    S = lW * CW * h(0, 2) * h(1, 3) * E4((1, 1, 1, 1)) + CW**2 * h(0, 1) * h(0, 2) * h(1, 3) * e2211
    abab = (CW**2 * h(0, 1) * h(0, 2) * h(1, 3) * e2211 + lW * CW * h(0, 1) * h(1, 3) * E4((1, 2, 0, 1))
            + lW * CW * h(0, 1) * h(0, 2) * e2110 + lW**2 * h(0, 1) * E4((1, 1, 0, 0)))
    abba = CW**2 * h(0, 1) * h(0, 2) * h(1, 3) * e2211
    return {"P": P, "Q": Q, "R": R, "S": S, "T": np.einsum("psqr->pqrs", abab), "U": np.einsum("prsq->pqrs", abba)}


def test_second_layer_statistics_against_exact_gaussian_expectations():
    """Monte Carlo of n_1 E[pattern] at layer 2 vs the exact second-layer tensors: prediction, |z| < Z_MAX."""
    from deepeft.simulate.ntk_tensors import ddntk_statistics
    from deepeft.statistics import Z_MAX

    theory = _second_layer_theory()
    dd = ddntk_statistics(NET2, X2, n_networks=1024, seed=0)
    assert dd.neurons == (0, 4)
    for k, th in theory.items():
        est = getattr(dd, k)
        z = (est.value[1] - th) / est.stderr[1]
        print(k, "theory", np.round(th.ravel()[:4], 4), "max |z|", np.abs(z).max().round(2))
        assert np.abs(z).max() < Z_MAX
        # the estimate resolves the tensor: its largest entry is many standard errors from 0
        assert np.abs(th).max() > 8 * est.stderr[1].max()
