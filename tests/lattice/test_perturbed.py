"""The lattice model beyond J_D = 0: diagnostics, Metropolis-within-Gibbs against exact reweighting."""

import numpy as np
import pytest

from conftest import Z_MAX
from deepeft.errors import DeepEFTInputError
from deepeft.lattice import perturbed as lp


def _ar1(rho, M, n, seed, shift=None):
    rng = np.random.default_rng(seed)
    x = np.zeros((M, n))
    e = rng.standard_normal((M, n)) * np.sqrt(1 - rho**2)
    x[:, 0] = rng.standard_normal(M)
    for k in range(1, n):
        x[:, k] = rho * x[:, k - 1] + e[:, k]
    return x + (0.0 if shift is None else shift[:, None])


def test_rhat_and_ess_on_ar1_chains():
    """AR(1) chains with ρ = 0.8: τ = (1 + ρ)/(1 − ρ) = 9, so ESS ≈ Mn/9; stationary chains give R̂ ≈ 1, chains stuck at
    different means give R̂ ≫ 1."""
    x = _ar1(0.8, 8, 4000, 0)
    assert lp.effective_sample_size(x) == pytest.approx(8 * 4000 / 9, rel=0.15)
    assert lp.split_rhat(x) < 1.01
    assert lp.effective_sample_size(_ar1(0.0, 4, 2000, 1)) == pytest.approx(8000, rel=0.1)
    assert lp.split_rhat(_ar1(0.8, 8, 4000, 2, shift=np.linspace(-1, 1, 8))) > 1.1
    with pytest.raises(DeepEFTInputError):
        lp.split_rhat(np.ones((2, 3)))


def test_mcmc_matches_exact_reweighting():
    """J_D = 1, two inputs, tanh: the MCMC overlaps of every layer against importance-reweighted exact J_D = 0 draws
    (|z| < 5), with R̂ < 1.01 and ESS ≥ 400 asserted on this test problem."""
    X = np.array([[1.0, 0.5, -1.2], [-0.3, 1.4, 0.6]])
    t = 0.7 * np.random.default_rng(3).standard_normal((2, 10))
    kw = dict(N=10, L=3, X=X, t=t, J_D=1.0)
    s = lp.sample_perturbed("tanh", 0.6, 0.1, chains=8, sweeps=1600, burn=100, seed=4, **kw)
    assert s.rhat.max() < 1.01 and s.ess.min() >= 400, (s.rhat.max(), s.ess.min())
    assert np.all((s.acceptance > 0.2) & (s.acceptance < 1.0))
    ref, n_eff = lp.reweighted_moments("tanh", 0.6, 0.1, n_networks=8192, seed=5, chunk=4096, **kw)
    assert n_eff > 1000
    e = s.estimate()
    z = (e.value - ref.value) / np.hypot(e.stderr, ref.stderr)
    assert np.all(np.abs(z) < Z_MAX), z
    # the loss is felt: the last layer is pulled away from its J_D = 0 value beyond the errors
    ref0 = lp.reweighted_moments("tanh", 0.6, 0.1, n_networks=8192, seed=5, chunk=4096, **{**kw, "J_D": 1e-9})[0]
    assert abs(e.value[-1, 0, 0] - ref0.value[-1, 0, 0]) > 5 * np.hypot(e.stderr[-1, 0, 0], ref0.stderr[-1, 0, 0])


def test_bad_input():
    with pytest.raises(DeepEFTInputError, match="targets"):
        lp.sample_perturbed(N=4, L=3, t=np.zeros((2, 4)))
    with pytest.raises(DeepEFTInputError, match="J_D > 0"):
        lp.reweighted_moments(N=4, L=3, J_D=0.0)
    with pytest.raises(DeepEFTInputError, match="draws"):
        lp.sample_perturbed(N=4, L=3, sweeps=10, burn=5)


def test_loss_response_matches_large_n_theory():
    """The loss as a perturbation: dE_J[q_l]/dJ_D at 0 = −½Cov₀(q_l, |z^{L−1}|²) from exact J_D = 0 draws against the
    large-N value −½(Πχ_∥)(2K² + V) (critical tanh, N = 200, L = 4): |diff| < 5 SE + 4·|R|·ℓ/N (the O(1/N) term)."""
    from deepeft.lattice import sample_conditional

    N, L = 200, 4
    s = sample_conditional("tanh", 1.0, 0.0, N=N, L=L, n_networks=4000, seed=2, dtype="float64")
    r = lp.loss_response(s)
    th = lp.loss_response_theory("tanh", 1.0, 0.0, L)
    ell = np.arange(1, L + 1)
    assert np.all(np.abs(r.value[:, 0, 0] - th) < Z_MAX * r.stderr[:, 0, 0] + 4 * np.abs(th) * ell / N)
    assert np.all(r.stderr[:, 0, 0] < 0.2 * np.abs(th))  # resolved
    assert np.all(th < 0)  # the loss |z|² pulls every layer's norm down
