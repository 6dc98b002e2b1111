"""Connected correlators from samples (1.54)–(1.61) with jackknife errors; Estimate helpers."""

import math

import numpy as np
import pytest

from conftest import Z_MAX
from deepeft.errors import DeepEFTInputError
from deepeft.gaussian.cumulants import connected, excess_kurtosis, moment, set_partitions
from deepeft.gaussian.wick import pairings
from deepeft.statistics import Estimate, jackknife, mean

S = 200_000


def test_bell_numbers():
    assert [len(set_partitions(m)) for m in range(1, 7)] == [1, 2, 5, 15, 52, 203]


def test_gaussian_cumulants_vanish_within_error():
    K = np.array([[1.0, 0.4, -0.2], [0.4, 2.0, 0.3], [-0.2, 0.3, 0.7]])
    z = np.random.default_rng(1).multivariate_normal(np.zeros(3), K, size=S)
    est = connected(z, (0, 2))
    assert abs(est.z(K[0, 2])) < Z_MAX
    for idx in [(0, 1, 2), (0, 0, 0, 0), (0, 0, 1, 1), (0, 1, 2, 2), (0,) * 5, (0,) * 6, (0, 0, 1, 1, 2, 2)]:
        for kw in ({}, {"zero_mean": True}, {"symmetric": True}):
            est = connected(z, idx, **kw)
            print(idx, kw, est, f"z={est.z(0.0):+.2f}")
            assert abs(est.z(0.0)) < Z_MAX


@pytest.mark.parametrize("order", range(1, 7))
def test_exponential_and_chi2_cumulants(order):
    rng = np.random.default_rng(order)
    e = rng.exponential(size=S)  # κ_m = (m−1)!
    k = 5
    c = rng.chisquare(k, size=S)  # κ_m = 2^{m−1} (m−1)! k
    for x, theory in [(e, math.factorial(order - 1)), (c, 2 ** (order - 1) * math.factorial(order - 1) * k)]:
        est = connected(x, (0,) * order)
        print(order, est, theory, f"z={est.z(theory):+.2f}")
        assert abs(est.z(theory)) < Z_MAX


def test_joint_cumulant_multilinearity():
    # κ(x, x, x+y, x+y) = κ4(x) = 6 for x ~ Exp(1) independent of a Gaussian y; κ(x, y, ...) = 0
    rng = np.random.default_rng(5)
    x, y = rng.exponential(size=S), rng.normal(size=S)
    z = np.stack([x, x + y, y], axis=1)
    est = connected(z, (0, 0, 1, 1))
    assert abs(est.z(6.0)) < Z_MAX
    assert abs(connected(z, (0, 0, 2)).z(0.0)) < Z_MAX
    assert abs(connected(z, (0, 1, 1)).z(2.0)) < Z_MAX  # κ3(x) = 2


def test_symmetric_formula_is_book_1_54_and_1_61():
    """With symmetric=True the Möbius sum is literally (1.54) / (1.61) of the sample moments."""
    z = np.random.default_rng(2).standard_t(8, size=(5000, 3))
    E = lambda *i: float(np.mean(np.prod(z[:, list(i)], axis=1)))  # noqa: E731
    i4 = (0, 1, 2, 1)
    book4 = E(*i4) - sum(E(*a) * E(*b) for a, b in pairings(i4))
    assert connected(z, i4, symmetric=True, stderr=False).value == pytest.approx(book4, rel=1e-10)
    i6 = (0, 0, 1, 2, 1, 2)
    pos = range(6)
    four_two = 0.0
    for pair in [(a, b) for a in pos for b in pos if a < b]:
        rest = [i6[p] for p in pos if p not in pair]
        four_two += E(*rest) * E(i6[pair[0]], i6[pair[1]])
    three_pairs = sum(np.prod([E(a, b) for a, b in p]) for p in pairings(i6))
    book6 = E(*i6) - four_two + 2 * three_pairs
    assert connected(z, i6, symmetric=True, stderr=False).value == pytest.approx(book6, rel=1e-9)
    # zero_mean alone keeps the (3, 3) splits E[zzz]E[zzz] of (1.56)
    three_three = sum(
        E(*[i6[p] for p in blk]) * E(*[i6[p] for p in pos if p not in blk])
        for blk in [(0, a, b) for a in range(1, 6) for b in range(a + 1, 6)]
    )
    assert connected(z, i6, zero_mean=True, stderr=False).value == pytest.approx(book6 - three_three, rel=1e-9)


def test_jackknife_error_is_calibrated():
    """The jackknife SE of κ4 and κ6 matches the scatter of independent replicates (within ~25%)."""
    rng = np.random.default_rng(3)
    for order in (4, 6):
        reps = [connected(rng.chisquare(20, size=4000), (0,) * order, blocks=25) for _ in range(150)]
        spread = np.std([r.value for r in reps], ddof=1)
        mean_se = np.sqrt(np.mean([r.stderr**2 for r in reps]))
    print("scatter", spread, "jackknife SE", mean_se)
    assert 0.75 < mean_se / spread < 1.33


def test_excess_kurtosis():
    rng = np.random.default_rng(4)
    g = rng.normal(size=S)
    assert abs(excess_kurtosis(g).z(0.0)) < Z_MAX
    e = excess_kurtosis(rng.exponential(size=S))  # 6
    assert abs(e.z(6.0)) < Z_MAX
    u = excess_kurtosis(rng.uniform(-1, 1, size=S), zero_mean=True)  # −6/5
    assert abs(u.z(-1.2)) < Z_MAX


def test_moment_and_mean_and_generic_jackknife():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(S, 2))
    assert abs(moment(x, (0, 0, 1, 1)).z(1.0)) < Z_MAX
    m = mean(x)
    assert m.shape == (2,) and np.all(np.abs(m.z(0.0)) < Z_MAX)
    jk = jackknife(lambda a: np.var(a), x[:, 0], blocks=20)
    # jackknife SE of a variance ≈ √(2/S)
    assert jk.stderr == pytest.approx(np.sqrt(2 / S), rel=0.4)
    assert abs(jk.z(1.0)) < Z_MAX


def test_estimate_helpers():
    e = Estimate(np.array([1.0, 2.0]), np.array([0.5, 0.0]))
    assert np.allclose(e.z([0.0, 2.0]), [2.0, 0.0])
    assert np.isinf(Estimate(1.0, 0.0).z(0.0))
    assert e[0].value == 1.0 and isinstance(e[0].value, float)
    assert Estimate(1.0, 0.1).agrees(1.3) and not Estimate(1.0, 0.1).agrees(1.5)
    assert "±" in repr(Estimate(1.0, 0.1))
    with pytest.raises(DeepEFTInputError, match="same shape"):
        Estimate(np.ones(2), np.ones(3))
    with pytest.raises(DeepEFTInputError, match=">= 0"):
        Estimate(1.0, -1.0)


@pytest.mark.parametrize(
    "samples, idx, kw, fragment",
    [
        (np.ones((1, 2)), (0, 0), {}, "at least 2"),
        (np.ones((10, 2)), (0, 2), {}, r"\[0, 2\)"),
        (np.ones((10, 2)), (0,) * 7, {}, "up to order 6"),
        (np.ones((10, 2)), 3, {}, "tuple of variable indices"),
        (np.ones((10, 2)), (), {}, "non-empty"),
        (np.ones((10, 2)), (0, 1), {"blocks": 1}, "blocks"),
        (np.full((10, 2), np.nan), (0, 1), {}, "NaN"),
        (np.ones((10, 2, 2)), (0, 1), {}, "shape"),
    ],
)
def test_validation(samples, idx, kw, fragment):
    with pytest.raises(DeepEFTInputError, match=fragment):
        connected(samples, idx, **kw)
