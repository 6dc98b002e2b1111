"""Wick's theorem (1.45)/(1.69): pairings and Gaussian moments."""

import itertools

import numpy as np
import pytest

from conftest import Z_MAX
from deepeft.errors import DeepEFTInputError
from deepeft.gaussian.cumulants import moment
from deepeft.gaussian.wick import double_factorial, gaussian_moment, pairings, wick_tensor


def _isserlis(K, idx):
    """Independent recursion E[z_i1 … z_in] = Σ_j K_{i1 ij} E[… without i1, ij …]."""
    if not idx:
        return 1.0
    if len(idx) % 2:
        return 0.0
    first, rest = idx[0], idx[1:]
    return sum(K[first, rest[j]] * _isserlis(K, rest[:j] + rest[j + 1 :]) for j in range(len(rest)))


def _random_cov(k, seed):
    A = np.random.default_rng(seed).normal(size=(k, k))
    return A @ A.T + 0.5 * np.eye(k)


@pytest.mark.parametrize("n", range(0, 11))
def test_pairings_count_and_are_perfect_matchings(n):
    ps = pairings(tuple(range(n)))
    if n % 2:
        assert ps == []
        return
    assert len(ps) == double_factorial(n - 1)
    assert len({frozenset(frozenset(p) for p in pr) for pr in ps}) == len(ps)  # distinct
    for pr in ps:
        assert sorted(itertools.chain.from_iterable(pr)) == list(range(n))


def test_four_point_pairings_match_book_1_44():
    assert pairings((1, 2, 3, 4)) == [((1, 2), (3, 4)), ((1, 3), (2, 4)), ((1, 4), (2, 3))]
    assert len(pairings("abcdef")) == 15  # 6-point: 15 terms


def test_single_variable_moments_1_15():
    K = np.array([[1.7]])
    for m in range(0, 7):
        assert gaussian_moment(K, (0,) * (2 * m)) == pytest.approx(1.7**m * double_factorial(2 * m - 1), rel=1e-14)
        assert gaussian_moment(K, (0,) * (2 * m + 1)) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_matches_independent_isserlis_recursion_with_repeats(seed):
    rng = np.random.default_rng(seed)
    K = _random_cov(3, seed)
    for order in (2, 4, 6, 8):
        idx = tuple(int(i) for i in rng.integers(0, 3, size=order))
        assert gaussian_moment(K, idx) == pytest.approx(_isserlis(K, idx), rel=1e-12)


def test_four_point_formula_and_batch():
    Ks = np.stack([_random_cov(4, s) for s in range(3)])
    out = gaussian_moment(Ks, (0, 1, 2, 3))
    assert out.shape == (3,)
    for K, o in zip(Ks, out):
        assert o == pytest.approx(K[0, 1] * K[2, 3] + K[0, 2] * K[1, 3] + K[0, 3] * K[1, 2], rel=1e-13)


def test_wick_tensor_agrees_with_gaussian_moment():
    K = _random_cov(3, 7)
    for order in (2, 4, 6):
        T = wick_tensor(K, order)
        for idx in itertools.product(range(3), repeat=order):
            assert T[idx] == pytest.approx(gaussian_moment(K, idx), rel=1e-12)
    assert np.all(wick_tensor(K, 3) == 0)


def test_against_monte_carlo_samples():
    K = _random_cov(3, 3)
    z = np.random.default_rng(0).multivariate_normal(np.zeros(3), K, size=200_000)
    for idx in [(0, 0, 1, 1), (0, 1, 2, 2), (0, 0, 0, 1, 2, 2)]:
        est = moment(z, idx)
        zs = est.z(gaussian_moment(K, idx))
        print(idx, est, gaussian_moment(K, idx), f"z={zs:+.2f}")
        assert abs(zs) < Z_MAX


@pytest.mark.parametrize(
    "K, idx, fragment",
    [
        (np.ones((2, 3)), (0, 1), "square"),
        (np.eye(2), (0, 2), "[0, 2)"),
        (np.eye(2), (-1, 0), "[0, 2)"),
        (np.array([[1.0, 0.5], [0.1, 1.0]]), (0, 1), "symmetric"),
        (np.eye(2), (0.5, 1), "integers"),
        (np.eye(2), (0,) * 18, "order"),
    ],
)
def test_validation(K, idx, fragment):
    with pytest.raises(DeepEFTInputError, match=fragment.replace("[", r"\[").replace(")", r"\)")):
        gaussian_moment(K, idx)
