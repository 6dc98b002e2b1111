"""The lattice model beyond J_D = 0: the loss as a perturbation (paper (6)–(9) = (38)), sampled by MCMC.

The stochastic neural network (9) with the data term switched on, for P inputs X (P, n_0) and targets t (P, N) on the last
lattice layer l = L − 1 (identity read-out φ^{L+1}, squared error summed over the N components, ℓ(y, t) = |y − t|²):

    p(z) ∝ exp[ −(J_D/2) Σ_i |z^{L−1}_i − t_i|² − ½ Σ_l ((z^l)ᵀ(Σ^l)⁻¹ z^l + N ln|Σ^l|) ],                    (9)
    Σ^l_{ij} = σ_w² N⁻¹ φ(z^{l−1}_i)·φ(z^{l−1}_j) + σ_b²,  Σ^0 = σ_w² n_0⁻¹ X Xᵀ + σ_b².

Sampler (:func:`sample_perturbed`): Metropolis-within-Gibbs over layers, checkerboard (even layers, then odd layers; given
its neighbours, layer l depends only on l − 1 and l + 1). A hidden layer l < L − 1 is proposed from its prior conditional
z' ~ N(0, Σ^l ⊗ I) and accepted with the likelihood ratio N(z^{l+1}; 0, Σ^{l+1}(z'))/N(z^{l+1}; 0, Σ^{l+1}(z^l)) —
detailed balance for p(z^l | z^{l−1}, z^{l+1}) ∝ N(z^l; 0, Σ^l) N(z^{l+1}; 0, Σ^{l+1}(z^l)), the same move as the ring
sampler of :mod:`.samplers`. Since Σ^{l+1} depends on z^l only through P(P+1)/2 overlaps, the log-ratio is O(1) at any N
and the acceptance stays finite as N grows. The last layer is drawn exactly (Gibbs): per neuron α, the P-vector
z^{L−1}_α | z^{L−2} ~ N(m_α, A⁻¹) with A = Σ⁻¹ + J_D I, m_α = J_D A⁻¹ t_α. Chains start from exact J_D = 0 draws.
Why not BlackJAX: its samplers (random-walk MH, HMC/NUTS) would move all N·L·P coordinates at once with one step size,
while the exact prior-conditional proposal above needs no tuning and no gradients; R̂ and the effective sample size are
the 20 lines of :func:`split_rhat` and :func:`effective_sample_size` (Gelman et al. 2013; Vehtari et al. 2021).

Independent path (:func:`reweighted_moments`): integrating z^{L−1} out analytically, p_{J_D}(z^{0..L−2}) ∝
p_0(z^{0..L−2}) w(z^{L−2}) with w = Π_α N(t_α; 0, Σ^{L−1} + I/J_D) up to a constant, so every J_D-expectation is an
importance-weighted J_D = 0 expectation over exact ancestral samples (Rao–Blackwellised for the last layer).

References:
  Schoenholz, Pennington & Sohl-Dickstein, A correspondence between random neural networks and statistical field theory
    (2017), arXiv:1710.06570, eqs. (6)–(9), (38)
  Vehtari, Gelman, Simpson, Carpenter & Bürkner, Rank-normalization, folding, and localization: an improved R̂ (2021),
    arXiv:1903.08008
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from .._x64 import x64
from ..activations import Activation
from ..activations import activation as _activation
from ..errors import DeepEFTInputError
from ..statistics import Estimate

__all__ = ["PerturbedSample", "effective_sample_size", "loss_response", "loss_response_theory", "overlaps",
           "reweighted_moments", "sample_perturbed", "split_rhat"]


# -- convergence diagnostics ------------------------------------------------------------------------


def split_rhat(x) -> np.ndarray:
    """Split-R̂ (Gelman et al. 2013, §11.4) of draws x (chains, draws, …): each chain is halved, then
    R̂ = √(((n − 1)/n · W + B/n)/W) with W the mean within-half variance and B/n the variance of the half means."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or x.shape[1] < 4:
        raise DeepEFTInputError(f"split_rhat needs draws of shape (chains, draws ≥ 4, …), got {x.shape}.")
    n = x.shape[1] // 2
    halves = np.concatenate([x[:, :n], x[:, n : 2 * n]], axis=0)
    W = halves.var(axis=1, ddof=1).mean(axis=0)
    B_n = halves.mean(axis=1).var(axis=0, ddof=1)
    return np.sqrt(((n - 1) / n * W + B_n) / W)


def effective_sample_size(x) -> np.ndarray:
    """ESS of draws x (chains, draws, …): M·n/τ with τ = −1 + 2 Σ_k ρ̂_k summed over Geyer's initial positive sequence of
    pair sums ρ̂_{2k} + ρ̂_{2k+1} (Geyer 1992), ρ̂ from the chain-averaged autocovariance (FFT) and the split-R̂ variance."""
    x = np.asarray(x, dtype=np.float64)
    M, n = x.shape[:2]
    xc = x - x.mean(axis=1, keepdims=True)
    f = np.fft.rfft(xc, n=2 * n, axis=1)
    acov = np.fft.irfft(f * np.conj(f), axis=1)[:, :n] / n  # (M, n, …)
    W = acov[:, 0].mean(axis=0) * n / (n - 1)
    var_plus = W * (n - 1) / n + x.mean(axis=1).var(axis=0, ddof=1) if M > 1 else W
    rho = 1.0 - (W - acov.mean(axis=0)) / var_plus  # (n, …)
    pairs = rho[: n - n % 2].reshape((n // 2, 2) + rho.shape[1:]).sum(axis=1)  # ρ_{2k} + ρ_{2k+1}
    positive = np.cumprod(pairs > 0, axis=0).astype(bool)
    tau = -1.0 + 2.0 * np.where(positive, pairs, 0.0).sum(axis=0)
    return M * n / np.maximum(tau, 1.0 / np.log10(max(M * n, 10)))


# -- the perturbed lattice model ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PerturbedSample:
    """MCMC draws of the J_D > 0 lattice model: ``overlaps`` (chains, draws, L, P, P) = z^l_i·z^l_j/N per recorded sweep;
    ``acceptance`` (L − 1,) mean acceptance of the hidden-layer moves; ``rhat`` and ``ess`` of every overlap entry."""

    overlaps: np.ndarray
    acceptance: np.ndarray
    rhat: np.ndarray
    ess: np.ndarray
    J_D: float
    N: int

    def estimate(self) -> Estimate:
        """Chain means of the overlaps (L, P, P) with standard errors √(Var/ESS)."""
        x = self.overlaps.reshape((-1,) + self.overlaps.shape[2:])
        return Estimate(x.mean(axis=0), np.sqrt(x.var(axis=0, ddof=1) / self.ess))


def _check(act, sigma_w2, sigma_b2, N, L, X, t, J_D):
    act = act if isinstance(act, Activation) else _activation(act)
    sw = v.finite_scalar(sigma_w2, "sigma_w2")
    sb = v.finite_scalar(sigma_b2, "sigma_b2")
    N = v.positive_int(N, "N")
    L = v.positive_int(L, "L", minimum=2)
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    P = X.shape[0]
    t = np.zeros((P, N)) if t is None else np.asarray(t, dtype=np.float64)
    if t.shape != (P, N):
        raise DeepEFTInputError(f"targets t must have shape (P, N) = {(P, N)} (one target vector per input), got {t.shape}.")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(t))):
        raise DeepEFTInputError("X and t must be finite.")
    J = v.finite_scalar(J_D, "J_D")
    S0 = sw * (X @ X.T) / X.shape[1] + sb
    if np.linalg.eigvalsh(S0).min() <= 0:
        raise DeepEFTInputError("Σ^0 = σ_w² XXᵀ/n0 + σ_b² is singular: use distinct inputs or σ_b² > 0.")
    return act, sw, sb, N, L, S0, t, J


def _sigma(z, act, sw, sb, N):
    """Σ^{l+1} produced by z^l: z (…, P, N) → (…, P, P)."""
    h = act.fn(z)
    return sw * jnp.einsum("...pn,...qn->...pq", h, h) / N + sb


def _loglik(z, S):
    """log N(z; 0, S ⊗ I_N) up to a constant: z (…, P, N), S (…, P, P)."""
    chol = jnp.linalg.cholesky(S)
    y = jax.scipy.linalg.solve_triangular(chol, z, lower=True)
    N = z.shape[-1]
    return -0.5 * jnp.sum(y * y, axis=(-2, -1)) - N * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), -1)


def _prior_draw(key, S, N):
    chol = jnp.linalg.cholesky(S)
    return chol @ jax.random.normal(key, S.shape[:-2] + (S.shape[-1], N), S.dtype)


@functools.partial(jax.jit, static_argnames=("act", "N", "L", "sweeps", "burn", "thin"))
def _mwg(keys, S0, t, sw, sb, J, *, act, N, L, sweeps, burn, thin):
    P = S0.shape[0]
    eye = jnp.eye(P, dtype=S0.dtype)
    par = jnp.arange(L) % 2
    hidden = jnp.arange(L) < L - 1

    def one(key):
        def init_step(S, k):
            z = _prior_draw(k, S, N)
            return _sigma(z, act, sw, sb, N), z

        _, z = jax.lax.scan(init_step, S0, jax.random.split(jax.random.fold_in(key, 0), L))  # exact J_D = 0 draw

        def half(carry, inp):
            z, acc = carry
            k, p = inp
            k1, k2, k3 = jax.random.split(k, 3)
            S_out = _sigma(z, act, sw, sb, N)  # (L, P, P): Σ^{l+1} from z^l
            S_in = jnp.concatenate([S0[None], S_out[:-1]], 0)  # Σ^l
            prop = _prior_draw(k1, S_in, N)
            S_prop = _sigma(prop, act, sw, sb, N)
            z_next = jnp.concatenate([z[1:], z[-1:]], 0)  # z^{l+1} (last entry unused)
            logr = _loglik(z_next, S_prop) - _loglik(z_next, S_out)
            ok = (jnp.log(jax.random.uniform(k2, (L,), z.dtype)) < logr) & (par == p) & hidden
            z = jnp.where(ok[:, None, None], prop, z)
            # last layer: exact Gaussian Gibbs, A = Σ⁻¹ + J_D I, mean J_D A⁻¹ t
            A = jnp.linalg.inv(S_in[-1]) + J * eye
            cA = jnp.linalg.cholesky(A)
            mean = J * jax.scipy.linalg.cho_solve((cA, True), t)
            eps = jax.random.normal(k3, (P, N), z.dtype)
            last = mean + jax.scipy.linalg.solve_triangular(cA.T, eps, lower=False)
            z = z.at[-1].set(jnp.where(par[-1] == p, last, z[-1]))
            return (z, acc + ok), None

        def sweep(carry, k):
            k0, k1 = jax.random.split(k)
            carry, _ = half(carry, (k0, 0))
            carry, _ = half(carry, (k1, 1))
            z = carry[0]
            return carry, jnp.einsum("lpn,lqn->lpq", z, z) / N

        ks = jax.random.split(jax.random.fold_in(key, 1), sweeps)
        (z, acc), rec = jax.lax.scan(sweep, (z, jnp.zeros(L, jnp.int32)), ks)
        return rec[burn::thin], acc

    return jax.vmap(one)(keys)


def sample_perturbed(activation="tanh", sigma_w2=1.0, sigma_b2=0.05, *, N=50, L=8, X=None, t=None, J_D=0.5,
                     chains=32, sweeps=600, burn=100, thin=1, seed=0, dtype="float64") -> PerturbedSample:
    """Metropolis-within-Gibbs draws of the lattice model (9) with the loss (J_D/2)Σ_i|z^{L−1}_i − t_i|² (module doc).

    ``X`` (P, n_0) inputs (default one input with |x|²/n_0 = 1), ``t`` (P, N) targets (default 0). ``chains`` independent
    chains of ``sweeps`` checkerboard sweeps; the first ``burn`` are dropped, then every ``thin``-th overlap matrix
    z^l_i·z^l_j/N is kept. R̂ (:func:`split_rhat`) and ESS (:func:`effective_sample_size`) come with the draws.
    """
    X = np.ones((1, 1)) if X is None else X
    act, sw, sb, N, L, S0, t, J = _check(activation, sigma_w2, sigma_b2, N, L, X, t, J_D)
    chains = v.positive_int(chains, "chains", minimum=2)
    sweeps = v.positive_int(sweeps, "sweeps")
    burn = v.positive_int(burn, "burn", minimum=0)
    thin = v.positive_int(thin, "thin")
    if sweeps - burn < 8 * thin:
        raise DeepEFTInputError(f"keep at least 8 draws per chain: sweeps − burn = {sweeps - burn} with thin = {thin}.")
    if dtype not in ("float32", "float64"):
        raise DeepEFTInputError(f"dtype must be 'float32' or 'float64', got {dtype!r}.")
    seed = v.positive_int(seed, "seed", minimum=0)
    ctx = x64() if dtype == "float64" else _NullCtx()
    with ctx:
        ft = jnp.float64 if dtype == "float64" else jnp.float32
        keys = jax.vmap(lambda c: jax.random.fold_in(jax.random.key(seed), c))(jnp.arange(chains))
        rec, acc = _mwg(keys, jnp.asarray(S0, ft), jnp.asarray(t, ft), jnp.asarray(sw, ft), jnp.asarray(sb, ft),
                        jnp.asarray(J, ft), act=act, N=N, L=L, sweeps=sweeps, burn=burn, thin=thin)
        rec, acc = np.asarray(rec, np.float64), np.asarray(acc, np.float64)
    acceptance = acc.mean(axis=0)[: L - 1] / sweeps
    return PerturbedSample(rec, acceptance, split_rhat(rec), effective_sample_size(rec), J, N)


class _NullCtx:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


# -- the independent path: exact J_D = 0 draws, importance weights ---------------------------------


@functools.partial(jax.jit, static_argnames=("act", "N", "L"))
def _reweight_chunk(keys, S0, t, sw, sb, J, *, act, N, L):
    P = S0.shape[0]
    eye = jnp.eye(P, dtype=S0.dtype)

    def one(key):
        def step(S, k):
            z = _prior_draw(k, S, N)
            return _sigma(z, act, sw, sb, N), jnp.einsum("pn,qn->pq", z, z) / N

        S_last, ov = jax.lax.scan(step, S0, jax.random.split(jax.random.fold_in(key, 0), L - 1))
        # w = Π_α N(t_α; 0, Σ + I/J_D); last layer Rao–Blackwellised: E[z zᵀ]/N = A⁻¹ + m mᵀ/N
        B = S_last + eye / J
        logw = _loglik(t, B)
        A_inv = jnp.linalg.inv(jnp.linalg.inv(S_last) + J * eye)
        m = J * A_inv @ t
        last = A_inv + m @ m.T / N
        return jnp.concatenate([ov, last[None]], 0), logw

    return jax.vmap(one)(keys)


def reweighted_moments(activation="tanh", sigma_w2=1.0, sigma_b2=0.05, *, N=50, L=8, X=None, t=None, J_D=0.5,
                       n_networks=20_000, seed=0, chunk=2048) -> tuple[Estimate, float]:
    """E_{J_D}[z^l_i·z^l_j/N] (L, P, P) by importance reweighting of exact J_D = 0 ancestral draws (module doc), with
    delta-method standard errors of the ratio estimator; also returns the effective number of draws (Σw)²/Σw²."""
    X = np.ones((1, 1)) if X is None else X
    act, sw, sb, N, L, S0, t, J = _check(activation, sigma_w2, sigma_b2, N, L, X, t, J_D)
    if J <= 0:
        raise DeepEFTInputError("reweighted_moments needs J_D > 0 (at J_D = 0 sample the chain directly).")
    M = v.positive_int(n_networks, "n_networks", minimum=2)
    seed = v.positive_int(seed, "seed", minimum=0)
    ovs, lws = [], []
    with x64():
        base = jax.random.key(seed + 7919)
        for s in range(0, M, chunk):
            keys = jax.vmap(lambda m: jax.random.fold_in(base, m))(jnp.arange(s, s + chunk))
            ov, lw = _reweight_chunk(keys, jnp.asarray(S0), jnp.asarray(t), jnp.asarray(sw), jnp.asarray(sb),
                                     jnp.asarray(J), act=act, N=N, L=L)
            ovs.append(np.asarray(ov))
            lws.append(np.asarray(lw))
    ov = np.concatenate(ovs)[:M]
    lw = np.concatenate(lws)[:M]
    w = np.exp(lw - lw.max())
    W = w.sum()
    mean = np.einsum("s,s...->...", w, ov) / W
    # ratio estimator: Var ≈ Σ w²(f − mean)²/(Σw)²
    se = np.sqrt(np.einsum("s,s...->...", w**2, (ov - mean) ** 2)) / W
    return Estimate(mean, se), float(W**2 / np.sum(w**2))


def overlaps(sample) -> np.ndarray:
    """z^l_i·z^l_j/N (M, L, P, P) of a :class:`~.samplers.LatticeSample` (needs P > 1 inputs for the Gram records;
    r²/N for one input)."""
    if sample.gram is not None:
        return np.asarray(sample.gram, dtype=np.float64) / sample.N
    return (np.asarray(sample.r, dtype=np.float64) ** 2 / sample.N)[..., None]


# -- the loss as a perturbation: linear response at J_D = 0 -------------------------------------------


def loss_response(sample, labelled: int = 0) -> Estimate:
    """d E_{J_D}[z^l_i·z^l_j/N]/dJ_D at J_D = 0 for the loss |z^{L−1}_a|² on input a = ``labelled`` (targets 0), from a J_D = 0
    :class:`~.samplers.LatticeSample` (exact conditional draws): the linear-response identity
    dE_J[f]/dJ_D|₀ = −½ Cov₀(f, |z^{L−1}_a|²), estimated per layer and input pair (L, P, P) with standard errors of the
    mean of the per-network products (f − f̄)(ℓ − ℓ̄). (A target t ≠ 0 adds −½Cov₀(f, −2z·t), zero by z → −z symmetry.)"""
    ov = overlaps(sample)
    if ov.shape[-1] != ov.shape[-2]:
        ov = ov[..., None]
    a = v.positive_int(labelled, "labelled", minimum=0)
    if a >= ov.shape[-1]:
        raise DeepEFTInputError(f"labelled input {a} does not exist (P = {ov.shape[-1]}).")
    loss = sample.N * ov[:, -1, a, a]
    prod = (ov - ov.mean(0)) * (loss - loss.mean())[:, None, None, None]
    M = prod.shape[0]
    return Estimate(-0.5 * prod.mean(0) * M / (M - 1), 0.5 * prod.std(0, ddof=1) / np.sqrt(M))


def loss_response_theory(activation, sigma_w2: float, sigma_b2: float, L: int, *, x_norm2: float = 1.0) -> np.ndarray:
    """Leading large-N value of :func:`loss_response` for one input (L,) [derived]: with q_l = |z^l|²/N,
    N·Cov₀(q_l, q_{L−1}) = (Π_{k=ℓ}^{L−1} χ_∥^{(k)}) (2K_ℓ² + V_ℓ) + O(1/N), ℓ = l + 1 the book's layer (a fluctuation of the
    kernel at layer ℓ propagates with χ_∥ = C_W g′(K) (5.50); N·Var q_l = 2K² + V (4.117)), so
    dE_J[q_l]/dJ_D|₀ = −½ (Π χ_∥)(2K_ℓ² + V_ℓ). K, V, χ_∥ from the single-input recursion (5.108)–(5.109)."""
    from ..theory.single_input import single_input_recursion

    L = v.positive_int(L, "L")
    sw, sb = v.finite_scalar(sigma_w2, "sigma_w2"), v.finite_scalar(sigma_b2, "sigma_b2")
    rec = single_input_recursion(activation, sb + sw * v.finite_scalar(x_norm2, "x_norm2"), L, C_b=sb, C_W=sw)
    chi = np.asarray(rec.chi_parallel, dtype=np.float64)  # χ_∥ at K^{(ℓ)}, index ℓ − 1
    # Π_{k=ℓ}^{L−1} χ^{(k)}: reverse cumulative product, 1 at ℓ = L
    tail = np.concatenate([np.cumprod(chi[: L - 1][::-1])[::-1], [1.0]])
    return -0.5 * tail * (2.0 * rec.K**2 + rec.V)
