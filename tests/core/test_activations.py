"""Activation registry (book §2.2, eqs. (2.9)–(2.17)) against independent NumPy/SciPy/mpmath formulas.

Every registry activation is evaluated by ``act.numpy(z, order)`` (JAX autodiff in float64) and compared
with a closed form written here from the book's printed definition, never with deepeft code.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

import deepeft as de
from deepeft.activations import Activation, activation, available_activations
from deepeft.errors import DeepEFTInputError

SQRT_PI = math.sqrt(math.pi)
SQRT_2PI = math.sqrt(2.0 * math.pi)


def _s(z):
    return special.expit(z)


def _phi(z):
    return np.exp(-0.5 * z * z) / SQRT_2PI


# name, params, σ, σ', σ'', σ''' — each written independently from the book's formula.
# Derivatives at a kink are the right (z ≥ 0) ones; the perceptron's δ(z) is not represented (0).
def _mono(p):
    return [lambda z, k=k: math.perm(p, k) * z ** (p - k) if p >= k else 0 * z for k in range(4)]


CASES = {
    "perceptron": ({}, [lambda z: (z >= 0) * 1.0, lambda z: 0 * z, lambda z: 0 * z, lambda z: 0 * z]),  # (2.9)
    "sigmoid": (  # (2.10)
        {},
        [
            _s,
            lambda z: _s(z) * (1 - _s(z)),
            lambda z: _s(z) * (1 - _s(z)) * (1 - 2 * _s(z)),
            lambda z: _s(z) * (1 - _s(z)) * (1 - 6 * _s(z) + 6 * _s(z) ** 2),
        ],
    ),
    "shifted_sigmoid": (
        {},
        [
            lambda z: _s(z) - 0.5,
            lambda z: _s(z) * (1 - _s(z)),
            lambda z: _s(z) * (1 - _s(z)) * (1 - 2 * _s(z)),
            lambda z: _s(z) * (1 - _s(z)) * (1 - 6 * _s(z) + 6 * _s(z) ** 2),
        ],
    ),
    "tanh": (  # (2.11)
        {},
        [
            np.tanh,
            lambda z: 1 - np.tanh(z) ** 2,
            lambda z: -2 * np.tanh(z) * (1 - np.tanh(z) ** 2),
            lambda z: -2 * (1 - np.tanh(z) ** 2) * (1 - 3 * np.tanh(z) ** 2),
        ],
    ),
    "sin": ({}, [np.sin, np.cos, lambda z: -np.sin(z), lambda z: -np.cos(z)]),  # (2.12)
    "linear": ({"slope": 1.7}, [lambda z: 1.7 * z, lambda z: 1.7 + 0 * z, lambda z: 0 * z, lambda z: 0 * z]),
    "relu": ({}, [lambda z: np.where(z >= 0, z, 0.0), lambda z: (z >= 0) * 1.0, lambda z: 0 * z, lambda z: 0 * z]),
    "leaky_relu": (
        {"slope": 0.2},
        [lambda z: np.where(z >= 0, z, 0.2 * z), lambda z: np.where(z >= 0, 1.0, 0.2), lambda z: 0 * z, lambda z: 0 * z],
    ),
    "scale_invariant": (  # (2.14) with a₊ = 2, a₋ = −0.5
        {"a_plus": 2.0, "a_minus": -0.5},
        [lambda z: np.where(z >= 0, 2 * z, -0.5 * z), lambda z: np.where(z >= 0, 2.0, -0.5), lambda z: 0 * z, lambda z: 0 * z],
    ),
    "softplus": (  # (2.15)
        {},
        [
            lambda z: np.logaddexp(0.0, z),
            _s,
            lambda z: _s(z) * (1 - _s(z)),
            lambda z: _s(z) * (1 - _s(z)) * (1 - 2 * _s(z)),
        ],
    ),
    "swish": (  # (2.16) z/(1+e^{−z})
        {},
        [
            lambda z: z * _s(z),
            lambda z: _s(z) + z * _s(z) * (1 - _s(z)),
            lambda z: 2 * _s(z) * (1 - _s(z)) + z * _s(z) * (1 - _s(z)) * (1 - 2 * _s(z)),
            lambda z: 3 * _s(z) * (1 - _s(z)) * (1 - 2 * _s(z))
            + z * _s(z) * (1 - _s(z)) * (1 - 6 * _s(z) + 6 * _s(z) ** 2),
        ],
    ),
    "gelu": (  # (2.17) [½ + ½ erf(z/√2)] z = zΦ(z);  GELU' = Φ + zφ
        {},
        [
            lambda z: z * special.ndtr(z),
            lambda z: special.ndtr(z) + z * _phi(z),
            lambda z: _phi(z) * (2 - z * z),
            lambda z: _phi(z) * (z**3 - 4 * z),
        ],
    ),
    "erf": (  # (2.18)
        {},
        [
            special.erf,
            lambda z: 2 / SQRT_PI * np.exp(-z * z),
            lambda z: -4 * z / SQRT_PI * np.exp(-z * z),
            lambda z: (8 * z * z - 4) / SQRT_PI * np.exp(-z * z),
        ],
    ),
    "elu": (
        {"alpha": 0.7},
        [
            lambda z: np.where(z >= 0, z, 0.7 * np.expm1(np.minimum(z, 0))),
            lambda z: np.where(z >= 0, 1.0, 0.7 * np.exp(np.minimum(z, 0))),
            lambda z: np.where(z >= 0, 0.0, 0.7 * np.exp(np.minimum(z, 0))),
            lambda z: np.where(z >= 0, 0.0, 0.7 * np.exp(np.minimum(z, 0))),
        ],
    ),
    "monomial": ({"power": 3}, _mono(3)),
}

# Grid: dense in [−6, 6], the kink/jump point 0 itself, and large |z| (overflow safety).
Z = np.concatenate([np.linspace(-6.0, 6.0, 241), [-800.0, -100.0, -40.0, -20.0, 20.0, 40.0, 100.0, 800.0]])
Z_MONO = np.linspace(-6.0, 6.0, 241)  # z³ at 800 is fine but the relative comparison is pointless


def _grid(name):
    return Z_MONO if name == "monomial" else Z


def test_every_registry_activation_is_covered():
    assert set(CASES) == set(available_activations())


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_values_and_derivatives_match_closed_forms(name, order):
    params, fns = CASES[name]
    act = activation(name, **params)
    z = _grid(name)
    got = act.numpy(z, order)
    want = fns[order](z)
    assert got.shape == z.shape and got.dtype == np.float64
    assert np.all(np.isfinite(got)), f"{name}^({order}) not finite at z = {z[~np.isfinite(got)]}"
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, err_msg=f"{name} order {order}")


@pytest.mark.parametrize(
    "name, orders",
    [("sigmoid", (0, 1)), ("softplus", (0, 1)), ("swish", (0, 1)), ("gelu", (0, 1)), ("erf", (0, 1)), ("elu", (0,))],
)
def test_tails_keep_relative_precision(name, orders):
    """Away from underflow the tails are accurate to a relative 1e-12 (no 1 + erf(−x) cancellation).

    (tanh' and ELU' come from JAX's rules 1 − tanh² and expm1 + 1: in the far tails they are accurate to
    ~1e-16 absolute, not relative — harmless for Gaussian expectations, so not asserted here.)
    """
    params, fns = CASES[name]
    z = np.array([-30.0, -15.0, -8.0, -3.0, 3.0, 8.0, 15.0, 30.0])
    for order in orders:
        want = fns[order](z)
        got = activation(name, **params).numpy(z, order)
        nz = want != 0
        np.testing.assert_allclose(got[nz], want[nz], rtol=1e-12, atol=0, err_msg=f"{name} order {order}")


def test_overflow_safety_at_huge_arguments():
    assert activation("softplus").numpy([800.0])[0] == 800.0
    assert activation("softplus").numpy([-800.0])[0] == 0.0
    assert activation("sigmoid").numpy([-800.0])[0] == 0.0
    assert activation("sigmoid").numpy([800.0])[0] == 1.0
    assert activation("swish").numpy([-800.0])[0] == 0.0
    assert activation("gelu").numpy([-800.0, 800.0]).tolist() == [0.0, 800.0]
    for name in available_activations():
        if name == "monomial":
            continue
        for order in range(3):
            v = activation(name).numpy([-1e4, -800.0, 800.0, 1e4], order)
            assert np.all(np.isfinite(v)), (name, order, v)


def test_sigmoid_tanh_identity_2_10():
    z = np.linspace(-30, 30, 601)
    np.testing.assert_allclose(activation("sigmoid").numpy(z), 0.5 + 0.5 * np.tanh(z / 2), rtol=1e-14, atol=1e-16)
    # the shifted sigmoid is ½ tanh(z/2): odd, and relatively accurate near 0
    tiny = np.array([1e-300, 1e-12, 1e-6])
    np.testing.assert_allclose(activation("shifted_sigmoid").numpy(tiny), tiny / 4, rtol=1e-11)


SIGMA0 = {  # digest "Ch. 2 Networks": σ(0)
    "perceptron": 1.0,
    "sigmoid": 0.5,
    "tanh": 0.0,
    "sin": 0.0,
    "linear": 0.0,
    "relu": 0.0,
    "leaky_relu": 0.0,
    "softplus": math.log(2.0),
    "swish": 0.0,
    "gelu": 0.0,
}


@pytest.mark.parametrize("name", sorted(SIGMA0))
def test_sigma0_from_the_book(name):
    assert activation(name).sigma0 == pytest.approx(SIGMA0[name], abs=1e-15)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "sin", "softplus", "swish", "gelu", "erf", "elu", "monomial"])
def test_autodiff_matches_finite_differences_away_from_kinks(name):
    act = activation(name)
    z = np.linspace(-4.0, 4.0, 81)
    z = z[np.abs(z) > 0.05] if act.kinks else z
    h = 1e-5
    for order in range(3):
        fd = (act.numpy(z + h, order) - act.numpy(z - h, order)) / (2 * h)
        np.testing.assert_allclose(act.numpy(z, order + 1), fd, rtol=1e-6, atol=1e-8, err_msg=f"{name} {order}")


def test_right_derivative_convention_at_kinks():
    assert activation("relu").numpy([0.0], 1)[0] == 1.0
    assert activation("relu").numpy([-1e-12], 1)[0] == 0.0
    assert activation("leaky_relu", slope=0.1).numpy([0.0], 1)[0] == 1.0
    assert activation("leaky_relu", slope=0.1).numpy([-1e-12], 1)[0] == pytest.approx(0.1)
    assert activation("scale_invariant", a_plus=3.0, a_minus=0.5).numpy([0.0], 1)[0] == 3.0
    elu = activation("elu", alpha=2.0)
    assert elu.numpy([0.0], 1)[0] == 1.0 and elu.numpy([-1e-12], 1)[0] == pytest.approx(2.0)
    assert elu.numpy([0.0], 2)[0] == 0.0 and elu.numpy([-1e-12], 2)[0] == pytest.approx(2.0)
    step = activation("perceptron")
    assert step.numpy([0.0])[0] == 1.0 and step.numpy([-1e-300])[0] == 0.0  # (2.9): σ(0) = 1
    assert step.numpy([0.0, 1.0], 1).tolist() == [0.0, 0.0]  # δ(z) is recorded in .jumps, not autodiff


def test_derivative_returns_jax_function_consistent_with_numpy():
    act = activation("gelu")
    with jax.enable_x64(True):
        d2 = jax.jit(act.derivative(2))(jnp.linspace(-3.0, 3.0, 13, dtype=jnp.float64))
    np.testing.assert_allclose(np.asarray(d2), act.numpy(np.linspace(-3, 3, 13), 2), rtol=1e-14, atol=1e-16)
    for bad in (-1, 1.5, True):
        with pytest.raises(DeepEFTInputError, match="order"):
            act.derivative(bad)
        with pytest.raises(DeepEFTInputError, match="order"):
            act.numpy([0.0], bad)


def test_float32_inputs_stay_float32_and_x64_is_not_flipped():
    act = activation("tanh")
    before = jnp.zeros(1).dtype
    act.numpy([0.3], 2)
    assert jnp.zeros(1).dtype == before
    out = act(jnp.ones(3, dtype=jnp.float32))
    assert out.dtype == jnp.float32


KINK_META = {
    # name: (kinks, jumps, smooth, family)
    "perceptron": ((), (0.0,), False, "step"),
    "relu": ((0.0,), (), False, "scale_invariant"),
    "leaky_relu": ((0.0,), (), False, "scale_invariant"),
    "scale_invariant": ((0.0,), (), False, "scale_invariant"),
    "linear": ((), (), True, "scale_invariant"),
    "elu": ((0.0,), (), False, None),
    "tanh": ((), (), True, None),
    "sigmoid": ((), (), True, None),
    "shifted_sigmoid": ((), (), True, None),
    "softplus": ((), (), True, None),
    "swish": ((), (), True, None),
    "gelu": ((), (), True, None),
    "erf": ((), (), True, "erf"),
    "sin": ((), (), True, "sin"),
    "monomial": ((), (), True, "monomial"),
}


@pytest.mark.parametrize("name", sorted(KINK_META))
def test_kink_jump_and_family_metadata(name):
    act = activation(name)
    kinks, jumps, smooth, family = KINK_META[name]
    assert (act.kinks, act.jumps, act.smooth, act.family) == (kinks, jumps, smooth, family)
    d = act.describe()
    assert d["name"] == name and d["kinks"] == list(kinks) and d["smooth"] == smooth


def test_kinks_are_where_the_derivative_jumps():
    """Metadata is truthful: σ' or σ'' is discontinuous at each recorded kink; σ' is continuous elsewhere."""
    eps = 1e-9
    for act in [activation(n) for n in available_activations()] + [activation("elu", alpha=0.5)]:
        for k in act.kinks:
            jumps = [abs(np.diff(act.numpy([k - eps, k], order))[0]) for order in (1, 2)]
            assert max(jumps) > 1e-3, act
        if act.smooth:
            z = np.linspace(-3, 3, 61)
            assert np.allclose(act.numpy(z - eps, 1), act.numpy(z, 1), atol=1e-6), act
    assert activation("leaky_relu", slope=1.0).kinks == ()  # a₊ = a₋: no kink


TAYLOR = {  # σ_p = σ^{(p)}(0), p = 0..5, from the series of each printed formula
    "tanh": [0, 1, 0, -2, 0, 16],
    "sin": [0, 1, 0, -1, 0, 1],
    "erf": [2 / SQRT_PI * c for c in (0, 1, 0, -2, 0, 12)],  # 2/√π (z − z³/3 + z⁵/10 − …)
    "gelu": [0, 0.5, 2 / SQRT_2PI, 0, -4 / SQRT_2PI, 0],  # z/2 + (z² − z⁴/6 + …)/√(2π)
    "swish": [0, 0.5, 0.5, 0, -0.5, 0],  # z/2 + z²/4 − z⁴/48 + …
    "sigmoid": [0.5, 0.25, 0, -0.125, 0, 0.25],
    "softplus": [math.log(2), 0.5, 0.25, 0, -0.125, 0],
    "relu": [0, 1, 0, 0, 0, 0],  # right derivatives at the kink
    "perceptron": [1, 0, 0, 0, 0, 0],
    "monomial": [0, 0, 2, 0, 0, 0],
}


@pytest.mark.parametrize("name", sorted(TAYLOR))
def test_taylor_coefficients_at_zero(name):
    np.testing.assert_allclose(activation(name).taylor(5), TAYLOR[name], rtol=1e-12, atol=1e-13)


MP_FUNCS = {
    "tanh": mpmath.tanh,
    "sin": mpmath.sin,
    "erf": mpmath.erf,
    "gelu": lambda z: z * mpmath.ncdf(z),
    "swish": lambda z: z / (1 + mpmath.exp(-z)),
    "sigmoid": lambda z: 1 / (1 + mpmath.exp(-z)),
    "softplus": lambda z: mpmath.log(1 + mpmath.exp(z)),
}


@pytest.mark.parametrize("name", sorted(MP_FUNCS))
def test_taylor_against_mpmath(name):
    """Independent check of σ_p to order 6 with mpmath's high-precision differentiation."""
    with mpmath.workdps(40):
        coeffs = mpmath.taylor(MP_FUNCS[name], 0, 6)
        want = [float(c * math.factorial(p)) for p, c in enumerate(coeffs)]
    np.testing.assert_allclose(activation(name).taylor(6), want, rtol=1e-12, atol=1e-13)


def test_scale_invariant_slopes():
    assert (activation("relu").a_plus, activation("relu").a_minus) == (1.0, 0.0)
    assert (activation("leaky_relu", slope=0.2).a_plus, activation("leaky_relu", slope=0.2).a_minus) == (1.0, 0.2)
    assert activation("leaky_relu").a_minus == 0.01  # default slope
    assert (activation("linear", slope=3.0).a_plus, activation("linear", slope=3.0).a_minus) == (3.0, 3.0)
    si = activation("scale_invariant", a_plus=2.0, a_minus=-1.0)
    assert (si.a_plus, si.a_minus, si.scale_invariant) == (2.0, -1.0, True)
    for name in ["tanh", "gelu", "swish", "softplus", "elu", "perceptron"]:
        act = activation(name)
        assert act.a_plus is None and act.a_minus is None and not act.scale_invariant


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    lam=st.floats(1e-3, 1e3),
    z=st.floats(-50, 50),
    name=st.sampled_from(["relu", "leaky_relu", "linear", "scale_invariant"]),
)
def test_scale_invariance_2_13(lam, z, name):
    act = activation(name)
    assert act.numpy([lam * z])[0] == pytest.approx(lam * act.numpy([z])[0], rel=1e-13, abs=1e-300)


BOUNDED = {"perceptron", "sigmoid", "shifted_sigmoid", "tanh", "sin", "erf"}


@pytest.mark.parametrize("name", sorted(available_activations()))
def test_bounded_flags(name):
    act = activation(name)
    assert act.bounded == (name in BOUNDED)
    v = np.abs(act.numpy(np.linspace(-1e3, 1e3, 2001)))
    assert (v.max() <= 1.0) if act.bounded else (v.max() >= 1e3)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(z=st.floats(-700, 700))
def test_sigmoid_identity_property(z):
    # ½ + ½tanh(z/2) itself cancels for z ≪ 0, so compare with an absolute floor of a few ulp of ½
    assert activation("sigmoid").numpy([z])[0] == pytest.approx(0.5 + 0.5 * math.tanh(z / 2), rel=1e-14, abs=2e-16)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(z=st.floats(-30, 30), name=st.sampled_from(["tanh", "sin", "erf", "shifted_sigmoid", "monomial"]))
def test_odd_activations_are_odd(z, name):
    act = activation(name, power=3) if name == "monomial" else activation(name)
    a, b = act.numpy([z, -z])
    assert a == -b


@settings(max_examples=40, deadline=None, derandomize=True)
@given(z=st.floats(-30, 30), name=st.sampled_from(["relu", "softplus", "swish", "gelu"]))
def test_relu_like_odd_part_is_z_over_two(z, name):
    """σ(z) − σ(−z) = z for ReLU and its smoothings (2.15)–(2.17): each is z·g(z) with g(z) + g(−z) = 1."""
    a, b = activation(name).numpy([z, -z])
    assert a - b == pytest.approx(z, rel=1e-12, abs=1e-12)


def test_aliases():
    assert activation("silu") == activation("swish")
    assert activation("step") == activation("perceptron") == activation("heaviside")
    assert activation("Leaky-ReLU") == activation("leaky_relu")
    assert activation("Leaky ReLU", slope=0.3) == activation("leaky_relu", slope=0.3)
    assert activation("logistic") == activation("sigmoid")
    assert activation("identity").name == "linear"
    assert activation("  TANH ") == activation("tanh")


def test_unknown_name_suggests():
    with pytest.raises(DeepEFTInputError, match=r"unknown activation 'relux'.*Did you mean 'relu'"):
        activation("relux")
    with pytest.raises(DeepEFTInputError, match="Did you mean 'tanh'"):
        activation("tanhh")
    with pytest.raises(DeepEFTInputError, match="or pass a callable"):
        activation("zzzzzz")
    with pytest.raises(DeepEFTInputError, match="a name .* or a callable"):
        activation(42)
    assert issubclass(DeepEFTInputError, ValueError)


def test_parameter_errors():
    with pytest.raises(DeepEFTInputError, match=r"unknown parameter\(s\) \['alpha'\]: it takes slope"):
        activation("leaky_relu", alpha=0.1)
    with pytest.raises(DeepEFTInputError, match="takes no parameters"):
        activation("relu", slope=0.1)
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(DeepEFTInputError, match="must be finite"):
            activation("leaky_relu", slope=bad)
    with pytest.raises(DeepEFTInputError, match="must be a number"):
        activation("elu", alpha="big")
    with pytest.raises(DeepEFTInputError, match="non-negative integer"):
        activation("monomial", power=1.5)
    with pytest.raises(DeepEFTInputError, match="non-negative integer"):
        activation("monomial", power=-2)
    with pytest.raises(DeepEFTInputError, match="together with an Activation"):
        activation(activation("tanh"), slope=1.0)


def test_activation_passthrough():
    act = activation("leaky_relu", slope=0.2)
    assert activation(act) is act


def test_equality_and_hashing():
    a, b = activation("leaky_relu", slope=0.2), activation("leaky_relu", slope=0.2)
    assert a is not b and a == b and hash(a) == hash(b)
    assert a != activation("leaky_relu", slope=0.3) and a != activation("relu") and a != "leaky_relu"
    assert activation("leaky_relu") == activation("leaky_relu", slope=0.01)
    cache = {a: 1, activation("tanh"): 2}
    assert cache[b] == 1 and cache[activation("tanh")] == 2
    assert repr(a) == "Activation(leaky_relu, slope=0.2)"
    assert a.param_dict == {"slope": 0.2}

    calls = []

    def apply(x, act):
        calls.append(act.name)  # runs only when tracing
        return act(x)

    f = jax.jit(apply, static_argnums=1)
    f(jnp.ones(2), a)
    f(jnp.ones(2), b)  # equal static arg: cache hit, no retrace
    assert calls == ["leaky_relu"]


def _ramp(z):
    return jnp.where(z >= 1.0, 2.0 * (z - 1.0), 0.5 * (z - 1.0))


def test_custom_callable():
    act = activation(lambda z: jnp.tanh(2 * z), name="tanh2")
    assert act.name == "tanh2" and act.custom and act.smooth and act.bounded
    z = np.linspace(-5, 5, 21)
    np.testing.assert_allclose(act.numpy(z), np.tanh(2 * z), rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(act.numpy(z, 1), 2 * (1 - np.tanh(2 * z) ** 2), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(act.taylor(3), [0, 2, 0, -16], atol=1e-12)
    assert activation(lambda z: z * z).name == "custom" and not activation(lambda z: z * z).bounded
    assert activation(jnp.sin, bounded=True).bounded


def test_custom_callable_with_kinks():
    act = activation(_ramp, kinks=[1.0])
    assert act.name == "_ramp" and act.kinks == (1.0,) and not act.smooth
    assert act.numpy([1.0], 1)[0] == 2.0  # right derivative (written as where(z >= c, right, left))
    assert act.numpy([1.0 - 1e-12], 1)[0] == 0.5
    # same function, different metadata: not equal (caches keyed by activation must not mix them)
    assert act != activation(_ramp) and act == activation(_ramp, kinks=(1.0,))
    assert hash(act) == hash(activation(_ramp, kinks=(1.0,)))
    with pytest.raises(DeepEFTInputError, match="kinks must be finite"):
        activation(_ramp, kinks=[float("nan")])
    with pytest.raises(DeepEFTInputError, match="kinks must be a sequence of real numbers"):
        activation(_ramp, kinks=["left"])


def test_custom_callable_errors():
    with pytest.raises(DeepEFTInputError, match="non-finite value at z = 0"):
        activation(lambda z: 1.0 / z)
    with pytest.raises(DeepEFTInputError, match="non-finite"):
        activation(jnp.log)
    with pytest.raises(DeepEFTInputError, match="non-finite"):  # finite, but σ' = ∞ at 0
        activation(lambda z: jnp.sqrt(jnp.abs(z)))
    with pytest.raises(DeepEFTInputError, match="elementwise .* output shape \\(\\)"):
        activation(lambda z: jnp.sum(z))
    with pytest.raises(DeepEFTInputError, match="written with jax.numpy"):
        activation(lambda z: math.tanh(z))  # not traceable on arrays
    with pytest.raises(DeepEFTInputError, match="written with jax.numpy"):
        activation(lambda z: z if z > 0 else 0 * z)  # Python control flow on an array
    with pytest.raises(DeepEFTInputError, match=r"unknown keyword\(s\) \['slope'\]"):
        activation(lambda z: z, slope=2.0)
    with pytest.raises(DeepEFTInputError, match="name of a custom activation must be a string"):
        activation(lambda z: z, name=3)


def test_available_activations_are_all_constructible():
    names = available_activations()
    assert names == sorted(names) and "relu" in names and "silu" not in names
    for n in names:
        assert isinstance(activation(n), Activation) and activation(n).name == n


# -- the Fig. 2.2 analogue -----------------------------------------------------------------------


def test_plot_activations_writes_png(tmp_path):
    from matplotlib.figure import Figure

    from deepeft.plots import BOOK_FIG_2_2, plot_activations

    path = tmp_path / "sub" / "acts.png"
    fig = plot_activations(path=path)
    assert isinstance(fig, Figure)
    assert sum(a.get_visible() for a in fig.axes) == len(BOOK_FIG_2_2) == 12
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and 10_000 < len(data) < 200_000
    relu_ax = fig.axes[BOOK_FIG_2_2.index("relu")]
    solid, dashed = relu_ax.lines[:2]
    assert solid.get_linestyle() == "-" and dashed.get_linestyle() == "--"
    x, y = dashed.get_data()
    assert np.nanmax(y) == 1.0 and np.nanmin(y) == 0.0  # σ' of ReLU, with a break at the kink


def test_plot_activations_axes_options(tmp_path):
    from matplotlib.figure import Figure

    from deepeft.plots import plot_activations

    fig = Figure()
    axes = fig.subplots(1, 2)
    assert plot_activations(["tanh", activation("leaky_relu", slope=0.2)], ax=axes) is fig
    assert axes[1].get_title() == "leaky_relu(slope=0.2)"
    one = Figure().subplots()
    fig2 = plot_activations(["tanh", "gelu", activation(_ramp, kinks=(1.0,))], ax=one, z_range=(-2, 2))
    assert fig2 is one.figure and len(one.lines) == 7  # 3 × (σ, σ') + the kink marker
    assert [t.get_text() for t in one.get_legend().get_texts()] == ["tanh", "gelu", "ramp"]
    with pytest.raises(DeepEFTInputError, match="at least 3 Axes"):
        plot_activations(["tanh", "sin", "erf"], ax=axes)
    with pytest.raises(DeepEFTInputError, match="names is empty"):
        plot_activations([])
    with pytest.raises(DeepEFTInputError, match="z_range"):
        plot_activations(["tanh"], z_range=(1, -1))
    with pytest.raises(DeepEFTInputError, match="Did you mean"):
        plot_activations(["tahn"])


def test_require_smooth_is_the_one_refusal_of_the_finite_width_dynamics():
    """de.require_smooth passes smooth activations and linear through and refuses every kink or jump with
    the reason (⟨σ″σ″⟩ diverges) and what to use; the finite-width entry points all raise this message."""
    for name in ("tanh", "gelu", "swish", "erf", "sin", "softplus", "linear"):
        assert de.require_smooth(name).name == name
    for name in ("relu", "leaky_relu", "elu", "perceptron"):
        with pytest.raises(DeepEFTInputError, match=r"^The X needs a smooth activation.*z = \[0\.0\].*⟨σ″σ″⟩ diverges.*gelu"):
            de.require_smooth(name, "The X")
    net = de.MLP(input_dim=2, widths=[4, 4, 1], activation="relu")
    X = np.eye(2)
    calls = (
        lambda: de.dntk(net, X),
        lambda: de.ddntk(net, X),
        lambda: de.ddntk_single_input(net),
        lambda: de.trained_output(de.sample_params(net, seed=0), net, X, np.zeros((2, 1)), X, eta=0.1),
    )
    for call in calls:
        with pytest.raises(DeepEFTInputError, match=r"needs a smooth activation.*⟨σ″σ″⟩ diverges"):
            call()
