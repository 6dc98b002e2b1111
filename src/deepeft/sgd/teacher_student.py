"""Teacher–student setup of the SGD phase-diagram paper (Park, Lucini & Aarts 2025, §3.1), generalised.

A teacher MLP (2.2)–(2.3) with weights W̄^{(ℓ)} ~ N(0, C_W/n_{ℓ−1}) (3.1) (optionally biases
b̄ ~ N(0, C_b)) labels inputs x ~ N(0, input_var). The student has the teacher's architecture;
the layers in ``trainable`` are re-initialised, W^{(ℓ)} ~ N(0, σ_W²/n_{ℓ−1}) (2.11) (biases
N(0, student_C_b)), every other layer is a copy of the teacher's. The paper's configuration
(3-32-16-1, tanh, only W^{(2)} trainable, no biases, |D| = 4000, |D_test| = 100) is
:meth:`TeacherStudent.paper`.

Internal layout (what the trainer advances). Layers before the first trainable one, ℓ₀, are
frozen, so their output a^{(ℓ₀−1)} is precomputed once per teacher for the whole data set. All
hyperparameter points p = 0..P−1 of one ensemble member share the teacher, the data and the
minibatches (common random numbers), so the P students are stacked into one wider layer: a
trainable weight is stored as ``Wt[k, p, i] = W_p[i, k]`` with shape (n_{ℓ−1}, P, n_ℓ), and the
first trainable layer is one GEMM  (batch, n_{ℓ−1}) @ (n_{ℓ−1}, P·n_ℓ). Biases: (P, n_ℓ).
Frozen layers keep the teacher's (n_ℓ, n_{ℓ−1}) layout.

Randomness: member s draws its teacher, data and the students' initial noise from NumPy
``SeedSequence([seed, s, stream])`` (streams 0 teacher, 1 data, 2 initial noise) and its
minibatches / Langevin noise from JAX ``fold_in(fold_in(PRNGKey(seed), s), stream)`` (streams 3,
4) — so results never depend on how the members are chunked, on threads, or on the grid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from ..errors import DeepEFTInputError
from ..network import MLP

__all__ = [
    "TeacherStudent", "Problem", "sample_problem", "member_keys", "init_params", "student_outputs", "mse", "losses",
    "to_user_layout", "from_user_layout",
]

STREAM_TEACHER, STREAM_DATA, STREAM_INIT, STREAM_BATCH, STREAM_NOISE = range(5)


@dataclasses.dataclass(frozen=True)
class TeacherStudent:
    """Architecture, trainable layers and data sizes of a teacher–student ensemble.

    Parameters
    ----------
    teacher : the teacher :class:`~deepeft.MLP` (widths, activation, C_W, C_b); the student copies it.
    trainable : layers ℓ (1-based) whose weights (and biases) the student trains.
    bias : whether the networks have biases (the paper: none).
    n_train, n_test : |D| and |D_test|.
    input_var : x ~ N(0, input_var) componentwise (3.1).
    student_C_b : initial variance of trainable biases (when ``bias``).
    spectral_layer : the layer whose X = W Wᵀ is tracked (4.1); default the first trainable one.
    """

    teacher: MLP
    trainable: tuple[int, ...] = (2,)
    bias: bool = False
    n_train: int = 4000
    n_test: int = 100
    input_var: float = 1.0
    student_C_b: float = 0.0
    spectral_layer: int | None = None

    def __post_init__(self):
        if not isinstance(self.teacher, MLP):
            raise DeepEFTInputError(
                f"teacher must be a deepeft.MLP, got {type(self.teacher).__name__}; "
                "e.g. MLP(3, [32, 16], 1, 'tanh', C_W=1.0)."
            )
        L = self.teacher.L
        tr = tuple(sorted({v.positive_int(t, "trainable layer") for t in np.atleast_1d(self.trainable)}))
        if not tr:
            raise DeepEFTInputError("trainable must name at least one layer ℓ in 1..L.")
        if tr[-1] > L:
            raise DeepEFTInputError(f"trainable layers must lie in 1..L = 1..{L}, got {tr}.")
        object.__setattr__(self, "trainable", tr)
        object.__setattr__(self, "n_train", v.positive_int(self.n_train, "n_train"))
        object.__setattr__(self, "n_test", v.positive_int(self.n_test, "n_test"))
        object.__setattr__(self, "input_var", v.finite_scalar(self.input_var, "input_var", strict=True))
        object.__setattr__(self, "student_C_b", v.finite_scalar(self.student_C_b, "student_C_b"))
        object.__setattr__(self, "bias", bool(self.bias))
        sl = tr[0] if self.spectral_layer is None else v.positive_int(self.spectral_layer, "spectral_layer")
        if sl not in tr:
            raise DeepEFTInputError(
                f"spectral_layer {sl} is not trainable (trainable: {tr}); X = W Wᵀ of a frozen layer does not move."
            )
        object.__setattr__(self, "spectral_layer", sl)

    # -- presets -----------------------------------------------------------------------------
    @classmethod
    def paper(cls, **changes) -> TeacherStudent:
        """The paper's setup (§3.1): 3-32-16-1 tanh, only W^{(2)} trainable, |D| = 4000, |D_test| = 100."""
        base = cls(teacher=MLP(3, [32, 16], 1, "tanh", C_b=0.0, C_W=1.0), trainable=(2,), n_train=4000, n_test=100)
        return dataclasses.replace(base, **changes) if changes else base

    @classmethod
    def build(
        cls,
        widths: Sequence[int] = (3, 32, 16, 1),
        activation="tanh",
        trainable: Sequence[int] = (2,),
        *,
        teacher_C_W: float | Sequence[float] = 1.0,
        teacher_C_b: float | Sequence[float] = 0.0,
        **kwargs,
    ) -> TeacherStudent:
        """Convenience constructor from the full width list (n_0, ..., n_L)."""
        w = [v.positive_int(n, "widths entry") for n in widths]
        if len(w) < 2:
            raise DeepEFTInputError(f"widths must list n_0..n_L (at least two numbers), got {list(widths)}.")
        teacher = MLP(w[0], w[1:-1], w[-1], activation, C_b=teacher_C_b, C_W=teacher_C_W)
        return cls(teacher=teacher, trainable=tuple(trainable), **kwargs)

    # -- derived -----------------------------------------------------------------------------
    @property
    def L(self) -> int:
        return self.teacher.L

    @property
    def n(self) -> tuple[int, ...]:
        """Widths (n_0, ..., n_L)."""
        return self.teacher.n

    @property
    def first_trainable(self) -> int:
        """ℓ₀: the layers below it are frozen and their output is precomputed."""
        return self.trainable[0]

    @property
    def tracked_layer(self) -> int:
        """ℓ of the tracked W^{(ℓ)}: :attr:`spectral_layer` as resolved by the constructor (its default, None,
        becomes the first trainable layer), typed as an int."""
        ell = self.spectral_layer
        if ell is None:  # only if __post_init__ was bypassed
            raise DeepEFTInputError("spectral_layer is unset; build TeacherStudent through its constructor.")
        return ell

    @property
    def spectral_shape(self) -> tuple[int, int]:
        """(n_ℓ, n_{ℓ−1}) of the tracked weight matrix W^{(spectral_layer)}."""
        ell = self.tracked_layer
        return self.n[ell], self.n[ell - 1]

    def trainable_parameter_count(self) -> int:
        return sum(self.n[ell] * self.n[ell - 1] + (self.n[ell] if self.bias else 0) for ell in self.trainable)


class Problem(NamedTuple):
    """One teacher per ensemble member (leading axis M), with its data, in the internal layout.

    a_train/a_test: precomputed input a^{(ℓ₀−1)} of the first trainable layer (M, N, n_{ℓ₀−1});
    y_train/y_test: teacher outputs (M, N, n_L); frozen: per layer ℓ₀..L, the teacher's
    {"W": (M, n_ℓ, n_{ℓ−1}), "b": (M, n_ℓ) or None} for frozen layers and None for trainable
    ones; teacher_trainable: the teacher's own weights at the trainable layers (same structure,
    reversed roles: None at frozen layers); init_noise: standard normal draws for the student's
    trainable parameters, {"W": (M, n_{ℓ−1}, n_ℓ), "b": (M, n_ℓ) or None}; keys: member keys (M, 2).
    """

    a_train: jax.Array
    y_train: jax.Array
    a_test: jax.Array
    y_test: jax.Array
    frozen: tuple
    teacher_trainable: tuple
    init_noise: tuple
    keys: jax.Array


def member_keys(seed: int, members: Sequence[int] | np.ndarray) -> jax.Array:
    """Keys fold_in(PRNGKey(seed), s) for the listed member indices s."""
    base = jax.random.PRNGKey(int(seed))
    return jax.vmap(lambda s: jax.random.fold_in(base, s))(jnp.asarray(members, dtype=jnp.uint32))


def _act(setup: TeacherStudent):
    return setup.teacher.activation.fn


def _rng(seed: int, member: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(member), stream]))


def _teacher_forward(setup, Ws, bs, x, upto: int):
    """a^{(upto)} = σ(a^{(upto−1)}) of the teacher in float64 (x itself when upto = 0); z^{(L)} linear."""
    h = x
    for ell in range(1, upto + 1):
        z = h @ Ws[ell - 1].T
        if bs is not None:
            z = z + bs[ell - 1]
        h = setup.teacher.activation.numpy(z) if ell < setup.L else z
    return h


def _sample_member(setup: TeacherStudent, seed: int, member: int) -> dict:
    """One member's teacher, data and initial noise, float64 NumPy (independent of any chunking)."""
    n, L = setup.n, setup.L
    rt, rd, ri = (_rng(seed, member, s) for s in (STREAM_TEACHER, STREAM_DATA, STREAM_INIT))
    C_W, C_b = setup.teacher.C_W, setup.teacher.C_b
    Ws = [rt.standard_normal((n[ell], n[ell - 1])) * np.sqrt(C_W[ell - 1] / n[ell - 1]) for ell in range(1, L + 1)]
    bs = [rt.standard_normal(n[ell]) * np.sqrt(C_b[ell - 1]) for ell in range(1, L + 1)] if setup.bias else None
    sd = np.sqrt(setup.input_var)
    x_train = rd.standard_normal((setup.n_train, n[0])) * sd
    x_test = rd.standard_normal((setup.n_test, n[0])) * sd
    l0 = setup.first_trainable
    out = {
        "a_train": _teacher_forward(setup, Ws, bs, x_train, l0 - 1),
        "a_test": _teacher_forward(setup, Ws, bs, x_test, l0 - 1),
        "y_train": _teacher_forward(setup, Ws, bs, x_train, L),
        "y_test": _teacher_forward(setup, Ws, bs, x_test, L),
        "frozen": [], "teacher": [], "noise": [],
    }
    for ell in range(l0, L + 1):
        layer = {"W": Ws[ell - 1], "b": bs[ell - 1] if bs is not None else None}  # bs is None iff not setup.bias
        if ell in setup.trainable:
            out["frozen"].append(None)
            out["teacher"].append(layer)
            out["noise"].append({"W": ri.standard_normal((n[ell - 1], n[ell])),
                                 "b": ri.standard_normal(n[ell]) if setup.bias else None})
        else:
            out["frozen"].append(layer)
            out["teacher"].append(None)
            out["noise"].append(None)
    return out


def sample_problem(setup: TeacherStudent, members: int | Sequence[int] | np.ndarray, seed: int = 0, dtype=jnp.float32) -> Problem:
    """Teachers, data and students' initial noise for ensemble members (an int M means 0..M−1).

    Member s is drawn from NumPy SeedSequence([seed, s, stream]) in float64 and cast to ``dtype``.
    """
    idx = np.arange(v.positive_int(members, "members")) if np.ndim(members) == 0 else np.asarray(members)
    per = [_sample_member(setup, seed, int(s)) for s in idx]
    dt = jnp.dtype(dtype)

    def stack(*xs):
        return jnp.asarray(np.stack(xs), dt)

    fields = {k: stack(*[p[k] for p in per]) for k in ("a_train", "y_train", "a_test", "y_test")}
    tree = {k: jax.tree.map(stack, *[tuple(p[k]) for p in per]) for k in ("frozen", "teacher", "noise")}
    return Problem(fields["a_train"], fields["y_train"], fields["a_test"], fields["y_test"], tree["frozen"],
                   tree["teacher"], tree["noise"], member_keys(seed, idx))


def init_params(noise: tuple, sigma_W, setup: TeacherStudent) -> tuple:
    """Student's trainable parameters for one member at P points: W ~ N(0, σ_W²/n_{ℓ−1}) (2.11).

    ``noise`` is one member's entry of :attr:`Problem.init_noise`; ``sigma_W`` has shape (P,).
    Returns per layer {"W": (n_{ℓ−1}, P, n_ℓ), "b": (P, n_ℓ) or None} (None at frozen layers).
    """
    n = setup.n
    params: list[dict[str, Any] | None] = []
    for j, nz in enumerate(noise):
        if nz is None:
            params.append(None)
            continue
        ell = setup.first_trainable + j
        W = nz["W"][:, None, :] * (sigma_W[None, :, None] / np.sqrt(n[ell - 1]))
        b = None
        if nz["b"] is not None:
            b = jnp.broadcast_to(nz["b"][None, :] * np.sqrt(setup.student_C_b), (sigma_W.shape[0], n[ell]))
        params.append({"W": W.astype(nz["W"].dtype), "b": b})
    return tuple(params)


def student_outputs(setup: TeacherStudent, params: tuple, frozen: tuple, a, perturb=None, *, capture: bool = False,
            perturb_layer: int | None = None):
    """Students' last hidden features and outputs for all P points at once, (2.2)–(2.3), (2.5).

    a: (N, n_{ℓ₀−1}) shared input of the first trainable layer. Returns φ (N, P, n_{L−1}) and
    ŷ (N, P, n_L). ``perturb`` (N, P, n_ℓ) is added to z^{(spectral_layer)}: its gradient is the
    per-sample backpropagated error δ_α used by the Dyson-Brownian-motion analysis (``perturb_layer``
    moves it to another layer). With
    ``capture`` a third output u_α = W a_α (z^{(spectral_layer)} without bias, (N, P, n_ℓ)) is returned.
    """
    act = _act(setup)
    h, shared = a, True
    phi = None
    P = None
    u = None
    for j in range(len(frozen)):
        ell = setup.first_trainable + j
        if params[j] is not None:
            Wt = params[j]["W"]
            n_in, P, n_out = Wt.shape
            if shared:
                z = (h @ Wt.reshape(n_in, P * n_out)).reshape(h.shape[0], P, n_out)
            else:
                z = jnp.einsum("npk,kpi->npi", h, Wt)
            if ell == setup.spectral_layer:
                u = z
            if params[j]["b"] is not None:
                z = z + params[j]["b"]
            shared = False
        else:
            z = h @ frozen[j]["W"].T
            if frozen[j]["b"] is not None:
                z = z + frozen[j]["b"]
        if perturb is not None and ell == (setup.spectral_layer if perturb_layer is None else perturb_layer):
            z = z + perturb
        if ell == setup.L - 1:
            phi = act(z)
        h = act(z) if ell < setup.L else z
    if phi is None:  # the last hidden layer lies below the first trainable one: it is frozen
        phi = a
    if phi.ndim == 2:
        phi = jnp.broadcast_to(phi[:, None, :], (phi.shape[0], P, phi.shape[1]))
    return (phi, h, u) if capture else (phi, h)


forward = student_outputs  # old name (it collided with deepeft.simulate's forward pass)


def mse(out, y):
    """ℒ = (1/|D|) Σ_α ½ Σ_i (y_iα − ŷ_iα)² (2.6) per point: ŷ (N, P, n_L), y (N, n_L) → (P,)."""
    return 0.5 * jnp.mean(jnp.sum((out - y[:, None, :]) ** 2, axis=-1), axis=0)


def losses(setup: TeacherStudent, params, frozen, a, y, perturb=None, perturb_layer: int | None = None):
    """Per-point MSE loss (2.6) of the students on data (a, y); shape (P,)."""
    return mse(student_outputs(setup, params, frozen, a, perturb, perturb_layer=perturb_layer)[1], y)


def to_user_layout(params: tuple) -> tuple:
    """Internal (n_{ℓ−1}, P, n_ℓ) weights → (P, n_ℓ, n_{ℓ−1}) (leading axes kept)."""
    out: list[dict[str, Any] | None] = []
    for p in params:
        if p is None:
            out.append(None)
            continue
        W = jnp.moveaxis(p["W"], (-3, -2, -1), (-1, -3, -2))
        out.append({"W": W, "b": p["b"]})
    return tuple(out)


def from_user_layout(params: tuple) -> tuple:
    """User (P, n_ℓ, n_{ℓ−1}) weights → internal (n_{ℓ−1}, P, n_ℓ) (leading axes kept): inverse of :func:`to_user_layout`."""
    out: list[dict[str, Any] | None] = []
    for p in params:
        if p is None:
            out.append(None)
            continue
        W = jnp.moveaxis(p["W"], (-1, -3, -2), (-3, -2, -1))
        out.append({"W": W, "b": p["b"]})
    return tuple(out)
