"""Activation registry (book §2.2, eqs. (2.9)–(2.17), plus erf, ELU, monomials and user callables).

``activation(name, **params)`` returns a frozen :class:`Activation`: a JAX-traceable elementwise
function with metadata that the Gaussian expectation engine and the criticality analysis use.

Conventions
-----------
* Derivatives are taken by autodiff (``derivative(order)``), up to any order.
* **Kinks.** At a kink the derivative is the *right* (z ≥ 0 branch) one-sided derivative: every
  piecewise activation is written ``where(z >= c, right, left)``. Kink locations are recorded in
  ``kinks`` so quadrature can split there. The perceptron's jump has a distributional derivative
  δ(z) which autodiff does not represent (its ``derivative(1)`` is 0 everywhere); ``jumps`` records it.
* Scale-invariant activations (2.14) record their slopes ``a_plus``, ``a_minus``.
* ``family`` tags activations with closed-form Gaussian integrals (used by the engine's dispatch):
  ``"scale_invariant"`` (linear, ReLU, leaky ReLU), ``"step"``, ``"erf"``, ``"sin"``, ``"monomial"``,
  or ``None`` (quadrature / series).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._x64 import x64
from .errors import DeepEFTInputError, suggest

__all__ = ["Activation", "activation", "available_activations", "require_smooth"]


@dataclasses.dataclass(frozen=True, eq=False)
class Activation:
    """An elementwise activation σ(z) with metadata. Build it with :func:`activation`."""

    name: str
    fn: Callable[[jax.Array], jax.Array]
    params: tuple[tuple[str, float], ...] = ()
    kinks: tuple[float, ...] = ()
    jumps: tuple[float, ...] = ()
    a_plus: float | None = None
    a_minus: float | None = None
    bounded: bool = False
    family: str | None = None
    custom: bool = False

    # -- identity: registry activations compare by (name, params); custom ones by function ------
    def _key(self):
        if self.custom:  # same function with different metadata (kinks) must not share caches
            return (self.name, id(self.fn), self.kinks, self.bounded)
        return (self.name, self.params)

    def __eq__(self, other):
        return isinstance(other, Activation) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        p = ", ".join(f"{k}={v:g}" for k, v in self.params)
        return f"Activation({self.name}{', ' + p if p else ''})"

    # -- metadata -------------------------------------------------------------------------
    @property
    def param_dict(self) -> dict[str, float]:
        return dict(self.params)

    @property
    def smooth(self) -> bool:
        """True when σ has no kinks or jumps (derivatives of every order are continuous)."""
        return not self.kinks and not self.jumps

    @property
    def breakpoints(self) -> tuple[float, ...]:
        """Sorted points where σ is not smooth (kinks ∪ jumps): where every quadrature splits its panels."""
        return tuple(sorted(set(self.kinks) | set(self.jumps)))

    @property
    def scale_invariant(self) -> bool:
        """σ(λz) = λσ(z) for λ > 0 (2.13): linear, ReLU, leaky ReLU."""
        return self.a_plus is not None

    @property
    def sigma0(self) -> float:
        """σ(0) (right-continuous convention at a jump)."""
        return float(self.numpy(np.zeros(1))[0])

    # -- evaluation -----------------------------------------------------------------------
    def __call__(self, z):
        """σ(z), JAX-traceable (dtype follows z)."""
        return self.fn(z)

    def derivative(self, order: int = 1) -> Callable[[jax.Array], jax.Array]:
        """σ^{(order)} as a JAX-traceable elementwise function (autodiff; right derivative at kinks)."""
        _check_order(order)
        return _derivative(self.fn, order)

    def numpy(self, z, order: int = 0) -> np.ndarray:
        """σ^{(order)}(z) in float64 as a NumPy array (for theory code)."""
        _check_order(order)
        if order <= 1:
            return self.value_and_derivative(z)[order]
        z = np.asarray(z, dtype=np.float64)
        with x64():
            out = _jitted_derivative(self, order)(jnp.asarray(z, dtype=jnp.float64))
            return np.asarray(out, dtype=np.float64)

    def value_and_derivative(self, z) -> tuple[np.ndarray, np.ndarray]:
        """(σ(z), σ′(z)) in float64 as NumPy arrays shaped like ``z``: one forward-mode program per activation,
        run on blocks of ``EVAL_BLOCK`` values (zero-padded), so any number of values costs one compilation."""
        z = np.asarray(z, dtype=np.float64)
        flat = z.ravel()
        n = flat.size
        blocks = max(-(-n // EVAL_BLOCK), 1)
        padded = np.zeros(blocks * EVAL_BLOCK)
        padded[:n] = flat
        run = _value_and_derivative_program(self)
        s, d = np.empty_like(padded), np.empty_like(padded)
        with x64():
            for b in range(blocks):
                sl = slice(b * EVAL_BLOCK, (b + 1) * EVAL_BLOCK)
                sb, db = run(padded[sl])  # a NumPy argument: no separate transfer program to compile
                s[sl], d[sl] = np.asarray(sb), np.asarray(db)
        return s[:n].reshape(z.shape), d[:n].reshape(z.shape)

    def taylor(self, order: int = 5) -> np.ndarray:
        """Taylor coefficients σ_p = σ^{(p)}(0), p = 0..order (book (5.80); right derivatives at a kink)."""
        _check_order(order)
        return np.array([self.numpy(np.zeros(1), p)[0] for p in range(order + 1)])

    def describe(self) -> dict[str, Any]:
        """Metadata as a plain dict (for reports and the CLI)."""
        return {
            "name": self.name,
            "params": self.param_dict,
            "kinks": list(self.kinks),
            "jumps": list(self.jumps),
            "a_plus": self.a_plus,
            "a_minus": self.a_minus,
            "scale_invariant": self.scale_invariant,
            "bounded": self.bounded,
            "smooth": self.smooth,
            "sigma0": self.sigma0,
            "family": self.family,
        }


def _check_order(order) -> None:
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 0:
        raise DeepEFTInputError(f"derivative order must be an integer >= 0, got {order!r}.")


def _derivative(fn, order: int):
    f = fn
    for _ in range(order):
        f = _elementwise_grad(f)
    return f


def _elementwise_grad(f):
    g = jax.grad(lambda z: jnp.sum(f(z)))
    return lambda z: g(z)


@functools.lru_cache(maxsize=256)
def _jitted_derivative(act: Activation, order: int):
    return jax.jit(_derivative(act.fn, order))


# Values per call of the (σ, σ′) program: one compiled shape for every caller (probes, quadrature nodes of one
# kernel value or of a whole grid); ~0.1 ms per block for tanh on CPU.
EVAL_BLOCK = 4096


@functools.lru_cache(maxsize=256)
def _value_and_derivative_program(act: Activation):
    fn = act.fn
    return jax.jit(lambda z: jax.jvp(fn, (z,), (jnp.ones_like(z),)))


# ---------------------------------------------------------------------------------------------
# The registry. Each builder returns an Activation; parameters are keyword-only floats.
# ---------------------------------------------------------------------------------------------


def _scale_invariant(name, a_plus, a_minus, params=()):
    ap, am = float(a_plus), float(a_minus)

    def fn(z):
        return jnp.where(z >= 0, ap * z, am * z)  # (2.14)

    kinks = () if ap == am else (0.0,)
    return Activation(name, fn, params, kinks=kinks, a_plus=ap, a_minus=am, family="scale_invariant")


def _perceptron():
    def fn(z):
        return jnp.where(z >= 0, jnp.ones_like(z), jnp.zeros_like(z))  # (2.9)

    return Activation("perceptron", fn, jumps=(0.0,), bounded=True, family="step")


def _sigmoid():
    return Activation("sigmoid", jax.nn.sigmoid, bounded=True)  # (2.10) 1/(1+e^{-z})


def _shifted_sigmoid():
    # σ − ½ = ½ tanh(z/2) by (2.10): written with tanh so it keeps full relative precision near z = 0.
    return Activation("shifted_sigmoid", lambda z: 0.5 * jnp.tanh(0.5 * z), bounded=True)  # (K*=0 class)


def _tanh():
    return Activation("tanh", jnp.tanh, bounded=True)  # (2.11)


def _sin():
    return Activation("sin", jnp.sin, bounded=True, family="sin")  # (2.12)


def _softplus():
    return Activation("softplus", jax.nn.softplus)  # (2.15) log(1+e^z), overflow-safe


def _swish():
    return Activation("swish", lambda z: z * jax.nn.sigmoid(z))  # (2.16) z/(1+e^{-z})


def _gelu():
    # (2.17) [½ + ½ erf(z/√2)] z, written as ½ erfc(−z/√2) z: same function, no cancellation for z ≪ 0.
    return Activation("gelu", lambda z: 0.5 * jax.scipy.special.erfc(-z / math.sqrt(2.0)) * z)


def _erf():
    return Activation("erf", jax.scipy.special.erf, bounded=True, family="erf")


def _elu(alpha=1.0):
    a = float(alpha)

    def fn(z):
        return jnp.where(z >= 0, z, a * jnp.expm1(jnp.minimum(z, 0.0)))

    # ELU is C⁰ (C¹ only for α = 1, never C²): record the kink at 0 so quadrature splits there.
    return Activation("elu", fn, (("alpha", a),), kinks=(0.0,))


def _monomial(power=2):
    p = float(power)
    if p < 0 or not p.is_integer():
        raise DeepEFTInputError(f"monomial power must be a non-negative integer, got {power}.")
    ip = int(p)
    return Activation("monomial", lambda z: z**ip, (("power", p),), family="monomial")


def _linear(slope=1.0):
    return _scale_invariant("linear", slope, slope, (("slope", float(slope)),))


def _relu():
    return _scale_invariant("relu", 1.0, 0.0)


def _leaky_relu(slope=0.01):
    return _scale_invariant("leaky_relu", 1.0, slope, (("slope", float(slope)),))


def _scale_inv(a_plus=1.0, a_minus=0.0):
    return _scale_invariant(
        "scale_invariant", a_plus, a_minus, (("a_plus", float(a_plus)), ("a_minus", float(a_minus)))
    )


_REGISTRY: dict[str, Callable[..., Activation]] = {
    "perceptron": _perceptron,
    "sigmoid": _sigmoid,
    "shifted_sigmoid": _shifted_sigmoid,
    "tanh": _tanh,
    "sin": _sin,
    "linear": _linear,
    "relu": _relu,
    "leaky_relu": _leaky_relu,
    "scale_invariant": _scale_inv,
    "softplus": _softplus,
    "swish": _swish,
    "gelu": _gelu,
    "erf": _erf,
    "elu": _elu,
    "monomial": _monomial,
}

_ALIASES = {
    "step": "perceptron",
    "heaviside": "perceptron",
    "logistic": "sigmoid",
    "identity": "linear",
    "leakyrelu": "leaky_relu",
    "silu": "swish",
}

_PARAMS = {
    "linear": ("slope",),
    "leaky_relu": ("slope",),
    "scale_invariant": ("a_plus", "a_minus"),
    "elu": ("alpha",),
    "monomial": ("power",),
}


def available_activations() -> list[str]:
    """Names accepted by :func:`activation` (aliases excluded)."""
    return sorted(_REGISTRY)


def activation(name_or_fn, /, **params) -> Activation:
    """Look up an activation by name, or wrap a user callable.

    Examples: ``activation("tanh")``, ``activation("leaky_relu", slope=0.2)``,
    ``activation(lambda z: jnp.tanh(2 * z), name="tanh2")``,
    ``activation(my_fn, kinks=(0.0,))`` for a custom piecewise function.

    A callable must be elementwise and written with ``jax.numpy`` (so it can be differentiated);
    it is probed on [−10, 10] and rejected if it returns non-finite values or the wrong shape.
    """
    if isinstance(name_or_fn, Activation):
        if params:
            raise DeepEFTInputError("parameters cannot be passed together with an Activation object.")
        return name_or_fn
    if callable(name_or_fn):
        unknown = sorted(set(params) - {"name", "kinks", "bounded"})
        if unknown:
            raise DeepEFTInputError(
                f"a custom activation got unknown keyword(s) {unknown}: it takes name, kinks and bounded "
                "(put any parameters of your function inside the function itself, e.g. a lambda)."
            )
        return _custom(name_or_fn, **params)
    if not isinstance(name_or_fn, str):
        raise DeepEFTInputError(
            f"activation must be a name (one of {available_activations()}) or a callable, got {name_or_fn!r}."
        )
    key = name_or_fn.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key.replace("_", ""), _ALIASES.get(key, key))
    if key not in _REGISTRY:
        raise DeepEFTInputError(
            f"unknown activation {name_or_fn!r}.{suggest(key, list(_REGISTRY) + list(_ALIASES))} "
            f"Known: {', '.join(available_activations())}; or pass a callable."
        )
    allowed = _PARAMS.get(key, ())
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        hint = f"it takes {', '.join(allowed)}" if allowed else "it takes no parameters"
        raise DeepEFTInputError(f"activation {key!r} got unknown parameter(s) {unknown}: {hint}.")
    for k, v in params.items():
        try:
            fv = float(v)
        except (TypeError, ValueError):
            raise DeepEFTInputError(f"parameter {k} of {key!r} must be a number, got {v!r}.") from None
        if not math.isfinite(fv):
            raise DeepEFTInputError(f"parameter {k} of {key!r} must be finite, got {v!r}.")
    return _REGISTRY[key](**params)


def _custom(fn, *, name: str | None = None, kinks=(), bounded: bool | None = None) -> Activation:
    if name is not None and not isinstance(name, str):
        raise DeepEFTInputError(f"name of a custom activation must be a string, got {name!r}.")
    probe = np.linspace(-10.0, 10.0, 201)
    try:
        with x64():
            out = np.asarray(fn(jnp.asarray(probe)), dtype=np.float64)
            d1 = np.asarray(_derivative(fn, 1)(jnp.asarray(probe)), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - any failure to trace is the user's to fix
        raise DeepEFTInputError(
            "a custom activation must be an elementwise function written with jax.numpy "
            f"(so deepeft can differentiate it); calling it on a JAX array failed: {exc}"
        ) from exc
    if out.shape != probe.shape:
        raise DeepEFTInputError(
            f"a custom activation must be elementwise (same shape out as in): input shape {probe.shape}, "
            f"output shape {out.shape}."
        )
    if not np.all(np.isfinite(out)) or not np.all(np.isfinite(d1)):
        where = probe[~(np.isfinite(out) & np.isfinite(d1))][0]
        raise DeepEFTInputError(
            f"the custom activation (or its derivative) returns a non-finite value at z = {where:g}; "
            "it must be finite for all real z (Gaussian expectations integrate over the whole line)."
        )
    nm = str(name or getattr(fn, "__name__", "custom"))
    if nm == "<lambda>":
        nm = "custom"
    try:
        kk = tuple(sorted(float(k) for k in kinks))
    except (TypeError, ValueError):
        raise DeepEFTInputError(f"kinks must be a sequence of real numbers, got {kinks!r}.") from None
    if not all(math.isfinite(k) for k in kk):
        raise DeepEFTInputError(f"kinks must be finite, got {kinks!r}.")
    if bounded is None:
        bounded = bool(np.abs(out).max() < 1e6 and abs(out[-1] - out[-2]) < 1e-6 and abs(out[0] - out[1]) < 1e-6)
    return Activation(nm, fn, kinks=kk, bounded=bounded, custom=True)


def require_smooth(act, what: str = "The finite-width training dynamics") -> Activation:
    """The activation ``act`` (a name, an :class:`Activation` or a callable) if it is smooth; else the one
    refusal of the finite-width dynamics for kinked or jumping activations (ReLU, leaky ReLU, ELU, perceptron, …).

    At a breakpoint σ″ (or σ‴) is a Dirac delta: the forward equation of the dNTK multiplies it by σ′ of the
    same preactivation (δ(z)θ(z) has no unique value) and the ddNTK statistics need ⟨σ″σ″⟩, which diverges, so
    the expansion of training in the learning rate breaks down (PDLT §∞.1, (∞.39)–(∞.44)). ``what`` names the
    computation that was asked for (it starts the message). Linear (σ″ = 0) passes.
    """
    act = activation(act)
    bp = act.breakpoints
    if bp:
        raise DeepEFTInputError(
            f"{what} needs a smooth activation, but {act!r} has kinks or jumps at z = {list(bp)}: there σ″ (or σ‴) "
            "is a delta function, the forward equations multiply it by σ′ of the same preactivation (δ(z)θ(z) has "
            "no unique value) and the ddNTK expectation ⟨σ″σ″⟩ diverges — the η-expansion of the finite-width "
            "training dynamics breaks down (PDLT §∞.1, (∞.39)–(∞.44)). Use a smooth activation — 'tanh', 'gelu', "
            "'swish', 'erf', 'sin', 'softplus' — or 'linear' (σ″ = 0); for one input, de.dntk_single_input gives "
            "P, Q of kinked activations (σ″ integrated by parts, (11.67)–(11.70))."
        )
    return act
