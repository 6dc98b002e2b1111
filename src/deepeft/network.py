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

from .activations import Activation
from .errors import DeepEFTInputError
from .network_spec import LAYER_FIELDS, LayeredSpec, validate_layers

__all__ = ["MLP", "check_net"]


@dataclasses.dataclass(frozen=True, init=False)
class MLP(LayeredSpec):
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
        self._set_fields(
            validate_layers(input_dim, widths, output_dim, activation, C_b, C_W, lambda_b, lambda_W, **activation_params)
        )

    # -- derived quantities ---------------------------------------------------------------
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

    def replace(self, **changes) -> MLP:
        """A copy with some fields changed (validated again)."""
        fields = {f: getattr(self, f) for f in LAYER_FIELDS}
        unknown = sorted(set(changes) - set(fields))
        if unknown:
            raise DeepEFTInputError(f"MLP has no field(s) {unknown}; fields are {sorted(fields)}.")
        fields.update(changes)
        return MLP(**fields)  # type: ignore[arg-type]  # validated by MLP itself

    def __repr__(self):
        short = self._short
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
