"""Infinite-width gradient descent for ANY loss: frozen-NTK dynamics in function space, averaged over the prior.

At infinite width the NTK is frozen and diagonal in the output index, Θ_{i1i2;δ1δ2} = δ_{i1i2}Θ_{δ1δ2}, so one GD
step on the training loss ℒ_𝒜 = Σ_α̃ ℓ(z_α̃, y_α̃) moves every output by (10.3)

    z_{i;δ}(t+1) = z_{i;δ}(t) − η Σ_α̃ Θ_{δα̃} ε_{i;α̃}(t),    ε_{i;α̃} = ∂ℓ/∂z_{i;α̃} (10.4)

(MSE: ε = z − y (10.5); cross-entropy: ε = softmax(z) − p (10.6)). The training outputs evolve on their own; a
test output only accumulates the training errors, z_ℬ(t) = z_ℬ(0) − ηΘ_ℬ𝒜 Σ_{s<t} ε_𝒜(s). The initial outputs are
the infinite-width prior, z_i(0) ~ N(0, K) on 𝒜 ∪ ℬ independently per output i (K = K^{(L)}). For MSE the map
z(0) ↦ z(t) is linear and :func:`deepeft.gd_prediction` gives the Gaussian ensemble in closed form; for any other
loss it is nonlinear, and this module averages it over S draws of z(0) (Monte Carlo over the prior: means with
standard errors). This is the function-space limit that real wide networks trained with
:func:`deepeft.simulate.train_ensemble` (same loss) approach as 1/n.

References:
  Roberts, Yaida & Hanin, The Principles of Deep Learning Theory (2022), arXiv:2106.10165, §10.1, (10.3)–(10.6)
  Lee et al., Wide Neural Networks of Any Depth Evolve as Linear Models (2019), arXiv:1902.06720, §2.2
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from .._x64 import x64
from ..errors import DeepEFTInputError
from ..losses import resolve_loss
from ..network import MLP, check_net
from ..statistics import Estimate, mean_se
from .kernel import kernel_and_ntk
from .learning_inputs import targets

__all__ = ["FunctionSpaceGD", "function_space_gd", "function_space_gd_from_kernels", "function_space_outputs"]

DEFAULT_SAMPLES = 4096
SAMPLE_CHUNK = 1024  # prior draws per compiled call (memory only: results do not depend on it)
PSD_JITTER = 1e-12  # relative: eigenvalues of K below −PSD_JITTER·λ_max are an error, the rest are clipped at 0


@dataclasses.dataclass(frozen=True)
class FunctionSpaceGD:
    """Means over the infinite-width prior of the outputs after ``steps`` GD steps (leading time axis).

    logits : z_ℬ(t), Estimate of shape (T, M, n_out); probabilities : softmax(z_ℬ(t)) (T, M, n_out);
    train_loss : ℒ_𝒜(t) (T,); train_logits : z_𝒜(t) (T, N, n_out). ``n_samples`` prior draws, ``loss`` its name."""

    steps: np.ndarray
    eta: float
    loss: str
    n_samples: int
    logits: Estimate
    probabilities: Estimate
    train_logits: Estimate
    train_loss: Estimate


def _steps(t) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(t))
    if arr.ndim != 1 or arr.size == 0:
        raise DeepEFTInputError(f"steps must be a non-negative integer or a 1-D list of them, got shape {arr.shape}.")
    if not np.all(np.isfinite(arr.astype(float))) or np.any(arr < 0) or np.any(arr != np.round(arr)):
        raise DeepEFTInputError(f"steps must be finite non-negative integers (GD steps), got {arr.tolist()}; t = ∞ has "
                                "no closed form for a nonlinear loss: give a large finite number of steps.")
    s = arr.astype(np.int64)
    if np.any(np.diff(s) <= 0):
        raise DeepEFTInputError(f"steps must be strictly increasing, got {s.tolist()}.")
    return s


def _prior_root(K: np.ndarray) -> np.ndarray:
    """R with R Rᵀ = K (eigen-decomposition: K may be singular, e.g. a test input equal to a training input)."""
    lam, U = np.linalg.eigh(K)
    if lam[0] < -PSD_JITTER * max(lam[-1], 0.0):
        raise DeepEFTInputError(
            f"the kernel K is not positive semi-definite (eigenvalue {lam[0]:.3e}); pass a valid NNGP kernel."
        )
    return U * np.sqrt(np.clip(lam, 0.0, None))


def _program(loss_fn, N: int):
    grad = jax.vmap(jax.vmap(jax.grad(loss_fn)))  # (S, N, n_out) ε per sample and input (10.4)
    value = jax.vmap(jax.vmap(loss_fn))

    def run(z0, Y, T_all, eta, edges):
        """z0 (S, N+M, n_out); T_all (N+M, N) = Θ_{δα̃}; edges: step counts between recordings."""
        zA0 = z0[:, :N]

        def body(_, c):
            zA, G = c
            e = grad(zA, Y[None].repeat(zA.shape[0], 0))
            return zA - eta * jnp.einsum("ab,sbo->sao", T_all[:N], e), G + e

        outs = []
        zA, G = zA0, jnp.zeros_like(zA0)
        for k in edges:  # static Python loop over recordings; fori_loop over the steps between them
            zA, G = jax.lax.fori_loop(0, k, body, (zA, G))
            z = z0 - eta * jnp.einsum("db,sbo->sdo", T_all, G)  # every output from the accumulated errors
            outs.append((z[:, N:], jax.nn.softmax(z[:, N:], -1), z[:, :N],
                         jnp.sum(value(z[:, :N], Y[None].repeat(z.shape[0], 0)), -1)))
        return tuple(jnp.stack(x, 1) for x in zip(*outs, strict=True))

    return jax.jit(run, static_argnums=(4,))


def _check_square(K, T):
    K = np.asarray(K, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1] or T.shape != K.shape:
        raise DeepEFTInputError(f"K and Theta must be square and of the same shape (N+M, N+M), got {K.shape}, {T.shape}.")
    if not (np.all(np.isfinite(K)) and np.all(np.isfinite(T))):
        raise DeepEFTInputError("K and Theta must be finite.")
    return K, T


def _run(prog, z0: np.ndarray, Tj, Yj, eta: float, edges, chunk: int) -> list[np.ndarray]:
    """The compiled dynamics over z0 (S, N+M, n_out) in chunks of ``chunk`` samples: [logits, probs, train logits, loss]."""
    parts: list[list[np.ndarray]] = [[], [], [], []]
    for start in range(0, z0.shape[0], chunk):
        out = prog(jnp.asarray(z0[start:start + chunk]), Yj, Tj, eta, edges)
        for lst, x in zip(parts, out, strict=True):
            lst.append(np.asarray(x))
    arrays = [np.concatenate(p) for p in parts]
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise DeepEFTInputError(f"the dynamics diverged (non-finite outputs) at eta = {eta:g}; lower eta "
                                "(for MSE GD is stable for eta < 2/λ_max(Θ̃)).")
    return arrays


def function_space_outputs(z0, Theta, Y_train, N_train: int, steps, eta: float, *, loss="cross_entropy",
                           sample_chunk: int = SAMPLE_CHUNK) -> dict[str, np.ndarray]:
    """The frozen-NTK dynamics (10.3) started from GIVEN initial outputs, one trajectory per row of ``z0``.

    z0 : (S, N+M, n_out) initial outputs on 𝒜 ∪ ℬ (training inputs first) — e.g. the initial outputs of S real
    networks, so that each network's departure from its own infinite-width trajectory can be measured;
    Theta : (N+M, N+M) frozen NTK Θ^{(L)}. Returns arrays with a time axis after the sample axis:
    ``logits`` (S, T, M, n_out), ``probabilities`` (softmax of the logits), ``train_logits`` (S, T, N, n_out),
    ``train_loss`` (S, T)."""
    z0 = np.asarray(z0, dtype=np.float64)
    _, T = _check_square(Theta, Theta)
    if z0.ndim != 3 or z0.shape[1] != T.shape[0] or not np.all(np.isfinite(z0)):
        raise DeepEFTInputError(f"z0 must be finite with shape (S, {T.shape[0]}, n_out) (inputs of Theta on the "
                                f"second axis), got {z0.shape}.")
    N = v.positive_int(N_train, "N_train")
    if N > T.shape[0]:
        raise DeepEFTInputError(f"N_train = {N} exceeds the {T.shape[0]} inputs of Theta.")
    Y = targets(Y_train, N, n_out=z0.shape[2])
    _, loss_fn = resolve_loss(loss)
    s = _steps(steps)
    eta = v.finite_scalar(eta, "eta", strict=True)
    chunk = v.positive_int(sample_chunk, "sample_chunk")
    edges = tuple(int(k) for k in np.diff(np.concatenate([[0], s])))
    with x64():
        arrays = _run(_program(loss_fn, N), z0, jnp.asarray(T[:, :N]), jnp.asarray(Y), eta, edges, chunk)
    return dict(zip(("logits", "probabilities", "train_logits", "train_loss"), arrays, strict=True))


def function_space_gd_from_kernels(K, Theta, Y_train, N_train: int, steps, eta: float, *, loss="cross_entropy",
                                   n_samples: int = DEFAULT_SAMPLES, seed: int = 0,
                                   sample_chunk: int = SAMPLE_CHUNK) -> FunctionSpaceGD:
    """The dynamics (10.3) from the output-layer kernels on 𝒜 ∪ ℬ (training inputs first).

    K, Theta : (N+M, N+M) NNGP kernel K^{(L)} and frozen NTK Θ^{(L)}; Y_train (N, n_out) targets (probability
    vectors for cross-entropy); steps : recording steps (0 = initialization); eta : GD step η > 0."""
    K, T = _check_square(K, Theta)
    N = v.positive_int(N_train, "N_train")
    if N > K.shape[0]:
        raise DeepEFTInputError(f"N_train = {N} exceeds the {K.shape[0]} inputs of K.")
    Y = targets(Y_train, N)
    name, loss_fn = resolve_loss(loss)
    s = _steps(steps)
    eta = v.finite_scalar(eta, "eta", strict=True)
    S = v.positive_int(n_samples, "n_samples")
    if S < 2:
        raise DeepEFTInputError("n_samples must be ≥ 2 (standard errors need two prior draws).")
    chunk = v.positive_int(sample_chunk, "sample_chunk")
    R = _prior_root(K)
    rng = np.random.default_rng(seed)
    n_out = Y.shape[1]
    edges = tuple(int(k) for k in np.diff(np.concatenate([[0], s])))
    parts: list[list[np.ndarray]] = [[], [], [], []]
    with x64():
        prog = _program(loss_fn, N)
        Tj, Yj = jnp.asarray(T[:, :N]), jnp.asarray(Y)
        for start in range(0, S, chunk):
            m = min(chunk, S - start)
            z0 = np.einsum("ab,sbo->sao", R, rng.standard_normal((m, R.shape[1], n_out)))  # z_i(0) ~ N(0, K) per i
            for lst, x in zip(parts, _run(prog, z0, Tj, Yj, eta, edges, chunk), strict=True):
                lst.append(x)
    arrays = [np.concatenate(p) for p in parts]
    ests = [Estimate(*mean_se(a)) for a in arrays]
    return FunctionSpaceGD(s, eta, name, S, *ests)


def function_space_gd(net: MLP, X_train, Y_train, X_test, steps, eta: float, *, loss="cross_entropy",
                      n_samples: int = DEFAULT_SAMPLES, seed: int = 0) -> FunctionSpaceGD:
    """Infinite-width GD with any loss (10.3)–(10.6): means over the prior z(0) ~ N(0, K^{(L)}) of the test and
    training outputs, softmax probabilities and training loss after ``steps`` steps of size ``eta``.

    Parameters
    ----------
    net : the architecture (its K^{(L)}, Θ^{(L)} on X_train ∪ X_test; λ_b, λ_W set Θ (8.6)).
    X_train (N, n_0), Y_train (N, n_L): for ``loss="cross_entropy"`` each row of Y_train is a probability vector.
    X_test (M, n_0); steps : int or increasing list (0 = initialization); eta : step size η.
    loss : ``"cross_entropy"``, ``"mse"`` (closed form: :func:`deepeft.gd_prediction`) or ℓ(z, y) → scalar.
    n_samples, seed : prior draws and their NumPy seed (fixed seed ⇒ identical results).
    """
    net = check_net(net)
    Xa = net.check_inputs(X_train, "X_train")
    Xb = net.check_inputs(X_test, "X_test")
    K, T = kernel_and_ntk(net, np.concatenate([Xa, Xb]), ntk=True)
    assert T is not None
    Y = targets(Y_train, Xa.shape[0], n_out=net.output_dim)
    return function_space_gd_from_kernels(K[-1], T[-1], Y, Xa.shape[0], steps, eta, loss=loss, n_samples=n_samples,
                                          seed=seed)
