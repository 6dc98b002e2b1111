"""The disordered-system reading of the SGD paper: the loss as an energy (2.7)–(2.8), Wishart couplings (2.24)."""

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import Z_MAX
from deepeft.errors import DeepEFTInputError
from deepeft.sgd import TeacherStudent, sample_problem
from deepeft.sgd.disorder import (
    disorder,
    energy,
    energy_at_init,
    last_layer_weights,
    wishart_classes,
    wishart_moments,
)


def test_energy_equals_mse_loss_at_init():
    """(2.7) = (2.6): the energy of the features in J, h, C against the forward pass's MSE, for a trainable output layer
    and two σ_W (float32 networks); the paper's frozen output layer is checked in the sgd-phase-diagram report."""
    for setup in (TeacherStudent.build((3, 8, 6, 2), trainable=(2, 3), n_train=8, n_test=40),):
        pr = sample_problem(setup, 1, seed=3)
        loss, en = energy_at_init(setup, pr, [0.25, 4.0])
        assert loss.shape == (1, 2)
        np.testing.assert_allclose(en, loss, rtol=2e-5)
        assert np.all(loss > 0)


def test_planted_ground_state():
    """[derived] with the teacher's output layer, h_α = J φ̄_α: the energy vanishes at the teacher's features and is
    ½(φ − φ̄)ᵀJ(φ − φ̄) ≥ 0 elsewhere."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((1, 16)) / 4
    phibar = np.tanh(rng.standard_normal((50, 16)))
    d = disorder(W, phibar @ W.T)
    np.testing.assert_allclose(d.h, phibar @ d.J, rtol=1e-12)
    assert abs(energy(d.J, d.h, phibar, d.C)) < 1e-15
    phi = np.tanh(rng.standard_normal((50, 16)))
    diff = phi - phibar
    np.testing.assert_allclose(energy(d.J, d.h, phi, d.C), 0.5 * np.mean(np.einsum("ai,ij,aj->a", diff, d.J, diff)),
                               rtol=1e-12)


@pytest.mark.parametrize("trainable_out", [False, True])
def test_wishart_moments_of_sampled_initializations(trainable_out):
    """(2.24) against the couplings of sampled initialisations (z-scores of the six symmetry classes): the paper's
    frozen teacher output layer (n_L = 1, σ² = C_W = 1) and a trainable one (n_L = 4, σ_W = 0.7), 400 members each."""
    if trainable_out:
        setup = TeacherStudent.build((3, 8, 6, 4), trainable=(2, 3), n_train=1, n_test=1)
        sigma_W, nL = 0.7, 4
    else:
        setup, sigma_W, nL = TeacherStudent.paper(n_train=1, n_test=1), None, 1
    pr = sample_problem(setup, 400, seed=11, dtype=jnp.float32)
    W, s2 = last_layer_weights(setup, pr, sigma_W)
    wc = wishart_classes(disorder(W, np.zeros((W.shape[0], 1, nL))).J, s2, nL)
    m = wc.samples.mean(0)
    se = wc.samples.std(0, ddof=1) / np.sqrt(wc.samples.shape[0])
    z = (m - wc.theory) / se
    assert np.all(np.abs(z) < Z_MAX), dict(zip(wc.names, z))
    # resolved: an error of half the variance would be seen at > 5σ
    assert se[2] < 0.09 * wc.theory[2] and se[3] < 0.09 * wc.theory[3]


def test_wishart_moments_formula():
    mean, cov = wishart_moments(2.0, 3, 4)
    assert mean[1, 1] == pytest.approx(1.5) and mean[0, 1] == 0
    assert cov[0, 0, 0, 0] == pytest.approx(2 * 3 / 16 * 4.0) and cov[0, 1, 1, 0] == pytest.approx(3 / 16 * 4.0)
    assert cov[0, 0, 1, 1] == 0
    with pytest.raises(DeepEFTInputError):
        wishart_moments(-1.0, 3, 4)
    with pytest.raises(DeepEFTInputError, match="n_L"):
        disorder(np.ones((2, 3)), np.ones((5, 3)))
