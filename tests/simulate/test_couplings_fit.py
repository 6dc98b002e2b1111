"""Couplings fitted to samples through the Ch. 1 inverse map: exact scale mixtures and a random-MLP ensemble."""

import numpy as np
import pytest

import deepeft as de
from conftest import Z_MAX
from deepeft.simulate.couplings import ensemble_couplings, fit_couplings
from deepeft.theory.couplings import running_couplings


def _scale_mixture(S, n, G, c, seed):
    """z_i = √s ξ_i with s ~ Gamma(mean G, variance c) per network: E[zz] = Gδ, E[zzzz]_c = c(δδ + δδ + δδ) exactly."""
    rng = np.random.default_rng(seed)
    k = G * G / c
    s = rng.gamma(k, G / k, size=S)
    return np.sqrt(s)[:, None] * rng.standard_normal((S, n))


def test_fit_of_exact_scale_mixture():
    """The m-neuron law of a hidden layer is a Gaussian scale mixture; for one with known G, c the inverse map's exact
    answer is 1/g_m = G − ((m+2)/2) c/G, v = c/G⁴ (first order is exact for the map): z-scores of the fit."""
    G, c = 0.8, 0.05
    fit = fit_couplings(_scale_mixture(20_000, 12, G, c, 1), m=(1, 2, 4))
    ms = np.array([1, 2, 4])
    assert np.all(np.abs(fit.inv_g.z(G - 0.5 * (ms + 2) * c / G)) < Z_MAX)
    assert np.all(np.abs(fit.v.z(c / G**4)) < Z_MAX)
    assert abs(fit.slope.z(-0.5 * c / G)) < Z_MAX
    assert np.all(fit.off_K < Z_MAX) and np.all(fit.off_V < Z_MAX)
    assert np.all(fit.v.stderr < 0.1 * c / G**4)  # resolved: the check can fail


def test_conditional_fit_of_exact_scale_mixture():
    """The conditional (Rao–Blackwell) estimator: given each network's variance s (its Ĝ), E[zz] = E[s]δ and
    E[zzzz]_c = Var(s)T; same answers as the raw fit (z-scores against the exact couplings) with smaller errors, and the
    structure checks still from the raw moments."""
    G, c, S, n = 0.8, 0.05, 20_000, 12
    rng = np.random.default_rng(3)
    k = G * G / c
    s = rng.gamma(k, G / k, size=S)
    z = np.sqrt(s)[:, None] * rng.standard_normal((S, n))
    ms = np.array([1, 2, 4])
    raw, cond = fit_couplings(z, m=ms), fit_couplings(z, m=ms, metric=s)
    assert cond.conditional and not raw.conditional
    assert np.all(np.abs(cond.inv_g.z(G - 0.5 * (ms + 2) * c / G)) < Z_MAX)
    assert np.all(np.abs(cond.v.z(c / G**4)) < Z_MAX) and abs(cond.slope.z(-0.5 * c / G)) < Z_MAX
    assert np.all(cond.inv_g.stderr < 0.5 * raw.inv_g.stderr) and np.all(cond.v.stderr < 0.3 * raw.v.stderr)
    np.testing.assert_array_equal(cond.off_K, raw.off_K)
    np.testing.assert_array_equal(cond.off_V, raw.off_V)
    with pytest.raises(de.DeepEFTInputError, match="metric"):
        fit_couplings(z, m=(1,), metric=s[:-1])
    with pytest.raises(de.DeepEFTInputError, match="metric"):
        fit_couplings(z, m=(1,), metric=-s)


def test_stochastic_metric_from_kept_preactivations():
    """Ĝ^{(ℓ)} (4.70) from sample_ensemble's kept neurons equals the jitted per-network metric of the same networks
    (stochastic_metric_samples: an independent code path, same keys)."""
    from deepeft.simulate import sample_ensemble, stochastic_metric_from_preactivations, stochastic_metric_samples

    net = de.MLP(input_dim=3, widths=[6, 6], output_dim=6, activation="tanh", C_b=0.1, C_W=1.5)
    x = np.array([1.2, -0.6, 0.9])
    ens = sample_ensemble(net, x[None], 64, 7, keep_preactivations=(64, 6), vertex=False)
    g = stochastic_metric_from_preactivations(net, x, [z[:, 0, :] for z in ens.preactivations])
    np.testing.assert_allclose(g, stochastic_metric_samples(net, x, 64, 7), rtol=1e-5)
    with pytest.raises(de.DeepEFTInputError, match="preactivations"):
        stochastic_metric_from_preactivations(net, x, [z[:, 0, :] for z in ens.preactivations][:2])


def test_fit_detects_wrong_structure():
    """A law outside the action (4.97) — neurons with unequal variances — is flagged by off_K / off_V or the z-scores."""
    z = _scale_mixture(20_000, 12, 0.8, 0.05, 2) * np.linspace(0.7, 1.3, 12)[None, :]
    fit = fit_couplings(z, m=(3,))
    assert fit.off_V[0] > Z_MAX or abs(fit.inv_g.z(0.8 - 2.5 * 0.05 / 0.8)) > Z_MAX


@pytest.mark.slow
def test_ensemble_couplings_tanh():
    """Random tanh MLPs (n = 12, ℓ ≤ 3): fitted 1/g_m, v and the running slope against (4.102), (4.103); layer 2 is
    exact, layer 3 gets the allowance of the experiment (c·G·((ℓ−2)/n)², c·v·(ℓ−2)/n, c = 4)."""
    n, L = 12, 3
    net = de.MLP(input_dim=3, widths=[n] * (L - 1), output_dim=n, activation="tanh", C_b=0.0, C_W=1.0)
    x = np.array([1.2, -0.6, 0.9])
    th = running_couplings(net, x, m=(1, 2, 4))
    fit = ensemble_couplings(net, x, 2000, m=(1, 2, 4), seed=5)
    for li in (1, 2):
        allow = (li - 1) / n
        ig, v = fit.fits[li].inv_g, fit.fits[li].v
        assert np.all(np.abs(ig.value - th.inv_g[li]) < Z_MAX * ig.stderr + 4 * th.G[li] * allow**2)
        assert np.all(np.abs(v.value - th.v[li]) < Z_MAX * v.stderr + 4 * th.v[li] * allow)
    assert np.all(np.abs(fit.inv_g.z(th.inv_g)[0]) < Z_MAX)  # layer 1: Gaussian, 1/g = K exactly


def test_fit_input_errors():
    with pytest.raises(de.DeepEFTInputError, match="m must"):
        fit_couplings(np.ones((10, 3)), m=(4,))
    with pytest.raises(de.DeepEFTInputError, match="shape"):
        fit_couplings(np.ones((10, 3, 2)), m=(1,))
