"""deepeft — a laboratory for the statistical physics of deep neural networks.

Theory (effective field theory of MLPs: kernels, four-point vertex, NTK, criticality, …) and
matching experiments (ensembles of random and trained networks), validated against each other.

    import deepeft as de
    net = de.MLP(input_dim=5, widths=[512] * 6, activation="relu", C_W=2.0)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .activations import Activation, activation, available_activations
from .errors import DeepEFTInputError
from .network import MLP

try:
    __version__ = version("deepeft")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "Activation",
    "DeepEFTInputError",
    "MLP",
    "activation",
    "available_activations",
    "__version__",
]
