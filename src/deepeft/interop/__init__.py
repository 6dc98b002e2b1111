"""Bring your own model: import PyTorch / Equinox / Flax / plain-array MLPs into deepeft.

Every importer returns an :class:`ImportedModel`: deepeft's :class:`~deepeft.MLP` spec with the
empirical per-layer C_W = n_{ℓ−1} Var(W), C_b = Var(b) (book (2.19)–(2.20)) and the weights in the
layout of deepeft's forward pass (W^{(ℓ)} of shape (n_ℓ, n_{ℓ−1})).

* :func:`from_torch` — ``nn.Sequential`` / fx-traceable chain / state dict (extra ``deepeft[torch]``).
* :func:`from_equinox`, :func:`from_flax` — Equinox MLPs; Flax (or any nested-dict) parameter trees.
* :func:`from_arrays` — lists of weight matrices and biases plus one activation.
"""

from typing import TYPE_CHECKING

from .._lazy import attach

if TYPE_CHECKING:  # imported on first use (PEP 562, deepeft._lazy)
    from .jax_trees import from_equinox, from_flax, match_activation
    from .model import ImportedModel, from_arrays
    from .pytorch import SUPPORTED_TORCH_ACTIVATIONS, from_torch

__getattr__, __dir__ = attach(globals())

__all__ = [
    "ImportedModel",
    "SUPPORTED_TORCH_ACTIVATIONS",
    "from_arrays",
    "from_equinox",
    "from_flax",
    "from_torch",
    "match_activation",
]
