"""Exact finite-width Bayesian inference by importance sampling of random networks (book §6.4, validation).

Given the penultimate layer, the output layer is exactly Gaussian (4.70)–(4.71): the components z^{(L)}_{i;·} are
independent N(0, Ĝ) with the stochastic metric Ĝ_{δ1δ2} = C_b^{(L)} + C_W^{(L)} (1/n_{L−1}) Σ_j σ_{j;δ1}σ_{j;δ2}.
So for networks s = 1..S drawn from the prior, with observation noise σ_ε² on the training outputs (6.10),

    likelihood    p(y_𝒜 | s) = Π_i N(y_i; 0, Ĝ_s,𝒜𝒜 + σ_ε² I)                         (6.94)  → weight w_s
    conditional   E[z_{i;ℬ} | y, s] = Ĝ_s,ℬ𝒜 (Ĝ_s,𝒜𝒜 + σ_ε² I)⁻¹ y_i
    posterior     E[z_ℬ | y] = Σ_s w_s E[z_ℬ | y, s] / Σ_s w_s                            (self-normalised)
    features      d̄𝒪 = Σ_s w_s 𝒪_s / Σ_s w_s − (1/S) Σ_s 𝒪_s,   𝒪 = (1/n_{L−1}) Σ_j σ_jσ_j   (6.90), (6.101)

The output layer is integrated out analytically (Rao–Blackwellisation): exact at any width (no 1/n expansion),
and much less variable than weighting sampled outputs. The prior and posterior feature averages use the same
networks, so their difference d̄𝒪 is resolved far below the spread of 𝒪 itself. Standard errors: delete-one-block
jackknife over networks (:func:`deepeft.statistics.jackknife`), which covers the ratio and the shared prior mean.
The effective sample size is ESS = (Σw)²/Σw² (Kish).

Networks are drawn layer by layer from the exact conditional laws (4.70)–(4.71): z^{(ℓ)} = R Ξ with R Rᵀ = Ĝ^{(ℓ)}
(N × N, from a symmetric eigendecomposition, so rank-deficient first-layer metrics with N > n_0 are exact) and Ξ
standard normal (N × n_ℓ); network s uses the key fold_in(PRNGKey(seed), s) (:func:`.forward.network_key`).

References:
  Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory* (arXiv:2106.10165), (4.70)–(4.71), (6.10),
  (6.90)–(6.104).
  Kish, *Survey Sampling* (1965) — effective sample size of weighted samples.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from .._x64 import x64
from ..errors import DeepEFTInputError
from ..network import MLP
from ..statistics import Estimate, jackknife
from . import forward as fw
from .metric_cumulants import stochastic_metric

__all__ = ["ImportanceSample", "importance_posterior", "importance_weights", "stochastic_output_metrics"]

_CHUNK = 8192


def _sqrt_psd(G):
    """R with R Rᵀ = G for a batch of PSD matrices (B, N, N): the Cholesky factor when every matrix of the batch
    is positive definite, else (rank deficiency) U Λ^{1/2} from the eigendecomposition."""

    def eig():
        lam, U = jnp.linalg.eigh(G)
        return U * jnp.sqrt(jnp.maximum(lam, 0.0))[..., None, :]

    chol = jnp.linalg.cholesky(G)  # NaN where not positive definite
    return jax.lax.cond(jnp.all(jnp.isfinite(chol)), lambda: chol, eig)


@functools.lru_cache(maxsize=32)
def _sampler(net: MLP, N: int):
    """jit: (keys (B,), R1 (N, N)) → Ĝ^{(L)} (B, N, N), drawing layers 1..L−1 from (4.70)–(4.71) in float64;
    R1 R1ᵀ = Ĝ^{(1)} (deterministic)."""
    n, L, act = net.n, net.L, net.activation

    def batch(keys, R1):
        xi = jax.vmap(lambda k: jax.random.normal(k, (sum(N * n[l] for l in range(1, L)),), jnp.float64))(keys)
        R, o = jnp.broadcast_to(R1, (keys.shape[0], N, N)), 0
        for l in range(1, L):  # z^{(l)} | layer l−1 ~ N(0, Ĝ^{(l)}) per neuron; Ĝ^{(l+1)} from σ(z^{(l)})
            z = R @ xi[:, o : o + N * n[l]].reshape(-1, N, n[l])
            o += N * n[l]
            s = act.fn(z)
            G = stochastic_metric(net, l + 1, jnp.einsum("bai,bci->bac", s, s))  # (4.70)
            if l < L - 1:
                R = _sqrt_psd(G)
        return G

    return jax.jit(batch)


def stochastic_output_metrics(net: MLP, X, n_networks: int, seed: int = 0) -> np.ndarray:
    """Ĝ^{(L)}_s = C_b^{(L)} + C_W^{(L)} (1/n_{L−1}) Σ_j σ_{j;δ1}σ_{j;δ2} (4.70) of S random networks: (S, N, N) float64.

    The output layer's conditional law given the features: z^{(L)}_{i;·} ~ N(0, Ĝ^{(L)}) independently over i.
    """
    net = fw.check_net(net)
    if net.L < 2:
        raise DeepEFTInputError("the stochastic output metric needs a hidden layer (L >= 2); with L = 1 it is the "
                                "deterministic C_b + C_W x·x/n_0.")
    X = net.check_inputs(X, "X")
    S = v.positive_int(n_networks, "n_networks", minimum=2)
    seed = v.positive_int(seed, "seed", minimum=0)
    if seed >= 2**32:
        raise DeepEFTInputError(f"seed must be an integer in [0, 2**32), got {seed}.")
    G1 = stochastic_metric(net, 1, X @ X.T)
    lam, U = np.linalg.eigh(G1)
    R1 = U * np.sqrt(np.maximum(lam, 0.0))[None, :]
    f = _sampler(net, X.shape[0])
    out = np.empty((S, X.shape[0], X.shape[0]))
    with x64():
        base = jax.random.PRNGKey(seed)
        Gj = jnp.asarray(R1, jnp.float64)
        B = min(_CHUNK, S)  # one compiled batch size; the last batch is padded and trimmed
        for lo in range(0, S, B):
            idx = jnp.arange(lo, lo + B, dtype=jnp.uint32)
            keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(idx)
            k = min(B, S - lo)
            out[lo : lo + k] = np.asarray(f(keys, Gj))[:k]
    return out


def importance_weights(G_train, Y, noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(log w_s, E[z_ℬ | y, s] factor): log w_s = Σ_i log N(y_i; 0, Ĝ_s,𝒜𝒜 + σ_ε² I) (6.94) for G_train (S, N_A, N_A),
    Y (N_A, n_L); also returns the solves (Ĝ_s,𝒜𝒜 + σ_ε² I)⁻¹ Y (S, N_A, n_L)."""
    G = np.asarray(G_train, np.float64)
    S, NA, _ = G.shape
    Gn = G + noise * np.eye(NA)
    C = np.linalg.cholesky(Gn)  # LinAlgError → caller
    a = np.linalg.solve(C, np.broadcast_to(Y, (S,) + Y.shape))
    sol = np.linalg.solve(np.swapaxes(C, 1, 2), a)
    logdet = 2.0 * np.sum(np.log(np.diagonal(C, axis1=1, axis2=2)), axis=1)
    n_L = Y.shape[1]
    logw = -0.5 * n_L * (NA * np.log(2 * np.pi) + logdet) - 0.5 * np.sum(a * a, axis=(1, 2))
    return logw, sol


@dataclasses.dataclass(frozen=True)
class ImportanceSample:
    """Importance-sampled finite-width posterior (module docstring); Estimates carry jackknife standard errors.

    mean : (N_test, n_L) E[z_ℬ | y].  prior_mean : (N_test, n_L) the unweighted average of E[z_ℬ | y, s] (the prior
    average of a network's own kernel predictor).  mean_shift : mean − prior_mean from the same networks (resolved
    far below the spread of either).  d_O : (N, N) posterior − prior of 𝒪 = (1/n_{L−1})Σσσ on 𝒟 = train then test.
    prior_O : (N, N) the prior mean of 𝒪.  ess : (Σw)²/Σw².  n_networks : S.  noise : σ_ε².
    log_weights (S,), conditional_means (S, N_test, n_L), features (S, N, N): the per-network samples, for
    further estimators (:meth:`reweight`).
    """

    mean: Estimate
    prior_mean: Estimate
    mean_shift: Estimate
    d_O: Estimate
    prior_O: Estimate
    ess: float
    n_networks: int
    noise: float
    log_weights: np.ndarray = dataclasses.field(repr=False)
    conditional_means: np.ndarray = dataclasses.field(repr=False)
    features: np.ndarray = dataclasses.field(repr=False)

    def reweight(self, fn, *, blocks: int = 64) -> Estimate:
        """Jackknife :class:`Estimate` of fn(w, conditional_means, features) over networks, w the normalised
        importance weights of the (jackknife) sample, e.g. ``lambda w, m, o: w @ m.reshape(len(w), -1)``."""

        def stat(lw, m, o):
            w = np.exp(lw - lw.max())
            return np.asarray(fn(w / w.sum(), m, o), np.float64)

        return jackknife(stat, self.log_weights, self.conditional_means, self.features, blocks=blocks)


def importance_posterior(net: MLP, X_train, Y_train, X_test, n_networks: int, seed: int = 0, *, noise: float = 0.0,
                         blocks: int = 64) -> ImportanceSample:
    """Exact finite-width posterior mean and feature update by importance sampling ``n_networks`` prior networks.

    The reference against which :func:`deepeft.theory.bayes_finite_width.finite_width_posterior` (6.88) and
    :func:`~deepeft.theory.bayes_finite_width.representation_update` (6.104) are tested. ``noise`` σ_ε² ≥ 0
    (zero is exact: the likelihood is Gaussian in y given the features). ``blocks``: jackknife blocks.

    References:
      arXiv:2106.10165, (4.70)–(4.71), (6.90)–(6.104).
    """
    from ..theory.learning_inputs import noise_variance, targets

    net = fw.check_net(net)
    XA = net.check_inputs(X_train, "X_train")
    XB = net.check_inputs(X_test, "X_test")
    Y = targets(Y_train, XA.shape[0], "Y_train", net.output_dim)
    s2 = noise_variance(noise)
    NA = XA.shape[0]
    G = stochastic_output_metrics(net, np.concatenate([XA, XB]), n_networks, seed)
    try:
        logw, sol = importance_weights(G[:, :NA, :NA], Y, s2)
    except np.linalg.LinAlgError:
        raise DeepEFTInputError(
            "a sampled training metric Ĝ_𝒜𝒜 is singular (duplicate training inputs, or n_(L−1) < N_train with zero "
            "noise): pass noise > 0 or remove duplicate inputs."
        ) from None
    mu = np.einsum("sba,san->sbn", G[:, NA:, :NA], sol)  # E[z_ℬ | y, s]
    CL, CbL = net.C_W[-1], net.C_b[-1]
    O = (G - CbL) / CL  # 𝒪_s (6.101)
    nb = mu.shape[1:]
    nO = O.shape[1:]

    def stat(lw, m, o):
        w = np.exp(lw - lw.max())
        w = w / w.sum()
        mean, prior_m = np.einsum("s,s...->...", w, m), m.mean(0)
        post, prior = np.einsum("s,s...->...", w, o), o.mean(0)
        return np.concatenate([mean.ravel(), prior_m.ravel(), (mean - prior_m).ravel(), (post - prior).ravel(),
                               prior.ravel()])

    est = jackknife(stat, logw, mu, O, blocks=blocks)
    val, se = np.asarray(est.value), np.asarray(est.stderr)
    parts: list[Estimate] = []
    o = 0
    for shape in (nb, nb, nb, nO, nO):
        k = int(np.prod(shape))
        parts.append(Estimate(val[o : o + k].reshape(shape), se[o : o + k].reshape(shape)))
        o += k
    w = np.exp(logw - logw.max())
    ess = float(w.sum() ** 2 / np.sum(w * w))
    mean, prior_mean, mean_shift, d_O, prior_O = parts
    return ImportanceSample(mean=mean, prior_mean=prior_mean, mean_shift=mean_shift, d_O=d_O, prior_O=prior_O,
                            ess=ess, n_networks=int(G.shape[0]), noise=s2, log_weights=logw, conditional_means=mu,
                            features=O)
