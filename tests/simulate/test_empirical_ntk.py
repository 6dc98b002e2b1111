"""Empirical NTK: forward equation (8.12) vs autodiff of the definition (8.7) with the λ-weighting (8.6)."""

import numpy as np
import pytest

import deepeft as de
from deepeft.simulate.ntk import empirical_ntk

X = np.array([[0.3, -1.0, 2.0, 0.1], [1.0, 0.5, -0.2, -0.7], [-0.4, 0.2, 0.9, 1.3]])


@pytest.mark.parametrize("act", ["tanh", "relu", "gelu"])
def test_forward_equation_equals_autodiff_float64(act):
    net = de.MLP(4, [7, 6], 3, activation=act, C_W=[1.0, 2.0, 1.5], C_b=0.2,
                 lambda_b=[0.5, 1.0, 2.0], lambda_W=[1.0, 0.3, 2.0])
    fwd = empirical_ntk(net, X, seed=3, index=5, all_layers=True, dtype="float64")
    ad = empirical_ntk(net, X, seed=3, index=5, all_layers=True, dtype="float64", method="autodiff")
    assert [H.shape for H in fwd] == [(7, 7, 3, 3), (6, 6, 3, 3), (3, 3, 3, 3)]
    for Hf, Ha in zip(fwd, ad, strict=True):
        err = np.abs(Hf - Ha).max() / np.abs(Ha).max()
        print(act, "relative difference", err)
        assert err < 1e-12
    out = empirical_ntk(net, X, seed=3, index=5, dtype="float64")
    np.testing.assert_array_equal(out, fwd[-1])


def test_first_layer_is_8_23_and_structure():
    net = de.MLP(4, [5], 2, activation="tanh", lambda_b=0.7, lambda_W=[1.3, 0.4])
    H1, H2 = empirical_ntk(net, X, all_layers=True, dtype="float64")
    theta1 = 0.7 + 1.3 * X @ X.T / 4  # (8.23): deterministic, δ_{i1 i2}
    np.testing.assert_allclose(H1, np.einsum("ij,ab->ijab", np.eye(5), theta1), rtol=1e-14)
    # symmetry H_{i1 i2; α1 α2} = H_{i2 i1; α2 α1} and positive semi-definiteness of (iα)×(jβ)
    np.testing.assert_allclose(H2, H2.transpose(1, 0, 3, 2), rtol=1e-12)
    mat = H2.transpose(0, 2, 1, 3).reshape(2 * 3, 2 * 3)
    assert np.linalg.eigvalsh(mat).min() > -1e-12


def test_float32_default_close_to_float64_for_same_parameters():
    from deepeft.simulate.forward import sample_params

    net = de.MLP(4, [16], 2, activation="tanh")
    p = sample_params(net, seed=1, dtype="float64")
    h32 = empirical_ntk(net, X, p)
    h64 = empirical_ntk(net, X, p, dtype="float64")
    assert h32.dtype == np.float32 and h64.dtype == np.float64
    np.testing.assert_allclose(h32, h64, rtol=1e-5, atol=1e-5 * np.abs(h64).max())


def test_explicit_params_and_errors():
    from deepeft.simulate.forward import sample_params

    net = de.MLP(4, [5], 1, activation="relu")
    p = sample_params(net, seed=0, index=2, dtype="float64")
    np.testing.assert_array_equal(
        empirical_ntk(net, X, p, dtype="float64"), empirical_ntk(net, X, seed=0, index=2, dtype="float64")
    )
    with pytest.raises(de.DeepEFTInputError, match="method must be 'forward'"):
        empirical_ntk(net, X, method="backprop")
