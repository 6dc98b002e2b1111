import numpy as np
import pytest

import deepeft as de


def test_parameter_count_book_fig_2_1():
    # Fig. 2.1: n0 = 4, n1 = n2 = n3 = 5, n4 = 1 → P = 91 (2.7)
    net = de.MLP(input_dim=4, widths=[5, 5, 5], output_dim=1)
    assert net.L == 4
    assert net.n == (4, 5, 5, 5, 1)
    assert net.num_parameters == 91


def test_per_layer_hyperparameters_broadcast_and_store_layer_l_at_index_l_minus_1():
    net = de.MLP(3, [8, 8], 1, activation="tanh", C_W=[1.0, 1.5, 2.0], C_b=0.1)
    assert net.C_W == (1.0, 1.5, 2.0)
    assert net.C_b == (0.1, 0.1, 0.1)
    assert np.allclose(net.arrays()["C_W"], [1.0, 1.5, 2.0])


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(C_W=-1.0), "C_W must be >= 0"),
        (dict(C_b=float("nan")), "C_b must be finite"),
        (dict(lambda_W=float("inf")), "lambda_W must be finite"),
        (dict(C_W=[1.0, 2.0]), "length L = 3"),
        (dict(widths=[8, 0]), "widths[1] must be >= 1"),
        (dict(widths=8), "list of hidden-layer widths"),
        (dict(activation="relux"), "Did you mean 'relu'"),
    ],
)
def test_bad_hyperparameters_raise_actionable_errors(kwargs, fragment):
    base = dict(input_dim=3, widths=[8, 8], output_dim=1)
    base.update(kwargs)
    with pytest.raises(de.DeepEFTInputError) as err:
        de.MLP(**base)
    assert fragment in str(err.value)


def test_check_inputs_rejects_wrong_shape_and_nan():
    net = de.MLP(3, [8], 1)
    assert net.check_inputs(np.ones((2, 3))).dtype == np.float64
    with pytest.raises(de.DeepEFTInputError, match="input_dim is 3"):
        net.check_inputs(np.ones((2, 4)))
    with pytest.raises(de.DeepEFTInputError, match="X\\[None, :\\]"):
        net.check_inputs(np.ones(3))
    bad = np.ones((2, 3))
    bad[1, 2] = np.nan
    with pytest.raises(de.DeepEFTInputError, match="row 1, column 2"):
        net.check_inputs(bad)


@pytest.mark.parametrize("bad", [
    {"widths": 8},
    {"widths": [8, 0]},
    {"C_W": -1.0},
    {"C_b": [0.0, 0.1]},
    {"lambda_W": float("nan")},
    {"activation": "tnah"},
    {"input_dim": 0},
])
def test_specs_share_one_validation(bad):
    """MLP, ResidualMLP and GCN validate widths, activation, C_b, C_W, λ's in one place (deepeft.network_spec):
    the same mistake gives the same message."""
    args = {"input_dim": 3, "widths": [8, 8], "output_dim": 1, "activation": "tanh", **bad}
    A = np.eye(3)
    messages = []
    for build in (lambda: de.MLP(**args), lambda: de.ResidualMLP(**args, gamma=0.5), lambda: de.GCN(A, **args)):
        with pytest.raises(de.DeepEFTInputError) as info:
            build()
        messages.append(str(info.value))
    assert messages[0] == messages[1] == messages[2], messages
