"""An imported network: deepeft's MLP spec (2.5) plus the actual weights, and the empirical C_W, C_b.

Every importer (:func:`from_arrays`, :func:`~deepeft.interop.pytorch.from_torch`,
:func:`~deepeft.interop.jax_trees.from_equinox`, :func:`~deepeft.interop.jax_trees.from_flax`) ends
here: a chain of L dense layers z^{(ℓ)} = b^{(ℓ)} + W^{(ℓ)} σ(z^{(ℓ−1)}) with one elementwise σ and a
linear output, W^{(ℓ)} of shape (n_ℓ, n_{ℓ−1}) as in the book and in deepeft's forward pass
(:mod:`deepeft.simulate.forward`).

The spec's C_W, C_b are the empirical per-layer values of the imported weights (book (2.19)–(2.20)
read backwards):

    C_W^{(ℓ)} = n_{ℓ−1} Var(W^{(ℓ)}_{ij}),     C_b^{(ℓ)} = Var(b^{(ℓ)}_i)

(sample variances over the layer's entries, about their mean; the means are kept in ``W_mean`` and
``b_mean`` — a trained layer's mean is not part of the iid-Gaussian initialisation ensemble). A layer
without biases has b = 0 and C_b = 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..activations import Activation
from ..activations import activation as _activation
from ..errors import DeepEFTInputError
from ..network import MLP

__all__ = ["ImportedModel", "from_arrays", "build_model", "LAYOUTS"]

LAYOUTS = ("out_in", "in_out")  # W stored as (n_out, n_in) (PyTorch, Equinox, deepeft) or (n_in, n_out) (Flax kernels)


@dataclasses.dataclass(frozen=True, eq=False)
class ImportedModel:
    """A dense network brought into deepeft.

    net : the :class:`~deepeft.MLP` spec, with per-layer C_W, C_b set to the empirical values above.
    params : ((W^{(1)}, b^{(1)}), …, (W^{(L)}, b^{(L)})) float64 NumPy arrays, W of shape (n_ℓ, n_{ℓ−1}):
        the layout of :func:`deepeft.sample_params`, accepted by ``de.preactivations(net, X, params)``.
    names : one label per layer (the framework's module path or tree key).
    has_bias : per layer, whether the source layer had a bias.
    source : "torch", "equinox", "flax", "arrays".
    """

    net: MLP
    params: tuple[tuple[np.ndarray, np.ndarray], ...]
    names: tuple[str, ...]
    has_bias: tuple[bool, ...]
    source: str

    @property
    def L(self) -> int:
        return self.net.L

    @property
    def C_W(self) -> np.ndarray:
        """Empirical C_W^{(ℓ)} = n_{ℓ−1} Var(W^{(ℓ)}), shape (L,) (2.20)."""
        return np.asarray(self.net.C_W)

    @property
    def C_b(self) -> np.ndarray:
        """Empirical C_b^{(ℓ)} = Var(b^{(ℓ)}), shape (L,) (2.19); 0 for layers without bias."""
        return np.asarray(self.net.C_b)

    @property
    def W_mean(self) -> np.ndarray:
        """Mean entry of each W^{(ℓ)}, shape (L,)."""
        return np.array([W.mean() for W, _ in self.params])

    @property
    def b_mean(self) -> np.ndarray:
        """Mean entry of each b^{(ℓ)}, shape (L,)."""
        return np.array([b.mean() for _, b in self.params])

    @property
    def weights(self) -> tuple[np.ndarray, ...]:
        return tuple(W for W, _ in self.params)

    def forward(self, X, *, dtype="float64") -> np.ndarray:
        """The network output f(x) = z^{(L)} for inputs X (N, n_0), by deepeft's forward pass (2.5)."""
        from ..simulate.forward import preactivations

        return preactivations(self.net, X, self.params, dtype=dtype)[-1]

    def __repr__(self):
        return f"ImportedModel(source={self.source!r}, {self.net!r}, layers={list(self.names)})"


def _as_matrix(W, name: str, layout: str) -> np.ndarray:
    try:
        arr = np.asarray(W, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeepEFTInputError(f"{name}: the weight must be a numeric 2-D array, got {type(W).__name__}.") from None
    if arr.ndim != 2:
        raise DeepEFTInputError(
            f"{name}: a dense layer's weight must be 2-D, got shape {arr.shape}; deepeft imports Linear/Dense layers only."
        )
    if not np.all(np.isfinite(arr)):
        raise DeepEFTInputError(f"{name}: the weight contains NaN or inf ({int((~np.isfinite(arr)).sum())} entries); "
                                "a diverged or corrupted checkpoint cannot be analysed.")
    return arr.T.copy() if layout == "in_out" else arr


def _as_bias(b, n_out: int, name: str) -> np.ndarray:
    if b is None:
        return np.zeros(n_out)
    try:
        arr = np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeepEFTInputError(f"{name}: the bias must be a numeric 1-D array, got {type(b).__name__}.") from None
    if arr.shape != (n_out,):
        raise DeepEFTInputError(f"{name}: the bias must have shape ({n_out},) (one per output unit), got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise DeepEFTInputError(f"{name}: the bias contains NaN or inf.")
    return arr


def _variance(a: np.ndarray) -> float:
    return float(a.var()) if a.size > 1 else 0.0


def build_model(layers, act: Activation, source: str, *, layout: str = "out_in") -> ImportedModel:
    """ImportedModel from ``layers`` = [(name, W, b or None), ...] in forward order (shapes chained)."""
    if layout not in LAYOUTS:
        raise DeepEFTInputError(f"layout must be one of {LAYOUTS} (how W is stored), got {layout!r}.")
    if not layers:
        raise DeepEFTInputError("no dense layers found: deepeft needs at least one Linear/Dense layer.")
    params, names, has_bias = [], [], []
    for l, (name, W, b) in enumerate(layers, start=1):
        Wm = _as_matrix(W, f"layer {l} ({name})", layout)
        if params and Wm.shape[1] != params[-1][0].shape[0]:
            hint = " (Flax kernels are (n_in, n_out): pass layout='in_out')" if layout == "out_in" else ""
            raise DeepEFTInputError(
                f"layer {l} ({name}) takes {Wm.shape[1]} inputs but layer {l - 1} ({names[-1]}) has "
                f"{params[-1][0].shape[0]} outputs; the layers do not form a chain{hint}."
            )
        params.append((Wm, _as_bias(b, Wm.shape[0], f"layer {l} ({name})")))
        names.append(str(name))
        has_bias.append(b is not None)
    n = [params[0][0].shape[1]] + [W.shape[0] for W, _ in params]
    C_W = [n[l - 1] * _variance(W) for l, (W, _) in enumerate(params, start=1)]
    C_b = [_variance(b) for _, b in params]
    net = MLP(input_dim=n[0], widths=n[1:-1], output_dim=n[-1], activation=act, C_b=C_b, C_W=C_W)
    return ImportedModel(net, tuple(params), tuple(names), tuple(has_bias), source)


def from_arrays(
    weights: Sequence,
    biases: Sequence | None = None,
    activation: str | Activation | object = "relu",
    *,
    layout: str = "out_in",
    names: Sequence[str] | None = None,
) -> ImportedModel:
    """Import a dense network from plain arrays (NumPy, JAX, anything array-like).

    weights : [W^{(1)}, …, W^{(L)}], each (n_ℓ, n_{ℓ−1}) (``layout="out_in"``, PyTorch/Equinox/deepeft)
        or (n_{ℓ−1}, n_ℓ) (``layout="in_out"``, Flax ``kernel``s and ``x @ W`` code).
    biases : [b^{(1)}, …] (entries may be None), or None for a network without biases.
    activation : one elementwise σ between layers (name, :class:`~deepeft.Activation` or JAX callable);
        the output layer is linear.
    """
    ws = list(weights) if not isinstance(weights, np.ndarray) or weights.ndim != 2 else [weights]
    bs = [None] * len(ws) if biases is None else list(biases)
    if len(bs) != len(ws):
        raise DeepEFTInputError(f"got {len(ws)} weight matrices but {len(bs)} biases; pass one bias (or None) per layer.")
    labels = [f"layer{l}" for l in range(1, len(ws) + 1)] if names is None else [str(s) for s in names]
    if len(labels) != len(ws):
        raise DeepEFTInputError(f"got {len(ws)} weight matrices but {len(labels)} names.")
    return build_model(list(zip(labels, ws, bs)), _activation(activation), "arrays", layout=layout)
