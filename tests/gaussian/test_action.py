"""Nearly-Gaussian quartic action (1.71): first-order results (1.73)–(1.78) vs exact quadrature."""

import numpy as np
import pytest

from deepeft.errors import DeepEFTInputError
from deepeft.gaussian.action import NearlyGaussianAction
from deepeft.gaussian.wick import wick_tensor

EPS = np.array([1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2])


def _psd_quartic(N, seed, scale=1.0):
    """A fully symmetric V with V(u,u,u,u) = scale Σ_i (U u)_i⁴ ≥ 0."""
    U = np.random.default_rng(seed).normal(size=(N + 1, N))
    V = np.einsum("ia,ib,ic,id->abcd", U, U, U, U)
    return scale * V / np.abs(V).max()


def _slope(eps, resid):
    return np.polyfit(np.log(eps), np.log(resid), 1)[0]


def test_digest_numbers_N1():
    # Digest: K = 1.3, V = 1, ε = 1e-3: exact E[z²] = 1.298904 vs 1.298902; connected 4-pt −0.0028393 vs −0.0028561
    a = NearlyGaussianAction(1.3, 1.0, 1e-3)
    ex = a.exact()
    assert ex.two_point[0, 0] == pytest.approx(1.298904, abs=5e-7)
    assert a.two_point()[0, 0] == pytest.approx(1.3 - 1e-3 * 1.3**3 / 2, rel=1e-14)  # K − εVK³/2
    assert a.two_point()[0, 0] == pytest.approx(1.298902, abs=5e-7)
    assert ex.connected_four_point.item() == pytest.approx(-0.0028393, abs=5e-8)
    assert a.connected_four_point().item() == pytest.approx(-1e-3 * 1.3**4, rel=1e-14)  # −εVK⁴
    assert a.Z() == pytest.approx(np.sqrt(2 * np.pi * 1.3) * (1 - 1e-3 * 1.3**2 / 8), rel=1e-14)


def test_exact_quadrature_is_gaussian_at_zero_coupling():
    K = np.array([[1.2, 0.3, -0.1], [0.3, 0.8, 0.2], [-0.1, 0.2, 1.5]])
    for N in (1, 2, 3):
        KN = K[:N, :N]
        ex = NearlyGaussianAction(KN, np.zeros((N,) * 4), 0.0).exact()
        assert np.allclose(ex.two_point, KN, atol=1e-12)
        assert np.allclose(ex.four_point, wick_tensor(KN, 4), atol=1e-11)
        assert ex.Z == pytest.approx(np.sqrt(np.linalg.det(2 * np.pi * KN)), rel=1e-12)


@pytest.mark.parametrize("N", [1, 2])
def test_residuals_scale_as_eps_squared(N):
    K = np.array([[1.3, 0.4], [0.4, 0.9]])[:N, :N]
    V = _psd_quartic(N, seed=N)
    res = {"Z": [], "two": [], "four": []}
    for eps in EPS:
        a = NearlyGaussianAction(K, V, eps)
        ex = a.exact()
        res["Z"].append(abs(ex.Z - a.Z()))
        res["two"].append(np.abs(ex.two_point - a.two_point()).max())
        res["four"].append(np.abs(ex.connected_four_point - a.connected_four_point()).max())
    for name, r in res.items():
        s = _slope(EPS, np.array(r))
        print(N, name, r, f"slope={s:.3f}")
        assert abs(s - 2.0) < 0.1, (name, s)
    # and the first-order terms themselves are O(ε): the residual is much smaller than the correction
    a = NearlyGaussianAction(K, V, EPS[0])
    assert np.abs(a.exact().two_point - a.two_point()).max() < 0.05 * np.abs(a.two_point() - K).max()


def test_inverse_map_recovers_couplings_to_first_order():
    K = np.array([[1.3, 0.4], [0.4, 0.9]])
    V = _psd_quartic(2, seed=7)
    errs = []
    for eps in EPS:
        ex = NearlyGaussianAction(K, V, eps).exact()
        back = NearlyGaussianAction.from_correlators(ex.two_point, ex.connected_four_point)
        assert back.eps == 1.0
        errs.append(max(np.abs(back.V - eps * V).max() / eps, np.abs(back.K - K).max() / eps))
    s = _slope(EPS, np.array(errs))  # relative error of the coupling ∝ ε
    print("inverse map relative errors", errs, f"slope={s:.3f}")
    assert abs(s - 1.0) < 0.1
    # exact round trip of the perturbative map at O(ε): forward then inverse reproduces to O(ε²)
    a = NearlyGaussianAction(K, V, 1e-4)
    back = NearlyGaussianAction.from_correlators(a.two_point(), a.connected_four_point())
    assert np.abs(back.V - a.coupling).max() < 1e-6 and np.abs(back.K - K).max() < 1e-7


def test_action_value_and_four_point():
    K = np.array([[1.0, 0.2], [0.2, 2.0]])
    V = _psd_quartic(2, seed=3)
    a = NearlyGaussianAction(K, V, 1e-3)
    z = np.array([0.3, -1.2])
    expect = 0.5 * z @ np.linalg.solve(K, z) + 1e-3 / 24 * np.einsum("abcd,a,b,c,d->", V, z, z, z, z)
    assert a.action(z) == pytest.approx(expect, rel=1e-13)
    ex = a.exact()
    gauss = wick_tensor(K, 4)
    first_order = np.abs(a.four_point() - gauss).max()
    assert np.abs(a.four_point() - ex.four_point).max() < 0.05 * first_order


def test_validation():
    with pytest.raises(DeepEFTInputError, match="fully symmetric"):
        V = np.zeros((2,) * 4)
        V[0, 0, 0, 1] = 1.0
        NearlyGaussianAction(np.eye(2), V, 0.1)
    with pytest.raises(DeepEFTInputError, match="positive definite"):
        NearlyGaussianAction(np.array([[1.0, 2.0], [2.0, 1.0]]), np.zeros((2,) * 4), 0.1)
    with pytest.raises(DeepEFTInputError, match=r"shape \(N, N, N, N\)"):
        NearlyGaussianAction(np.eye(2), np.zeros((3,) * 4), 0.1)
    with pytest.raises(DeepEFTInputError, match="eps must be finite"):
        NearlyGaussianAction(1.0, 1.0, float("inf"))
    # wrong sign: perturbation theory is formal but fine; exact integration refuses
    a = NearlyGaussianAction(1.3, 1.0, -1e-3)
    assert a.two_point()[0, 0] == pytest.approx(1.3 + 1e-3 * 1.3**3 / 2)
    with pytest.raises(DeepEFTInputError, match="wrong sign"):
        a.exact()
    mixed = np.zeros((2,) * 4)
    mixed[0, 0, 0, 0], mixed[1, 1, 1, 1] = 1.0, -1.0
    with pytest.raises(DeepEFTInputError, match="unbounded"):
        NearlyGaussianAction(np.eye(2), mixed, 0.1).exact()
    with pytest.raises(DeepEFTInputError, match="N ≤ 3"):
        NearlyGaussianAction(np.eye(4), np.zeros((4,) * 4), 0.1).exact()
