"""Nearly-kernel methods (PDLT §11.4): (11.132), (11.133) vs training the quadratic model, and the identification
with the dNTK part of the finite-width trained network (∞.141)."""

from __future__ import annotations

import numpy as np
import pytest

from deepeft import DeepEFTInputError
from deepeft.theory.finite_width_solution import trained_output_from_tensors
from deepeft.theory.nearly_kernel import meta_kernel, nearly_kernel_prediction, quadratic_model

TR, TE = np.arange(3), np.arange(3, 6)


def _model(seed=0, N=6, nf=8):
    rng = np.random.default_rng(seed)
    phi = rng.standard_normal((N, nf)) / np.sqrt(nf)
    psi = rng.standard_normal((N, nf, nf)) / nf
    psi = 0.5 * (psi + np.transpose(psi, (0, 2, 1)))
    y = rng.standard_normal((3, 2))
    return phi, psi, y


def _train(phi, psi, eps, y, eta, steps=3000, direct=False):
    """GD on ½Σ(z − y)² from W = 0 (or Newton iterations for direct optimization (11.110)), outputs on all inputs."""
    W = np.zeros((y.shape[1], phi.shape[1]))
    for _ in range(steps):
        z = quadratic_model(W, phi, psi, eps)[TR]
        feat = phi[TR][None, :, :] + eps * np.einsum("ik,ajk->iaj", W, psi[TR])  # effective features (11.107)
        W = W - eta * np.einsum("ai,iaj->ij", z - y, feat)
    return quadratic_model(W, phi, psi, eps)


@pytest.mark.parametrize("algorithm", ["gd", "ode"])
def test_nearly_kernel_gd_equals_dntk_part_of_finite_width_solution(algorithm):
    """k ↔ Ĥ, μ ↔ dĤ, z(0) = 0, no ddNTKs: (11.133) is (∞.141) (per output component; no wiring)."""
    phi, psi, y = _model()
    k, mu = meta_kernel(phi, psi, 0.3)
    eta = 0.5 * 2 / np.linalg.eigvalsh(k[np.ix_(TR, TR)])[-1] if algorithm == "gd" else None
    nk = nearly_kernel_prediction(k, mu, y, TR, TE, algorithm=algorithm, eta=eta)
    for i in range(2):
        fw = trained_output_from_tensors(k[None, None], mu[None, None, None], None, None, np.zeros((6, 1)), y[:, i : i + 1],
                                         TR, TE, eta=eta, algorithm=algorithm)  # fmt: skip
        np.testing.assert_allclose(nk[:, i], fw.output[:, 0], rtol=1e-12, atol=1e-14)
    # and direct optimization (11.132) is the two-step solution (∞.148) of the same tensors
    nd = nearly_kernel_prediction(k, mu, y, TR, TE, algorithm="direct")
    fw2 = trained_output_from_tensors(k[None, None], mu[None, None, None], None, None, np.zeros((6, 1)), y[:, :1], TR, TE,
                                      algorithm="two_step")  # fmt: skip
    np.testing.assert_allclose(nd[:, 0], fw2.output[:, 0], rtol=1e-12)


def test_gd_on_quadratic_model_matches_11_133_to_second_order():
    """Train the quadratic model (11.105) by GD from W = 0: the test-output error of (11.133) scales as ε²
    (fitted slope 2 ± 0.2), that of the kernel prediction as ε."""
    phi, psi, y = _model(seed=1)
    k0 = phi @ phi.T
    eta = 0.5 * 2 / np.linalg.eigvalsh(k0[np.ix_(TR, TR)])[-1]
    epss, err, err_k = [0.04, 0.02, 0.01], [], []
    for eps in epss:
        k, mu = meta_kernel(phi, psi, eps)
        z = _train(phi, psi, eps, y, eta)
        assert np.max(np.abs(z[TR] - y)) < 1e-10
        pred = nearly_kernel_prediction(k, mu, y, TR, TE, algorithm="gd", eta=eta)
        err.append(np.max(np.abs(z[TE] - pred)))
        err_k.append(np.max(np.abs(z[TE] - k[np.ix_(TE, TR)] @ np.linalg.solve(k[np.ix_(TR, TR)], y))))
    assert abs(np.polyfit(np.log(epss), np.log(err), 1)[0] - 2.0) < 0.2, err
    assert abs(np.polyfit(np.log(epss), np.log(err_k), 1)[0] - 1.0) < 0.1, err_k


def test_bad_input():
    phi, psi, y = _model()
    with pytest.raises(DeepEFTInputError, match="symmetric"):
        meta_kernel(phi, psi + np.random.default_rng(0).standard_normal(psi.shape), 0.1)
    with pytest.raises(DeepEFTInputError, match="phi must be"):
        meta_kernel(phi, psi[:, :3], 0.1)
    k, mu = meta_kernel(phi, psi, 0.1)
    with pytest.raises(DeepEFTInputError, match="y must be"):
        nearly_kernel_prediction(k, mu, y[:2], TR, TE)
