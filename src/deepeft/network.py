"""The MLP specification shared by theory and simulation (book (2.5), (2.19)–(2.22), (8.6)).

z^{(1)} = b^{(1)} + W^{(1)} x,   z^{(ℓ+1)} = b^{(ℓ+1)} + W^{(ℓ+1)} σ(z^{(ℓ)}),   ℓ = 1..L−1,
with b ~ N(0, C_b^{(ℓ)}), W ~ N(0, C_W^{(ℓ)}/n_{ℓ−1}); the output f = z^{(L)} has no activation.
Learning-rate tensor (8.6): λ_b^{(ℓ)} for biases, λ_W^{(ℓ)}/n_{ℓ−1} for weights.

Per-layer hyperparameters are stored as tuples of length L with layer ℓ at index ℓ − 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from . import _validate as v
from .activations import Activation
from .activations import activation as _activation
from .errors import DeepEFTInputError

__all__ = ["MLP", "check_net"]


@dataclasses.dataclass(frozen=True, init=False)
class MLP:
    """A fully connected network: widths, activation and initialization/learning-rate hyperparameters.

    Parameters
    ----------
    input_dim : n_0.
    widths : hidden widths n_1..n_{L−1} (may be empty: then L = 1, a linear model).
    output_dim : n_L.
    activation : a name (``"relu"``), an :class:`Activation`, or a JAX-traceable callable.
    C_b, C_W : bias and weight variances (2.19)–(2.20); scalars or length-L sequences.
    lambda_b, lambda_W : learning-rate scalings (8.6); scalars or length-L sequences.
    """

    input_dim: int
    widths: tuple[int, ...]
    output_dim: int
    activation: Activation
    C_b: tuple[float, ...]
    C_W: tuple[float, ...]
    lambda_b: tuple[float, ...]
    lambda_W: tuple[float, ...]

    def __init__(
        self,
        input_dim: int,
        widths: Sequence[int],
        output_dim: int = 1,
        activation: str | Activation | object = "relu",
        C_b: float | Sequence[float] = 0.0,
        C_W: float | Sequence[float] = 1.0,
        lambda_b: float | Sequence[float] = 1.0,
        lambda_W: float | Sequence[float] = 1.0,
        **activation_params,
    ):
        n0 = v.positive_int(input_dim, "input_dim")
        if isinstance(widths, (int, np.integer)):
            raise DeepEFTInputError(
                f"widths must be a list of hidden-layer widths, e.g. widths=[{widths}] * depth; got the integer {widths}."
            )
        ws = tuple(v.positive_int(w, f"widths[{i}]") for i, w in enumerate(v.sequence_of(widths, "widths")))
        nL = v.positive_int(output_dim, "output_dim")
        act = _activation(activation, **activation_params)
        L = len(ws) + 1
        object.__setattr__(self, "input_dim", n0)
        object.__setattr__(self, "widths", ws)
        object.__setattr__(self, "output_dim", nL)
        object.__setattr__(self, "activation", act)
        object.__setattr__(self, "C_b", v.per_layer(C_b, "C_b", L))
        object.__setattr__(self, "C_W", v.per_layer(C_W, "C_W", L))
        object.__setattr__(self, "lambda_b", v.per_layer(lambda_b, "lambda_b", L))
        object.__setattr__(self, "lambda_W", v.per_layer(lambda_W, "lambda_W", L))

    # -- derived quantities ---------------------------------------------------------------
    @property
    def L(self) -> int:
        """Number of layers with parameters: hidden layers plus the output layer (book Fig. 1)."""
        return len(self.widths) + 1

    @property
    def n(self) -> tuple[int, ...]:
        """All widths (n_0, n_1, ..., n_L)."""
        return (self.input_dim, *self.widths, self.output_dim)

    @property
    def num_parameters(self) -> int:
        """P = Σ_ℓ (n_ℓ + n_ℓ n_{ℓ−1}) (2.7)."""
        n = self.n
        return sum(n[l] + n[l] * n[l - 1] for l in range(1, self.L + 1))

    @property
    def aspect_ratio(self) -> float:
        """r = L/n (0.19), with n the harmonic mean of the hidden widths (∞ hidden width → 0)."""
        if not self.widths:
            return 0.0
        return self.L * float(np.mean([1.0 / w for w in self.widths]))

    def arrays(self) -> dict[str, np.ndarray]:
        """C_b, C_W, lambda_b, lambda_W as float64 arrays of shape (L,)."""
        return {k: np.asarray(getattr(self, k), dtype=np.float64) for k in ("C_b", "C_W", "lambda_b", "lambda_W")}

    def check_inputs(self, X, name: str = "X") -> np.ndarray:
        """Validate X of shape (N, input_dim) (finite, float64)."""
        return v.inputs(X, self.input_dim, name)

    def replace(self, **changes) -> MLP:
        """A copy with some fields changed (validated again)."""
        fields = {
            "input_dim": self.input_dim,
            "widths": self.widths,
            "output_dim": self.output_dim,
            "activation": self.activation,
            "C_b": self.C_b,
            "C_W": self.C_W,
            "lambda_b": self.lambda_b,
            "lambda_W": self.lambda_W,
        }
        unknown = sorted(set(changes) - set(fields))
        if unknown:
            raise DeepEFTInputError(f"MLP has no field(s) {unknown}; fields are {sorted(fields)}.")
        fields.update(changes)
        return MLP(**fields)  # type: ignore[arg-type]  # validated by MLP itself

    def __repr__(self):
        def short(t):
            return f"{t[0]:g}" if len(set(t)) == 1 else str(list(t))

        return (
            f"MLP(n={list(self.n)}, activation={self.activation!r}, C_b={short(self.C_b)}, C_W={short(self.C_W)}, "
            f"lambda_b={short(self.lambda_b)}, lambda_W={short(self.lambda_W)})"
        )


def check_net(net) -> MLP:
    """``net`` itself if it is an :class:`MLP`, else a DeepEFTInputError saying how to build one (the one
    validator of a network argument, shared by theory and simulate)."""
    if not isinstance(net, MLP):
        raise DeepEFTInputError(f"net must be a deepeft.MLP, got {type(net).__name__}; build one with de.MLP(...).")
    return net
