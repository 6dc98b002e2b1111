"""Moments of the single-input stochastic metric to NLO (theory.metric_moments): three ways.

* closed form: for ReLU (C_b = 0) and linear σ the recursion is exact at any width — x equals that of the exact
  law of Ĝ (information_exact.exact_mixture, an independent path: products of χ² laws by convolution);
* independent path at leading order: E[Ĝ] − (K + G^{1}/n) = O(1/n²) and n·Var(Ĝ) − V = O(1/n) against the
  single-input recursion (5.108)–(5.110), (4.119), with width-independent coefficients;
* Monte Carlo: tanh ensembles (exact conditional sampling) at n = 16 against x_NLO with |z| < Z_MAX, where the
  leading-order x is rejected.
"""

from __future__ import annotations

import numpy as np
import pytest

import deepeft as de
from conftest import Z_MAX
from deepeft.simulate.metric_cumulants import stochastic_metric_samples
from deepeft.statistics import jackknife
from deepeft.theory import information as info
from deepeft.theory import information_exact as ie
from deepeft.theory.metric_moments import stochastic_metric_moments
from deepeft.theory.single_input import single_input


@pytest.mark.parametrize("act, C_W", [("relu", 2.0), ("linear", 1.0)])
def test_exact_for_relu_and_linear(act, C_W):
    widths = [40, 64, 32, 48]
    net = de.MLP(input_dim=3, widths=widths, output_dim=8, activation=act, C_b=0.0, C_W=C_W)
    mm = stochastic_metric_moments(net, norm=0.7)
    for l in range(2, net.L + 1):
        mix = ie.exact_mixture(act, widths[: l - 1], C_W=C_W, K1=0.7 * C_W)
        assert abs(mm.x[l - 1] / mix.x - 1) < 1e-4  # the exact law's log grid (rebinned beyond 4000 nodes): ≤ 2.4e-5
        assert abs(mm.mean[l - 1] / mix.G - 1) < 1e-4


def test_leading_order_is_the_single_input_recursion():
    """n²(E[Ĝ] − K − G¹/n) and n(nVar(Ĝ) − V) are width-independent (the next orders), layer by layer."""
    out = {}
    for n in (1000, 2000):
        net = de.MLP(input_dim=2, widths=[n] * 5, output_dim=n, activation="tanh", C_b=0.0, C_W=1.0)
        mm, rec = stochastic_metric_moments(net, norm=1.0), single_input(net, norm=1.0)
        out[n] = (n * n * (mm.mean - rec.metric())[3:], n * (mm.vertex - rec.V)[2:])  # ℓ = 3: both f(K) + f″V/(2n)
    for a, b in zip(out[1000], out[2000], strict=True):
        assert np.all(np.abs(a) > 1e-4)  # a real correction, not zero
        np.testing.assert_allclose(a, b, rtol=2e-3)


def test_tanh_ensembles_match_nlo_and_reject_lo():
    n, L = 16, 6
    net = de.MLP(input_dim=4, widths=[n] * (L - 1), output_dim=n, activation="tanh", C_b=0.0, C_W=1.0)
    g = stochastic_metric_samples(net, np.ones(4), 40_000, seed=3, method="metric")
    xs = jackknife(lambda a: a.var(axis=0, ddof=1) / a.mean(axis=0) ** 2, g[:, 1:], blocks=16)
    nlo = info.finite_width_information(net, groups=(1, 1), x=np.ones(4), vertex="nlo").x[1:]
    lo = info.finite_width_information(net, groups=(1, 1), x=np.ones(4)).x[1:]
    z_nlo, z_lo = (xs.value - nlo) / xs.stderr, (xs.value - lo) / xs.stderr
    print(f"tanh n = {n}: z(NLO) {np.round(z_nlo, 2)}, z(LO) {np.round(z_lo, 2)}")
    assert np.all(np.abs(z_nlo) < Z_MAX)
    assert abs(z_lo[-1]) > Z_MAX  # V's own 1/n correction is resolved at ℓ = 6: −(3 to 4) % of x


def test_bad_input():
    net = de.MLP(input_dim=2, widths=[8], output_dim=8, activation="tanh", C_b=0.0, C_W=1.0)
    with pytest.raises(de.DeepEFTInputError, match="nonzero input"):
        stochastic_metric_moments(net, norm=0.0)
    with pytest.raises(de.DeepEFTInputError, match="vertex"):
        info.finite_width_information(net, groups=(1, 1), metric="lo", vertex="nlo")
    with pytest.raises(de.DeepEFTInputError, match="method"):
        stochastic_metric_samples(net, np.ones(2), 16, method="conditional")


def test_residual_network_is_refused_not_treated_as_an_mlp():
    """The one-number chain (4.70) has no skip term: a ResidualMLP gets a one-line error, not the MLP's numbers."""
    with pytest.raises(de.DeepEFTInputError, match="must be a deepeft.MLP"):
        stochastic_metric_moments(de.ResidualMLP(3, [8, 8], 8, "tanh", C_W=1.0, gamma=0.7))
