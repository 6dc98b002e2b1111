"""Per-sample losses ℓ(z, y) shared by the trainer (simulate/training.py) and the infinite-width function-space
dynamics (theory/function_space_gd.py): one definition each, with the error factor ε = ∂ℓ/∂z (10.4).

References:
  Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (2022), arXiv:2106.10165, (10.5)–(10.6), (6.11)
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from jax import nn

from .errors import DeepEFTInputError, suggest

__all__ = ["LOSSES", "cross_entropy_loss", "mse_loss", "resolve_loss"]


def mse_loss(z, y):
    """ℓ = ½ Σ_i (z_i − y_i)² (10.5): ε = z − y."""
    return 0.5 * jnp.sum((z - y) ** 2)


def cross_entropy_loss(z, y):
    """ℓ = −Σ_i y_i log softmax(z)_i (6.11), y a probability vector (e.g. one-hot): ε = softmax(z) − y (10.6)."""
    return -jnp.sum(y * nn.log_softmax(z))


LOSSES: dict[str, Callable] = {"mse": mse_loss, "cross_entropy": cross_entropy_loss}


def resolve_loss(loss) -> tuple[str, Callable]:
    """(name, ℓ) for a loss name in :data:`LOSSES` or a JAX-traceable function ℓ(z, y) → scalar per sample."""
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise DeepEFTInputError(
                f"unknown loss {loss!r}.{suggest(loss, LOSSES)} Use one of {tuple(LOSSES)} "
                "or pass a function ℓ(z, y) → scalar."
            )
        return loss, LOSSES[loss]
    if callable(loss):
        return getattr(loss, "__name__", "custom"), loss
    raise DeepEFTInputError(f"loss must be 'mse', 'cross_entropy' or a function ℓ(z, y) → scalar per sample, got {loss!r}.")
