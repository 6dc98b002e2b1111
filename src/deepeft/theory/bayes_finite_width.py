"""Bayesian inference at finite width, to O(1/n): Hebbian association, posterior mean, representation learning
(book §6.4).

At finite width the prior of the outputs is nearly Gaussian (4.80): two-point function
E[z_{i;δ1} z_{j;δ2}] = δ_ij G_{δ1δ2}, G = K + G^{1}/n (4.104), and connected four-point function
(1/n)[δ_{i1i2}δ_{i3i4} V_{(δ1δ2)(δ3δ4)} + 2 perms] (4.77), with n = n_{L−1} the penultimate width and
V = V^{(L)} (4.119). Everything below is first order in 1/n; K̃ is the 𝒜×𝒜 block of K (plus σ_ε² I with
observation noise), K̃^{α1α2} the inverse of that block, y_i = y_{i;𝒜} the targets of output component i.

One object carries every result of this section, the **Hebbian source**

    B^{α1α2} = Σ_{α3,α4} K̃^{α1α3} K̃^{α2α4} Σ_i (y_{i;α3} y_{i;α4} − K̃_{α3α4})
             = Σ_i u_{i;α1} u_{i;α2} − n_L K̃^{α1α2},        u_i = K̃⁻¹ y_i,

the difference between what was observed and what the prior expected, raised with K̃⁻¹:

* **Hebbian conditional moment** (6.78), for one neuron observed at the inputs 𝒜 (n_L = 1):
  E[z_{2;δ1} z_{2;δ2} | z_{1;𝒜} = ž] = G_{δ1δ2} + (1/2n) Σ V_{(δ1δ2)(α1α2)} B^{α1α2}(ž);
  for one input it is the book's G + ½(ž² − G) V/(n G²).
* **Representation learning** (6.99), (6.104): the posterior shift of the penultimate-layer observable
  𝒪_{δ1δ2} = (1/n) Σ_j σ_{j;δ1} σ_{j;δ2} (6.101) is d̄𝒪 = (1/(2 n C_W)) Σ V_{(δ1δ2)(α1α2)} B^{α1α2}, i.e. the
  stochastic metric Ĝ^{(L)} = C_b + C_W 𝒪 (4.70) moves by d̄Ĝ = C_W d̄𝒪. It vanishes when Σ_i y_i y_iᵀ = n_L K̃.
* **Posterior mean** (6.87)–(6.88): with m_{i;β̇} = G_{β̇α} G̃⁻¹ y_i (the naive mean (6.81) with the
  finite-width metric) and Ṽ_{(β̇α1)(α2α3)} = V_{(β̇α1)(α2α3)} − Σ_α (K_{β̇𝒜}K̃⁻¹)_{β̇α} V_{(αα1)(α2α3)}
  (the vertex of the residual z_β̇ − K_{β̇𝒜}K̃⁻¹z_𝒜, uncorrelated with z_𝒜 at leading order),

      E[z_{i;β̇} | y_𝒜] = m_{i;β̇} + (1/2n) Σ_{α1α2α3} Ṽ_{(β̇α1)(α2α3)} [u_{i;α1} B^{α2α3} − 2 K̃^{α1α2} u_{i;α3}] + O(1/n²).

  [derived] This is the book's (6.88) (quartic action (6.79) with the couplings g (4.108), v (4.82)) written
  with cumulants: for a nearly-Gaussian vector conditioned on a block, E[r|a] = (1/6) κ(r,a,a,a)·H₃(a) (first-order
  Edgeworth, H₃ the Hermite tensor of K̃), which needs only the inverse of the *training* block — the book's form
  raises indices with the inverse of K on all of 𝒟 = 𝒜 ∪ ℬ. The tests evaluate the literal (6.81)–(6.88) +
  (4.108) independently and find the same numbers. Read as E[Ĝ_{β̇𝒜}Ĝ_{𝒜𝒜}⁻¹ | y] y, the first bracket term
  is the representation shift d̄Ĝ (6.104) acting through the conditional mean, the second the prior fluctuation
  of Ĝ_{𝒜𝒜}⁻¹. The cross-component term Σ_k u_k u_kᵀ in B is the "wiring" (6.89): at finite width the posterior
  mean of component i depends on the targets of every component k.

Observation noise σ_ε² (the diagonal model (6.10)): y = z + ε has two-point function G̃ + σ_ε² I and the same
connected four-point function, so every formula holds with K̃ → K̃ + σ_ε² I (also in B); the mean is that of the
noise-free outputs z at the test inputs.

References:
  Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory* (arXiv:2106.10165), §4.4 (4.77), (4.80)–(4.83),
  (4.104), (4.108); §6.4 (6.72)–(6.78), (6.79)–(6.89), (6.90)–(6.104).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.linalg as sla

from ..errors import DeepEFTInputError
from ..network import MLP
from .bayes import posterior_from_kernels
from .learning_inputs import add_to_diagonal, cholesky, kernel_block, noise_variance, targets
from .vertex import vertex_flow

__all__ = [
    "FiniteWidthPosterior",
    "RepresentationUpdate",
    "finite_width_posterior",
    "finite_width_posterior_from_tensors",
    "hebbian_conditional_moment",
    "hebbian_source",
    "representation_update",
    "representation_update_from_tensors",
]


def _check_mlp(net) -> MLP:
    if not isinstance(net, MLP):
        raise DeepEFTInputError(f"net must be a deepeft.MLP, got {type(net).__name__}; build one with de.MLP(...).")
    return net


def _width(width) -> float:
    try:
        n = float(width)
    except (TypeError, ValueError):
        n = float("nan")
    if not np.isfinite(n) or n <= 0:
        raise DeepEFTInputError(f"width (the penultimate width n_(L−1) of the 1/n expansion) must be > 0, got {width!r}.")
    return n


def _vertex_block(V, N: int) -> np.ndarray:
    try:
        arr = np.asarray(V, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeepEFTInputError(
            "V must be a numeric array (N, N, N, N) (the four-point vertex, layout of four_point_vertex)."
        ) from None
    if arr.shape != (N,) * 4:
        raise DeepEFTInputError(f"V must have shape {(N,) * 4} (one index per input of K), got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise DeepEFTInputError("V contains NaN or inf.")
    return arr


def _solve(C: np.ndarray, B: np.ndarray) -> np.ndarray:
    """K̃⁻¹ B from the Cholesky factor C of K̃ (two triangular solves)."""
    return sla.cho_solve((C, True), B, check_finite=False)


def _source(C: np.ndarray, Kt: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, u): u = K̃⁻¹Y (N_A, n_L) and the Hebbian source B = u uᵀ − n_L K̃⁻¹ (module docstring)."""
    u = _solve(C, Y)
    Kinv = _solve(C, np.eye(Kt.shape[0]))
    B = u @ u.T - Y.shape[1] * Kinv
    return 0.5 * (B + B.T), u


def hebbian_source(K_train, Y, noise: float = 0.0) -> np.ndarray:
    """B = K̃⁻¹ (Σ_i y_i y_iᵀ − n_L K̃) K̃⁻¹ (N_A, N_A), the observed-minus-expected second moment of the targets
    raised with K̃⁻¹ (K̃ + σ_ε² I with noise): the source of (6.78), (6.88) and (6.104). Y: (N_A,) or (N_A, n_L).

    References:
      arXiv:2106.10165, (6.78), (6.104).
    """
    Kt = kernel_block(K_train, "K_train", (None, None), symmetric=True)
    Y = targets(Y, Kt.shape[0], "Y")
    Kn = add_to_diagonal(Kt, noise_variance(noise))
    return _source(cholesky(Kn), Kn, Y)[0]


# ---------------------------------------------------------------------------------------------
# Hebbian learning (6.72)–(6.78)
# ---------------------------------------------------------------------------------------------


def hebbian_conditional_moment(net: MLP, X, z_observed, *, layer: int | None = None, observed=None) -> np.ndarray:
    """E[z_{2;δ1} z_{2;δ2} | z_{1;𝒜} = ž] (N, N) in layer ℓ: the second moment of one neuron given the observed
    values ž of another neuron of the same layer at the inputs 𝒜 = X[observed] (6.78), to O(1/n):

        G_{δ1δ2} + (1/2n_{ℓ−1}) Σ V^{(ℓ)}_{(δ1δ2)(α1α2)} K̃^{α1α3} K̃^{α2α4} (ž_α3 ž_α4 − K̃_α3α4),

    G = K + G^{1}/n_{ℓ−1} (4.104). One input: G + ½(ž² − G) V/(n_{ℓ−1}G²) — the book's (6.78): an atypically
    large |ž| makes the other neurons atypically large too ("fire together"). ``layer`` defaults to L;
    ``observed`` (indices into X) to every input; ``z_observed`` has one value per observed input.

    References:
      arXiv:2106.10165, (6.72)–(6.78); (4.104), (4.119).
    """
    net = _check_mlp(net)
    X = net.check_inputs(X, "X")
    N = X.shape[0]
    ell = net.L if layer is None else int(layer)
    if isinstance(layer, bool) or not 1 <= ell <= net.L:
        raise DeepEFTInputError(f"layer must be an integer in 1..L = {net.L} (the layer of the two neurons), got {layer!r}.")
    idx = np.arange(N) if observed is None else np.asarray(observed)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= N \
            or len(set(idx.tolist())) != idx.size:
        raise DeepEFTInputError(f"observed must be distinct integer indices into the {N} inputs of X, got {observed!r}.")
    z = np.atleast_1d(np.asarray(z_observed, dtype=np.float64))
    if z.shape != (idx.size,):
        raise DeepEFTInputError(f"z_observed must hold one value per observed input, shape ({idx.size},), got {z.shape}.")
    if not np.all(np.isfinite(z)):
        raise DeepEFTInputError("z_observed contains NaN or inf.")
    flow = vertex_flow(net, X, nlo=True)
    n = float(flow.n_prev[ell - 1])
    K, V = flow.K[ell - 1], flow.V[ell - 1]
    B = hebbian_source(K[np.ix_(idx, idx)], z)
    return flow.metric()[ell - 1] + np.einsum("deab,ab->de", V[:, :, idx][:, :, :, idx], B) / (2.0 * n)


# ---------------------------------------------------------------------------------------------
# The finite-width posterior mean (6.79)–(6.89)
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FiniteWidthPosterior:
    """Posterior mean of the outputs at the test inputs at O(1/n) (6.87)–(6.88); arrays (N_test, n_L).

    mean : mean_nngp + mean_correction.
    mean_nngp : m^∞ = K_{ℬ𝒜} K̃⁻¹ y (6.64), the infinite-width posterior mean.
    mean_correction : the O(1/n) part = mean_metric + mean_fluctuation + mean_learning (∝ 1/n exactly: its
        coefficient is width-independent). The three parts:
    mean_metric : (G^{1}_{ℬ𝒜} − K_{ℬ𝒜}K̃⁻¹G^{1}_{𝒜𝒜}) K̃⁻¹ y / n, from the NLO metric G = K + G^{1}/n (4.104);
    mean_fluctuation : −(1/n) Σ Ṽ_{(β̇α1)(α2α3)} K̃^{α1α2} u_{i;α3}: the prior fluctuation of Ĝ_{𝒜𝒜}⁻¹ — with the metric
        part, the prior average E[Ĝ_{ℬ𝒜}Ĝ_{𝒜𝒜}⁻¹]y − m^∞ of a width-n network's own kernel predictor;
    mean_learning : (1/2n) Σ Ṽ_{(β̇α1)(α2α3)} u_{i;α1} B^{α2α3}: the Bayesian reweighting of the networks — the
        representation shift d̄Ĝ (6.104) acting through the conditional mean; carries the "wiring" (6.89) and
        vanishes when Σ_i y_i y_iᵀ = n_L K̃.
    mean_vertex : mean_fluctuation + mean_learning, the four-point-vertex part of (6.88).
    cov_nngp : 𝕂 (6.57) (N_test, N_test), the leading-order posterior covariance.
    width : n = n_{L−1}; noise : σ_ε².
    """

    mean: np.ndarray
    mean_nngp: np.ndarray
    mean_correction: np.ndarray
    mean_metric: np.ndarray
    mean_fluctuation: np.ndarray
    mean_learning: np.ndarray
    cov_nngp: np.ndarray
    width: float
    noise: float = 0.0

    @property
    def mean_vertex(self) -> np.ndarray:
        return self.mean_fluctuation + self.mean_learning

    def at_width(self, width: float) -> np.ndarray:
        """The O(1/n) mean at another penultimate width n' (same K, G^{1}, V): m^∞ + correction·n/n'."""
        return self.mean_nngp + self.mean_correction * (self.width / _width(width))


def finite_width_posterior_from_tensors(K, G1, V, Y, n_train: int, width: float, noise: float = 0.0) -> FiniteWidthPosterior:
    """The O(1/n) posterior mean (6.87)–(6.88) from the output-layer tensors on 𝒟 = (training inputs first, then test).

    K, G1 : (N, N) K^{(L)} and G^{1}(L) (4.104); V : (N, N, N, N) V^{(L)} (4.119); Y : (n_train,) or (n_train, n_L);
    width : n_{L−1}; noise : σ_ε² (diagonal model (6.10)). Only the training block K̃ (+σ_ε² I) is inverted.

    References:
      arXiv:2106.10165, (6.79)–(6.89), (4.104), (4.108).
    """
    Kf = kernel_block(K, "K", (None, None), symmetric=True)
    N = Kf.shape[0]
    G1 = kernel_block(G1, "G1", (N, N), symmetric=True)
    V = _vertex_block(V, N)
    try:
        NA = int(n_train)
    except (TypeError, ValueError):
        NA = -1
    if not 1 <= NA < N:
        raise DeepEFTInputError(
            f"n_train must be in 1..{N - 1} (training inputs first, at least one test input), got {n_train!r}."
        )
    Y = targets(Y, NA, "Y_train")
    n = _width(width)
    s2 = noise_variance(noise)
    A, Bt = slice(0, NA), slice(NA, N)
    post = posterior_from_kernels(Kf[A, A], Kf[Bt, A], Kf[Bt, Bt], Y, s2)
    Kt = add_to_diagonal(Kf[A, A], s2)
    C = cholesky(Kt)
    B, u = _source(C, Kt, Y)
    Kinv = _solve(C, np.eye(NA))
    P = _solve(C, Kf[A, Bt]).T  # K_ℬ𝒜 K̃⁻¹ (N_B, N_A)
    mean_metric = (G1[Bt, A] - P @ G1[A, A]) @ u / n
    Vt = V[Bt, A][:, :, A, A] - np.einsum("ba,acde->bcde", P, V[A, A][:, :, A, A])  # Ṽ_{(β̇α1)(α2α3)}
    vb = np.einsum("bcde,de->bc", Vt, B)  # Σ Ṽ_{(β̇α1)(α2α3)} B^{α2α3}
    vk = np.einsum("bcde,cd->be", Vt, Kinv)  # Σ Ṽ_{(β̇α1)(α2α3)} K̃^{α1α2}
    assert post.cov is not None  # K_test was given
    mean_learning = vb @ u / (2.0 * n)
    mean_fluctuation = -(vk @ u) / n
    corr = mean_metric + mean_fluctuation + mean_learning
    return FiniteWidthPosterior(post.mean + corr, post.mean, corr, mean_metric, mean_fluctuation, mean_learning,
                                post.cov, n, s2)


def _tensors(net: MLP, X_train, Y_train, X_test):
    net = _check_mlp(net)
    if net.L < 2:
        raise DeepEFTInputError(
            "finite-width Bayesian inference needs a hidden layer (L >= 2): with L = 1 the output is exactly Gaussian "
            "(V^(1) = 0) and the NNGP posterior (de.nngp_posterior) is exact."
        )
    XA = net.check_inputs(X_train, "X_train")
    Y = targets(Y_train, XA.shape[0], "Y_train", net.output_dim)
    XB = None if X_test is None else net.check_inputs(X_test, "X_test")
    X = XA if XB is None else np.concatenate([XA, XB])
    flow = vertex_flow(net, X, nlo=True)
    L = net.L
    return flow.K[L - 1], flow.G1[L - 1], flow.V[L - 1], Y, XA.shape[0], float(flow.n_prev[L - 1])


def finite_width_posterior(net: MLP, X_train, Y_train, X_test, noise: float = 0.0) -> FiniteWidthPosterior:
    """Posterior mean of the network outputs at X_test given (X_train, Y_train), to O(1/n) (6.87)–(6.88).

    The prior is the finite-width output distribution of ``net`` (K, G^{1}, V of the output layer, n = n_{L−1});
    ``noise`` is the observation-noise variance σ_ε² (6.10). Returns :class:`FiniteWidthPosterior` with ``.mean``,
    ``.mean_nngp`` (m^∞ (6.64)), ``.mean_correction`` (= ``.mean_metric`` + ``.mean_vertex``), ``.cov_nngp``.

    References:
      arXiv:2106.10165, §6.4.2 (6.79)–(6.89).
    """
    K, G1, V, Y, NA, n = _tensors(net, X_train, Y_train, X_test)
    return finite_width_posterior_from_tensors(K, G1, V, Y, NA, n, noise)


# ---------------------------------------------------------------------------------------------
# Representation learning (6.90)–(6.104)
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RepresentationUpdate:
    """Posterior shift of the penultimate-layer features (6.104), on 𝒟 = training inputs then test inputs.

    d_O : (N, N) d̄𝒪 for 𝒪_{δ1δ2} = (1/n_{L−1}) Σ_j σ_{j;δ1}σ_{j;δ2} (6.101) (O(1/n)).
    metric_shift : (N, N) C_W d̄𝒪 = the shift of the stochastic output metric Ĝ^{(L)} (4.70).
    prior_O : (N, N) E[𝒪] = (K^{(L)} − C_b)/C_W at leading order; posterior_O = prior_O + d_O.
    source : (N_A, N_A) the Hebbian source B; width : n_{L−1}; noise : σ_ε².
    """

    d_O: np.ndarray
    metric_shift: np.ndarray
    prior_O: np.ndarray
    source: np.ndarray
    width: float
    noise: float = 0.0

    @property
    def posterior_O(self) -> np.ndarray:
        return self.prior_O + self.d_O


def representation_update_from_tensors(K, V, Y, n_train: int, width: float, C_b: float, C_W: float,
                                       noise: float = 0.0) -> RepresentationUpdate:
    """(6.104) from the output-layer K^{(L)} (N, N) and V^{(L)} (N, N, N, N) on 𝒟 (training inputs first):
    d̄𝒪_{δ1δ2} = (1/(2 n C_W)) Σ V_{(δ1δ2)(α1α2)} B^{α1α2}, B the Hebbian source (K̃ + σ_ε² I).

    References:
      arXiv:2106.10165, (6.99), (6.101)–(6.104).
    """
    Kf = kernel_block(K, "K", (None, None), symmetric=True)
    N = Kf.shape[0]
    V = _vertex_block(V, N)
    try:
        NA = int(n_train)
    except (TypeError, ValueError):
        NA = -1
    if not 1 <= NA <= N:
        raise DeepEFTInputError(f"n_train must be in 1..{N} (training inputs first), got {n_train!r}.")
    n = _width(width)
    if not (np.isfinite(C_W) and C_W > 0):
        raise DeepEFTInputError(f"C_W^(L) must be > 0 (the observable is Ĝ^(L)/C_W), got {C_W!r}.")
    B = hebbian_source(Kf[:NA, :NA], Y, noise)
    dG = np.einsum("deab,ab->de", V[:, :, :NA, :NA], B) / (2.0 * n)
    dG = 0.5 * (dG + dG.T)
    return RepresentationUpdate(dG / C_W, dG, (Kf - C_b) / C_W, B, n, noise_variance(noise))


def representation_update(net: MLP, X_train, Y_train, X_test=None, noise: float = 0.0) -> RepresentationUpdate:
    """Posterior change of the penultimate-layer representation given (X_train, Y_train), to O(1/n) (6.104).

    The observable is 𝒪 = (1/n_{L−1}) Σ_j σ^{(L−1)}_{j;δ1}σ^{(L−1)}_{j;δ2} (6.101) on 𝒟 = X_train followed by X_test
    (optional): ``.d_O`` = posterior − prior expectation, ``.metric_shift`` = C_W^{(L)} d̄𝒪. It is O(1/n)
    (no representation learning at infinite width, (6.69)–(6.71)); deeper-inside layers move at O(1/n²)
    (footnote 35, (6.105)–(6.108)), not computed here.

    References:
      arXiv:2106.10165, §6.4.3 (6.90)–(6.104).
    """
    K, _G1, V, Y, NA, n = _tensors(net, X_train, Y_train, X_test)
    L = net.L
    return representation_update_from_tensors(K, V, Y, NA, n, net.C_b[L - 1], net.C_W[L - 1], noise)
