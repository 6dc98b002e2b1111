"""The residual-MLP specification (book App. B, (B.3)–(B.6)), shared by theory and simulation.

    z^{(1)}   = ξ^{(1)} [b^{(1)} + W^{(1)} x]
    z^{(ℓ+1)} = ξ^{(ℓ+1)} [b^{(ℓ+1)} + W^{(ℓ+1)} σ(z^{(ℓ)})] + γ^{(ℓ+1)} z^{(ℓ)}                  (B.3)

with b ~ N(0, C_b^{(ℓ)}), W ~ N(0, C_W^{(ℓ)}/n_{ℓ−1}) as for :class:`~deepeft.MLP`. The skip term γz needs
n_{ℓ+1} = n_ℓ (B.4): residual connections join hidden layers of equal width. Per-layer tuples have length L
with layer ℓ at index ℓ − 1; γ^{(1)} = 0 always (the input x is not a preactivation). A scalar ``gamma``
sets γ^{(ℓ)} for the hidden layers ℓ = 2..L−1 (the book's residual MLP); the output layer gets a skip only
from a per-layer sequence, and only when n_L = n_{L−1}. γ = 0 everywhere is the plain MLP; ξ is
redundant with (C_b, C_W, λ_b, λ_W) → ξ²(C_b, C_W, λ_b, λ_W) (B.6) (see :meth:`ResidualMLP.effective_arrays`).

References: Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory*, App. B (arXiv:2106.10165).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from . import _validate as v
from .activations import Activation
from .errors import DeepEFTInputError
from .network import MLP
from .network_spec import LayeredSpec, validate_layers

__all__ = ["ResidualMLP", "check_residual"]


def _gammas(gamma, L: int, n: tuple[int, ...]) -> tuple[float, ...]:
    """γ per layer (length L, γ^{(1)} = 0), validated against the widths (B.4)."""
    if np.ndim(gamma) == 0:
        g = v.finite_scalar(gamma, "gamma", minimum=0.0)
        out = tuple(0.0 if l in (1, L) else g for l in range(1, L + 1))
    else:
        out = v.per_layer(gamma, "gamma", L, minimum=0.0)
        if out[0] != 0.0:
            raise DeepEFTInputError(
                f"gamma[0] (layer 1) must be 0, got {out[0]}: layer 1 reads the input x, which is not a "
                "preactivation, so it has no skip connection (B.3). Start the per-layer gamma with 0."
            )
    for l in range(2, L + 1):
        if out[l - 1] != 0.0 and n[l] != n[l - 1]:
            what = "the output layer" if l == L else f"layer {l}"
            raise DeepEFTInputError(
                f"gamma^({l}) = {out[l - 1]} needs n_{l} = n_{l - 1} for the skip term γz (B.4), but {what} has "
                f"width {n[l]} and layer {l - 1} has width {n[l - 1]}: residual connections need equal hidden "
                "widths (e.g. widths=[n] * depth), or set gamma to 0 at that layer."
            )
    return out


@dataclasses.dataclass(frozen=True, init=False)
class ResidualMLP(LayeredSpec):
    """A residual MLP (B.3): widths, activation, initialization/learning-rate hyperparameters and the
    residual hyperparameters γ (skip weight) and ξ (block weight).

    Parameters
    ----------
    input_dim, widths, output_dim, activation, C_b, C_W, lambda_b, lambda_W : as :class:`~deepeft.MLP`.
    gamma : γ ≥ 0; a scalar (hidden layers ℓ = 2..L−1) or a length-L sequence with gamma[0] = 0.
        Criticality needs γ² < 1 (B.20)–(B.21); γ = 1 is allowed as an architecture but has no critical C_W.
    xi : ξ > 0; a scalar or a length-L sequence (B.3).
    """

    input_dim: int
    widths: tuple[int, ...]
    output_dim: int
    activation: Activation
    C_b: tuple[float, ...]
    C_W: tuple[float, ...]
    gamma: tuple[float, ...]
    xi: tuple[float, ...]
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
        gamma: float | Sequence[float] = 0.0,
        xi: float | Sequence[float] = 1.0,
        lambda_b: float | Sequence[float] = 1.0,
        lambda_W: float | Sequence[float] = 1.0,
        **activation_params,
    ):
        self._set_fields(
            validate_layers(input_dim, widths, output_dim, activation, C_b, C_W, lambda_b, lambda_W, **activation_params)
        )
        L = self.L
        object.__setattr__(self, "gamma", _gammas(gamma, L, self.n))
        if np.ndim(xi) == 0:
            xs = (v.finite_scalar(xi, "xi", minimum=0.0, strict=True),) * L
        else:
            xs = v.per_layer(xi, "xi", L, minimum=None)
            bad = [i for i, x in enumerate(xs) if x <= 0]
            if bad:
                raise DeepEFTInputError(f"xi[{bad[0]}] (layer {bad[0] + 1}) must be > 0 (it scales the block), got {xs[bad[0]]}.")
        object.__setattr__(self, "xi", xs)

    # -- derived quantities ---------------------------------------------------------------
    @property
    def num_parameters(self) -> int:
        """P = Σ_ℓ (n_ℓ + n_ℓ n_{ℓ−1}) (2.7); γ and ξ are hyperparameters, not parameters."""
        return self.mlp.num_parameters

    @property
    def aspect_ratio(self) -> float:
        """r = L/n (0.19), as for :class:`~deepeft.MLP`."""
        return self.mlp.aspect_ratio

    @property
    def mlp(self) -> MLP:
        """The same architecture without residual hyperparameters (γ = 0, ξ = 1)."""
        return MLP(self.input_dim, self.widths, self.output_dim, self.activation, self.C_b, self.C_W,
                   self.lambda_b, self.lambda_W)  # fmt: skip

    def arrays(self) -> dict[str, np.ndarray]:
        """C_b, C_W, lambda_b, lambda_W, gamma, xi as float64 arrays of shape (L,)."""
        keys = ("C_b", "C_W", "lambda_b", "lambda_W", "gamma", "xi")
        return {k: np.asarray(getattr(self, k), dtype=np.float64) for k in keys}

    def effective_arrays(self) -> dict[str, np.ndarray]:
        """ξ²(C_b, C_W, λ_b, λ_W) and γ per layer: the block weight ξ absorbed into the hyperparameters (B.6)."""
        p = self.arrays()
        x2 = p.pop("xi") ** 2
        return {k: (a if k == "gamma" else x2 * a) for k, a in p.items()}

    def replace(self, **changes) -> ResidualMLP:
        """A copy with some fields changed (validated again)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - set(fields))
        if unknown:
            raise DeepEFTInputError(f"ResidualMLP has no field(s) {unknown}; fields are {sorted(fields)}.")
        fields.update(changes)
        return ResidualMLP(**fields)

    def __repr__(self):
        short = self._short
        return (
            f"ResidualMLP(n={list(self.n)}, activation={self.activation!r}, C_b={short(self.C_b)}, "
            f"C_W={short(self.C_W)}, gamma={short(self.gamma)}, xi={short(self.xi)}, "
            f"lambda_b={short(self.lambda_b)}, lambda_W={short(self.lambda_W)})"
        )


def check_residual(net) -> ResidualMLP:
    """``net`` itself if it is a :class:`ResidualMLP`, else a DeepEFTInputError."""
    if not isinstance(net, ResidualMLP):
        raise DeepEFTInputError(f"net must be a deepeft.ResidualMLP, got {type(net).__name__}.")
    return net
