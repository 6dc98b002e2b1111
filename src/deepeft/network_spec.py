"""What every network spec shares (:class:`~deepeft.MLP`, :class:`~deepeft.ResidualMLP`, :class:`~deepeft.GCN`):
the validation of widths, activation and per-layer hyperparameters C_b, C_W (2.19)–(2.20), λ_b, λ_W (8.6), and the
shape that follows from them (L, n_0..n_L, inputs of shape (N, n_0)). One place, so the three specs give the same
error messages for the same mistakes.

Per-layer hyperparameters are tuples of length L with layer ℓ at index ℓ − 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _validate as v
from .activations import activation as _activation
from .errors import DeepEFTInputError

__all__ = ["LAYER_FIELDS", "LayeredSpec", "validate_layers"]

# The fields validate_layers returns, in the order of MLP's dataclass fields.
LAYER_FIELDS = ("input_dim", "widths", "output_dim", "activation", "C_b", "C_W", "lambda_b", "lambda_W")


def validate_layers(
    input_dim,
    widths: Sequence[int],
    output_dim,
    activation,
    C_b: float | Sequence[float] = 0.0,
    C_W: float | Sequence[float] = 1.0,
    lambda_b: float | Sequence[float] = 1.0,
    lambda_W: float | Sequence[float] = 1.0,
    **activation_params,
) -> dict[str, Any]:
    """The validated :data:`LAYER_FIELDS`: n_0, hidden widths n_1..n_{L−1} (a list; may be empty), n_L, the
    :class:`~deepeft.Activation`, and C_b, C_W, λ_b, λ_W as length-L tuples (a scalar applies to every layer)."""
    n0 = v.positive_int(input_dim, "input_dim")
    if isinstance(widths, (int, np.integer)):
        raise DeepEFTInputError(
            f"widths must be a list of hidden-layer widths, e.g. widths=[{widths}] * depth; got the integer {widths}."
        )
    ws = tuple(v.positive_int(w, f"widths[{i}]") for i, w in enumerate(v.sequence_of(widths, "widths")))
    nL = v.positive_int(output_dim, "output_dim")
    act = _activation(activation, **activation_params)
    L = len(ws) + 1
    return {
        "input_dim": n0,
        "widths": ws,
        "output_dim": nL,
        "activation": act,
        "C_b": v.per_layer(C_b, "C_b", L),
        "C_W": v.per_layer(C_W, "C_W", L),
        "lambda_b": v.per_layer(lambda_b, "lambda_b", L),
        "lambda_W": v.per_layer(lambda_W, "lambda_W", L),
    }


class LayeredSpec:
    """Mixin of the frozen network-spec dataclasses: set validated fields, L, n, input validation, short repr."""

    __slots__ = ()
    input_dim: int
    widths: tuple[int, ...]
    output_dim: int

    def _set_fields(self, fields: dict[str, Any]) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)  # frozen dataclass: fields are set once, here

    @property
    def L(self) -> int:
        """Number of layers with parameters: hidden layers plus the output layer (book Fig. 1)."""
        return len(self.widths) + 1

    @property
    def n(self) -> tuple[int, ...]:
        """All widths (n_0, n_1, ..., n_L)."""
        return (self.input_dim, *self.widths, self.output_dim)

    def check_inputs(self, X, name: str = "X") -> np.ndarray:
        """Validate X of shape (N, input_dim) (finite, float64)."""
        return v.inputs(X, self.input_dim, name)

    @staticmethod
    def _short(values) -> str:
        """One value when all layers agree, else the per-layer list (for ``__repr__``)."""
        return f"{values[0]:g}" if len(set(values)) == 1 else str(list(values))
