"""Graph-convolution networks (GCN) as a network specification, and the normalised adjacency Â.

Layer by layer, with the node-feature matrix X (N_nodes × n_0) and preactivations z^{(ℓ)} (N_nodes × n_ℓ),
node α at row α (the graph's nodes play the role of the book's inputs α):

    z^{(1)}   = Â X W^{(1)} + b^{(1)},
    z^{(ℓ+1)} = Â σ(z^{(ℓ)}) W^{(ℓ+1)} + b^{(ℓ+1)} + γ z^{(ℓ)}     (γ on hidden layers ℓ + 1 = 2..L−1),

with W^{(ℓ)}_{ji} ~ N(0, C_W^{(ℓ)}/n_{ℓ−1}), b^{(ℓ)}_i ~ N(0, C_b^{(ℓ)}) (2.19)–(2.20). The message-passing
variant (``C_U`` given) has a self weight W and a neighbour weight U ~ N(0, C_U/n_{ℓ−1}):

    z^{(1)} = X W^{(1)} + Â X U^{(1)} + b^{(1)},   z^{(ℓ+1)} = σ W^{(ℓ+1)} + Â σ U^{(ℓ+1)} + b^{(ℓ+1)} + γ z^{(ℓ)}.

Both are "z⁺ = b + Σ_k M_k σ W_k" with (M_k, C_k) = (Â, C_W) or (I, C_W), (Â, C_U): :meth:`GCN.mixing` gives
the coefficients (C_self, C_nbr) of the linear map S ↦ C_self S + C_nbr Â S Âᵀ every recursion uses. The output z^{(L)}
(the readout layer) has no skip connection. Â is used as given (the propagation matrix);
:func:`normalize_adjacency` builds the usual ones. Theory: :mod:`deepeft.theory.gnn`, docs/gnn.md.

References:
  Kipf & Welling, Semi-supervised classification with graph convolutional networks (arXiv:1609.02907).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from . import _validate as v
from .activations import Activation
from .errors import DeepEFTInputError, DeepEFTWarning, suggest
from .network import MLP

__all__ = ["GCN", "check_adjacency", "normalize_adjacency"]

_KINDS = ("sym", "rw")
SPARSE_DENSITY = 0.25  # Â with at most this fraction of nonzeros is kept as CSR for the products


def _as_matrix(A, name: str):
    """A float64 CSR (scipy-sparse input) or ndarray (anything else), checked square and finite."""
    if sp.issparse(A):
        M = sp.csr_matrix(A, dtype=np.float64)
        vals = M.data
    else:
        try:
            M = np.asarray(A, dtype=np.float64)
        except (TypeError, ValueError):
            raise DeepEFTInputError(f"{name} must be a numeric (N, N) array or scipy.sparse matrix.") from None
        vals = M
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise DeepEFTInputError(
            f"{name} must be a square (N_nodes, N_nodes) matrix, got shape {M.shape}; pass the adjacency "
            "matrix of the graph (e.g. networkx.to_scipy_sparse_array(G)), not an edge list."
        )
    if M.shape[0] < 1:
        raise DeepEFTInputError(f"{name} has no nodes (shape {M.shape}).")
    if not np.all(np.isfinite(vals)):
        raise DeepEFTInputError(f"{name} contains NaN or inf; an adjacency must have finite edge weights.")
    return M


def _components(M) -> np.ndarray:
    """Connected-component label of every node (edges in either direction connect)."""
    return connected_components(sp.csr_matrix(M) != 0, directed=True, connection="weak")[1]


def _disconnected_message(labels: np.ndarray) -> str:
    sizes = np.bincount(labels)
    return (
        f"the graph has {sizes.size} connected components (sizes {sorted(sizes.tolist(), reverse=True)[:8]}"
        f"{' …' if sizes.size > 8 else ''}): Â mixes nodes only within a component, so deep layers collapse each "
        "component onto its own mode instead of one — the node kernel tends to rank ≤ (number of components), "
        "correlations between components are not driven to 1, and oversmoothing measures (de.theory.gnn."
        "collapse) do not go to 0. Use one component (e.g. the largest) to study collapse."
    )


def normalize_adjacency(A, kind: str = "sym", self_loops: bool = True):
    """The propagation matrix Â of a graph with adjacency A (dense or scipy-sparse, weights ≥ 0).

    ``kind="sym"``: Â = D^{-1/2} Ã D^{-1/2} (Kipf–Welling); ``kind="rw"``: Â = D^{-1} Ã (random walk,
    rows sum to 1), with Ã = A + I if ``self_loops`` else A, and D = diag(Σ_β Ã_αβ). Isolated nodes
    (zero degree, only without self-loops) get a zero row. Returns the same kind of matrix as A
    (scipy CSR for sparse input, ndarray otherwise). A disconnected graph warns (what that does to
    oversmoothing); ``kind="sym"`` needs a symmetric A.
    """
    if kind not in _KINDS:
        raise DeepEFTInputError(f"kind must be one of {_KINDS}, got {kind!r}.{suggest(str(kind), _KINDS)}")
    M = _as_matrix(A, "A")
    sparse = sp.issparse(M)
    vals = M.data if sparse else M
    if np.any(vals < 0):
        raise DeepEFTInputError("A has negative entries; an adjacency needs edge weights >= 0.")
    N = M.shape[0]
    if kind == "sym" and abs(M - M.T).max() > 1e-12 * max(1.0, float(np.max(np.abs(vals), initial=0.0))):
        raise DeepEFTInputError(
            "A is not symmetric (a directed graph): kind='sym' needs an undirected graph; use kind='rw' "
            "(row-normalised) or symmetrise A first (A + A.T)."
        )
    At = M + (sp.identity(N, format="csr") if sparse else np.eye(N)) if self_loops else M
    deg = np.asarray(At.sum(axis=1)).ravel()
    labels = _components(At)
    if labels.max() > 0:
        warnings.warn(f"normalize_adjacency: {_disconnected_message(labels)}", DeepEFTWarning, stacklevel=2)
    with np.errstate(divide="ignore"):
        inv = np.where(deg > 0, 1.0 / deg, 0.0)
    if kind == "sym":
        s = np.sqrt(inv)
        out = sp.diags(s) @ At @ sp.diags(s) if sparse else s[:, None] * At * s[None, :]
    else:
        out = sp.diags(inv) @ At if sparse else inv[:, None] * At
    return sp.csr_matrix(out) if sparse else np.asarray(out)


def check_adjacency(A_hat, name: str = "A_hat") -> tuple[np.ndarray, sp.csr_matrix | None]:
    """(dense Â, CSR Â or None): Â validated (square, finite); the CSR copy is kept when Â is sparse enough
    (≤ ``SPARSE_DENSITY`` nonzeros) to make sparse·dense products pay off."""
    M = _as_matrix(A_hat, name)
    dense = M.toarray() if sp.issparse(M) else M.copy()
    nnz = np.count_nonzero(dense)
    csr = sp.csr_matrix(dense) if nnz <= SPARSE_DENSITY * dense.size else None
    dense.setflags(write=False)
    return dense, csr


@dataclasses.dataclass(frozen=True, eq=False, init=False)
class GCN:
    """A graph-convolution network on a fixed graph: Â, widths, activation and hyperparameters.

    Parameters
    ----------
    A_hat : (N_nodes, N_nodes) propagation matrix (dense or scipy-sparse), used as given; build it with
        :func:`normalize_adjacency`.
    input_dim : n_0, node-feature dimension.
    widths : hidden widths n_1..n_{L−1}.
    output_dim : n_L.
    activation : a name, an :class:`~deepeft.activations.Activation`, or a JAX-traceable callable.
    C_b, C_W : bias and weight variances (2.19)–(2.20); scalars or length-L sequences.
    gamma : residual strength γ of the hidden-to-hidden layers (z⁺ = Âσ(z)W + b + γz); needs equal hidden widths.
    lambda_b, lambda_W : learning-rate scalings (8.6) (for the NTK).
    C_U, lambda_U : None (default): the GCN z⁺ = Âσ(z)W + b. A number (or length-L sequence): the
        message-passing variant z⁺ = σ(z)W + Âσ(z)U + b with U ~ N(0, C_U/n_{ℓ−1}) (then C_W is the variance of
        the self weight W); lambda_U (default lambda_W) scales U's learning rate.

    Equality is identity (Â is an array); ``.mlp`` is the MLP with the same widths and hyperparameters
    (the GCN with Â = I and γ = 0; for the message-passing variant, the network with C_U = 0).
    """

    A_hat: np.ndarray
    A_sparse: sp.csr_matrix | None
    input_dim: int
    widths: tuple[int, ...]
    output_dim: int
    activation: Activation
    C_b: tuple[float, ...]
    C_W: tuple[float, ...]
    gamma: float
    lambda_b: tuple[float, ...]
    lambda_W: tuple[float, ...]
    C_U: tuple[float, ...] | None
    lambda_U: tuple[float, ...] | None

    def __init__(
        self,
        A_hat,
        input_dim: int,
        widths: Sequence[int],
        output_dim: int = 1,
        activation: str | Activation | object = "relu",
        C_b: float | Sequence[float] = 0.0,
        C_W: float | Sequence[float] = 1.0,
        gamma: float = 0.0,
        lambda_b: float | Sequence[float] = 1.0,
        lambda_W: float | Sequence[float] = 1.0,
        C_U: float | Sequence[float] | None = None,
        lambda_U: float | Sequence[float] | None = None,
        **activation_params,
    ):
        mlp = MLP(input_dim, widths, output_dim, activation, C_b, C_W, lambda_b, lambda_W, **activation_params)
        dense, csr = check_adjacency(A_hat)
        g = v.finite_scalar(gamma, "gamma", minimum=None)
        if g != 0.0 and len(set(mlp.widths)) > 1:
            raise DeepEFTInputError(
                f"gamma = {g} adds γ z^(ℓ) to z^(ℓ+1) between hidden layers, which needs equal hidden widths; "
                f"got widths {list(mlp.widths)}. Use one width, e.g. widths=[{max(mlp.widths)}] * {len(mlp.widths)}."
            )
        L = len(mlp.widths) + 1
        if C_U is None and lambda_U is not None:
            raise DeepEFTInputError(
                "lambda_U is the learning-rate scaling of the neighbour weight U of the message-passing variant; pass "
                "C_U too (e.g. C_U=1.0), or drop lambda_U for a plain GCN."
            )
        cu = None if C_U is None else v.per_layer(C_U, "C_U", L)
        lu = None if C_U is None else (mlp.lambda_W if lambda_U is None else v.per_layer(lambda_U, "lambda_U", L))
        labels = _components(dense)
        if labels.max() > 0 and np.count_nonzero(dense - np.diag(np.diagonal(dense))):  # a diagonal Â: no graph, no warning
            warnings.warn(f"GCN: {_disconnected_message(labels)}", DeepEFTWarning, stacklevel=2)
        for name, value in (
            ("A_hat", dense),
            ("A_sparse", csr),
            ("gamma", g),
            ("C_U", cu),
            ("lambda_U", lu),
            *((f, getattr(mlp, f)) for f in ("input_dim", "widths", "output_dim", "activation")),
            *((f, getattr(mlp, f)) for f in ("C_b", "C_W", "lambda_b", "lambda_W")),
        ):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_mlp", mlp)

    @property
    def mlp(self) -> MLP:
        """The MLP with the same widths, activation and hyperparameters (what the GCN is at Â = I, γ = 0)."""
        return self._mlp  # type: ignore[attr-defined]

    @property
    def N_nodes(self) -> int:
        return self.A_hat.shape[0]

    @property
    def L(self) -> int:
        return len(self.widths) + 1

    @property
    def n(self) -> tuple[int, ...]:
        """All widths (n_0, n_1, ..., n_L)."""
        return (self.input_dim, *self.widths, self.output_dim)

    def gammas(self) -> np.ndarray:
        """γ^{(ℓ)} for ℓ = 1..L (index ℓ − 1): γ on hidden-to-hidden layers 2..L−1, 0 on layer 1 and the readout."""
        g = np.zeros(self.L)
        g[1 : self.L - 1] = self.gamma
        return g

    @property
    def message_passing(self) -> bool:
        """True for the variant z⁺ = σW + ÂσU + b (``C_U`` given)."""
        return self.C_U is not None

    def mixing(self) -> dict[str, np.ndarray]:
        """Coefficients of the layer map S ↦ c_self S + c_nbr Â S Âᵀ, float64 arrays (L,):

        ``C_self``, ``C_nbr`` (weights: the covariance C_b + c_self σσᵀ/n + c_nbr Âσσᵀ Âᵀ/n of z⁺ given layer ℓ) and
        ``lambda_self``, ``lambda_nbr`` (the NTK's learning-rate terms). GCN: (0, C_W), (0, λ_W); message passing:
        (C_W, C_U), (λ_W, λ_U).
        """
        p = self.mlp.arrays()
        if self.C_U is None or self.lambda_U is None:
            zero = np.zeros(self.L)
            return {"C_self": zero, "C_nbr": p["C_W"], "lambda_self": zero, "lambda_nbr": p["lambda_W"]}
        return {"C_self": p["C_W"], "C_nbr": np.asarray(self.C_U, dtype=np.float64), "lambda_self": p["lambda_W"],
                "lambda_nbr": np.asarray(self.lambda_U, dtype=np.float64)}

    def arrays(self) -> dict[str, np.ndarray]:
        """C_b, C_W, lambda_b, lambda_W as float64 arrays (L,), gamma (per layer, :meth:`gammas`) and the
        :meth:`mixing` coefficients."""
        out = self.mlp.arrays()
        out["gamma"] = self.gammas()
        out.update(self.mixing())
        return out

    def propagate(self, M: np.ndarray) -> np.ndarray:
        """Â M (sparse·dense when Â is sparse), M of shape (N_nodes, ...)."""
        return np.asarray(self.A_sparse @ M) if self.A_sparse is not None else self.A_hat @ M

    def mix(self, M: np.ndarray) -> np.ndarray:
        """Â M Âᵀ for an (N_nodes, N_nodes) matrix M."""
        return self.propagate(self.propagate(M).T).T

    def check_inputs(self, X, name: str = "X") -> np.ndarray:
        """Node features X of shape (N_nodes, input_dim), finite, float64."""
        try:
            shape = np.shape(X)
        except (TypeError, ValueError):
            shape = None
        if shape is not None and len(shape) == 2 and shape[0] != self.N_nodes:
            raise DeepEFTInputError(
                f"{name} must hold one row of features per node: shape (N_nodes, input_dim) = ({self.N_nodes}, "
                f"{self.input_dim}), got {tuple(shape)}. For one-hot node features use X = np.eye(N_nodes) with "
                "input_dim = N_nodes."
            )
        return v.inputs(X, self.input_dim, name)

    def __repr__(self):
        def short(t):
            return f"{t[0]:g}" if len(set(t)) == 1 else str(list(t))

        return (
            f"GCN(N_nodes={self.N_nodes}, n={list(self.n)}, activation={self.activation!r}, C_b={short(self.C_b)}, "
            f"C_W={short(self.C_W)}, gamma={self.gamma:g}"
            + (f", C_U={short(self.C_U)})" if self.C_U is not None else ")")
        )
