"""Conversions at the edges: neural-tangents and mean-field conventions → the book's MLP.

* neural-tangents (NT): ``stax.Dense(out, W_std, b_std, parameterization=...)`` between activations.
  Variances C_W = W_std², C_b = b_std² (W_std, b_std are standard deviations; NT divides W_std
  by √fan_in). The NNGP equals K^{(ℓ)} (4.118). NT's NTK in the "ntk" parameterization
  (trainable ω ~ N(0, 1), W = W_std ω/√n) equals Θ^{(ℓ)} (9.5) with λ_b = C_b and λ_W = C_W
  (then dz/dω = √(C_W/n) dz/dW, so the learning-rate tensor (8.6) has λ_W/n = C_W/n).
  The "standard" parameterization trains W itself with a plain learning rate: λ_b = 1,
  λ_W = n_{ℓ−1} (book §8.0: "original gradient descent corresponds to λ_b = 1, λ_W = n_{ℓ−1}"),
  so its NTK grows with width.
* mean-field papers (Poole et al., Schoenholz et al.): σ_w², σ_b² are the variances: C_W = σ_w², C_b = σ_b².
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import _validate as v
from ..errors import DeepEFTInputError
from ..network import MLP

__all__ = ["from_neural_tangents", "from_mean_field", "to_neural_tangents"]


def _per_layer_sq(value, name, L):
    return tuple(x * x for x in v.per_layer(value, name, L, minimum=0.0))


def from_neural_tangents(
    input_dim: int,
    widths: Sequence[int],
    output_dim: int = 1,
    activation="relu",
    *,
    W_std: float | Sequence[float] = 1.0,
    b_std: float | Sequence[float] = 0.0,
    parameterization: str = "ntk",
    **activation_params,
) -> MLP:
    """The MLP equivalent of ``stax.serial(Dense(W_std, b_std), act, …, Dense(W_std, b_std))``.

    Its :func:`~deepeft.theory.kernel.kernel` equals NT's ``nngp`` and its
    :func:`~deepeft.theory.kernel.frozen_ntk` equals NT's ``ntk`` (in NT's parameterization).
    """
    L = len(v.sequence_of(widths, "widths")) + 1
    C_W = _per_layer_sq(W_std, "W_std", L)
    C_b = _per_layer_sq(b_std, "b_std", L)
    if parameterization == "ntk":
        lam_b, lam_W = C_b, C_W
    elif parameterization == "standard":
        n = (int(input_dim), *[int(w) for w in widths])
        lam_b, lam_W = 1.0, tuple(float(n[l]) for l in range(L))
    else:
        raise DeepEFTInputError(
            f"parameterization must be 'ntk' or 'standard' (neural-tangents' names), got {parameterization!r}."
        )
    return MLP(input_dim, widths, output_dim, activation, C_b=C_b, C_W=C_W, lambda_b=lam_b, lambda_W=lam_W,
               **activation_params)


def to_neural_tangents(net: MLP) -> dict:
    """W_std, b_std per layer (standard deviations) for building the same network in NT (NTK parameterization).

    Raises if the learning rates are not NT's (λ_b = C_b, λ_W = C_W), since NT's NTK would then differ.
    """
    if net.lambda_b != net.C_b or net.lambda_W != net.C_W:
        raise DeepEFTInputError(
            "neural-tangents' NTK parameterization has lambda_b = C_b and lambda_W = C_W; this MLP has "
            f"lambda_b={net.lambda_b}, lambda_W={net.lambda_W}. Use net.replace(lambda_b=net.C_b, lambda_W=net.C_W)."
        )
    return {"W_std": [c**0.5 for c in net.C_W], "b_std": [c**0.5 for c in net.C_b], "parameterization": "ntk"}


def from_mean_field(
    input_dim: int,
    widths: Sequence[int],
    output_dim: int = 1,
    activation="tanh",
    *,
    sigma_w2: float | Sequence[float] = 1.0,
    sigma_b2: float | Sequence[float] = 0.0,
    lambda_b: float | Sequence[float] = 1.0,
    lambda_W: float | Sequence[float] = 1.0,
    **activation_params,
) -> MLP:
    """MLP from the mean-field (q-map / c-map) variances σ_w², σ_b²: C_W = σ_w², C_b = σ_b²."""
    return MLP(input_dim, widths, output_dim, activation, C_b=sigma_b2, C_W=sigma_w2, lambda_b=lambda_b,
               lambda_W=lambda_W, **activation_params)
