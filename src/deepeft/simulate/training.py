"""Ensembles of MLPs trained by gradient descent, gradient flow or minibatch SGD (PDLT (7.8)–(7.11), (8.6)).

Network s of an ensemble with ``seed`` starts from exactly the parameters ``sample_params(net, seed, s)``
(key ``fold_in(PRNGKey(seed), s)``, :mod:`.forward`), so a trained ensemble and a random one share
their networks. The training loss is a sum over the training set 𝒜 (or the minibatch ℬ_t ⊂ 𝒜) of a
per-sample loss ℓ:

    ℒ_𝒜(θ) = Σ_{α∈𝒜} ℓ(z^{(L)}_α(θ), y_α),   MSE: ℓ = ½ Σ_i (z_i − y_i)²  (ε = z − y, (7.20)),
                                              cross-entropy: ℓ = −Σ_i y_i log softmax(z)_i  (6.11).

Updates use the book's tensorial learning rate (7.11) with the diagonal λ of (8.6):

    b^{(ℓ)}_i    ← b^{(ℓ)}_i    − η λ_b^{(ℓ)}            ∂ℒ/∂b^{(ℓ)}_i
    W^{(ℓ)}_{ij} ← W^{(ℓ)}_{ij} − η (λ_W^{(ℓ)}/n_{ℓ−1}) ∂ℒ/∂W^{(ℓ)}_{ij}

(plain GD with one step size η is λ_b = 1, λ_W = n_{ℓ−1}; λ comes from the :class:`~deepeft.MLP`). With
these λ the NTK H of one step, Δz = −η H ε + O(η²) (7.20), is the empirical NTK of
:func:`~deepeft.simulate.ntk.empirical_ntk` (the same λ-weighting (8.5)–(8.7)).

Methods
-------
* ``"gd"``: full-batch gradient descent (7.8)/(7.11), ``times`` in steps.
* ``"sgd"``: the same update on the minibatch ℬ_t of ``batch_size`` indices drawn iid uniformly from 𝒜 at
  step t (with replacement; :func:`deepeft.sgd.trainer.batch_indices` with the network's key, so the
  minibatches of network s depend only on (seed, s, t)); ``batch_size = N`` is not GD (repeats).
* ``"flow"``: gradient flow dθ_μ/dt = −Σ_ν λ_μν ∂ℒ/∂θ_ν, integrated by diffrax's adaptive Tsit5 with a
  PID step-size controller (``rtol``, ``atol``) and saved at ``times`` (continuous): GD with step η at
  step k approximates the flow at t = ηk (error O(η)).

Execution and determinism
-------------------------
A fixed **micro-batch** of B networks is vmapped (B depends only on the architecture, N and the loss,
or is given); a **chunk** of ``chunk_size`` networks (a multiple of B) is a ``lax.map`` over its
micro-batches in one compiled call, chunks are streamed one after another, and the last micro-batch is
padded with networks s ≥ n_networks that are dropped. Every micro-batch runs the identical program, so
results depend on (net, data, η, method, seed, B, dtype) and are **bit-identical for every chunk_size**.
With ``store="moments"`` nothing of size n_networks is kept: float64 shifted power sums of the outputs
(:mod:`.estimators`) are accumulated micro-batch by micro-batch in network order, so memory is bounded
by the chunk whatever the ensemble size.

References:
  Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory* (arXiv:2106.10165), (7.8)–(7.20), (8.6).
  Kidger, *On Neural Differential Equations* (arXiv:2202.02435) — diffrax.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from .._x64 import x64
from ..errors import DeepEFTInputError, suggest
from ..losses import LOSSES, resolve_loss
from ..network import MLP
from ..statistics import Estimate
from . import estimators as est
from . import forward as fw

__all__ = ["LOSSES", "METHODS", "TrainedEnsemble", "default_train_micro_batch", "gd_update", "lambda_tree", "train_ensemble"]

METHODS = ("gd", "sgd", "flow")
STORES = ("outputs", "moments")
_MB_BUDGET_FLOATS = 2**23  # per-micro-batch working set (≈ 32 MB in float32)
_CHUNK_BUDGET_FLOATS = 2**25  # per-chunk working set (≈ 128 MB in float32)
_MAX_CHUNK = 1024


# -- losses: deepeft.losses (shared with the infinite-width function-space dynamics) ---------------------------


# -- the update, one network --------------------------------------------------------------------


def lambda_tree(net: MLP):
    """Per-parameter step factors (8.6): (λ_W^{(ℓ)}/n_{ℓ−1}, λ_b^{(ℓ)}) per layer (Python floats)."""
    n = net.n
    return tuple((float(net.lambda_W[l - 1]) / n[l - 1], float(net.lambda_b[l - 1])) for l in range(1, net.L + 1))


def _total_loss(net: MLP, loss_fn, params, X, Y):
    """ℒ = Σ_α ℓ(z_α, y_α) over the rows of X."""
    z = fw.forward_preactivations(net, params, X)[-1]
    return jnp.sum(jax.vmap(loss_fn)(z, Y))


def _direction(net: MLP, loss_fn, params, X, Y):
    """−λ ∂ℒ/∂θ per parameter (8.6) (the gradient-flow vector field; GD adds η times it)."""
    g = jax.grad(functools.partial(_total_loss, net, loss_fn))(params, X, Y)
    return tuple((-lw * gW, -lb * gb) for (gW, gb), (lw, lb) in zip(g, lambda_tree(net), strict=True))


def gd_update(net: MLP, loss_fn, params, X, Y, eta):
    """One tensorial GD step (7.11), (8.6) of one network: θ ← θ − η λ ∂ℒ/∂θ (pure JAX)."""
    d = _direction(net, loss_fn, params, X, Y)
    return tuple((W + eta * dW, b + eta * db) for (W, b), (dW, db) in zip(params, d, strict=True))


# -- micro-batch programs ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Config:
    """Everything that fixes the compiled programs (hashable: the cache key)."""

    net: MLP
    loss: Callable
    method: str
    batch_size: int
    dtype: str
    rtol: float
    atol: float
    max_steps: int


def _outputs(cfg: _Config, params, X_tr, X_te):
    return fw.forward_preactivations(cfg.net, params, X_tr)[-1], fw.forward_preactivations(cfg.net, params, X_te)[-1]


@functools.lru_cache(maxsize=32)
def _programs(cfg: _Config):
    """(init, advance, record, flow) jitted over a chunk: arrays (k, B, ...), lax.map over k, vmap over B."""
    from ..sgd.trainer import batch_indices

    net, dt = cfg.net, jnp.dtype(cfg.dtype)

    def over_chunk(fn, n_batched):
        def mapped(*args):
            batched, shared = args[:n_batched], args[n_batched:]
            inner = jax.vmap(lambda *xs: fn(*xs, *shared))
            return jax.lax.map(lambda xs: inner(*xs), batched)

        return jax.jit(mapped)

    init = over_chunk(lambda key: fw.init_params(net, key, dt), 1)

    def advance_one(params, key, X, Y, eta, t0, nsteps):
        if cfg.method == "gd":
            return jax.lax.fori_loop(0, nsteps, lambda i, p: gd_update(net, cfg.loss, p, X, Y, eta), params)

        def sgd(i, p):
            idx = batch_indices(key, t0 + i, 1, cfg.batch_size, X.shape[0])[0]
            return gd_update(net, cfg.loss, p, X[idx], Y[idx], eta)

        return jax.lax.fori_loop(0, nsteps, sgd, params)

    advance = over_chunk(advance_one, 2)

    def record_one(params, X_tr, Y_tr, X_te):
        z_tr, z_te = _outputs(cfg, params, X_tr, X_te)
        return z_tr, z_te, jnp.sum(jax.vmap(cfg.loss)(z_tr, Y_tr))

    record = over_chunk(record_one, 1)

    def flow_one(params, X_tr, Y_tr, X_te, ts):
        import diffrax

        term = diffrax.ODETerm(lambda t, p, args: _direction(net, cfg.loss, p, X_tr, Y_tr))
        sol = diffrax.diffeqsolve(
            term, diffrax.Tsit5(), t0=0.0, t1=ts[-1], dt0=None, y0=params,
            saveat=diffrax.SaveAt(ts=ts, fn=lambda t, p, args: record_one(p, X_tr, Y_tr, X_te)),
            stepsize_controller=diffrax.PIDController(rtol=cfg.rtol, atol=cfg.atol),
            max_steps=cfg.max_steps, throw=False,
        )
        ok = sol.result == diffrax.RESULTS.successful
        return sol.ys, ok, sol.stats["num_steps"]

    flow = over_chunk(flow_one, 1)
    return init, advance, record, flow


# -- sizes ----------------------------------------------------------------------------------------


def _per_network_floats(net: MLP, N: int) -> int:
    """Working set of one network's training step: parameters, gradients, velocities and activations."""
    return 4 * net.num_parameters + 6 * N * sum(net.n[1:])


def default_train_micro_batch(net: MLP, N: int, n_networks: int | None = None) -> int:
    """Default number B of networks vmapped together: a power of two (1..256) keeping the micro-batch's
    working set near 2^23 floats, and no larger than the power of two ≥ n_networks (small ensembles are
    not padded). Depends only on the architecture, N and (below 256 networks) the ensemble size."""
    B = max(1, _MB_BUDGET_FLOATS // _per_network_floats(net, N))
    B = min(256, 2 ** math.floor(math.log2(B)))
    if n_networks is not None:
        B = min(B, 2 ** math.ceil(math.log2(max(1, n_networks))))
    return int(B)


# -- results ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class TrainedEnsemble:
    """Outputs of an ensemble of trained networks recorded at ``times`` (R of them).

    ``store="outputs"``: per network, ``train_outputs`` (M, R, N_train, n_L), ``test_outputs``
    (M, R, N_test, n_L) and ``train_loss`` (M, R) (float64 copies of the simulation dtype).
    ``store="moments"``: those are None and ``sums`` holds the float64 shifted power sums per split.
    Either way :meth:`mean` and :meth:`cov` give ensemble estimates with standard errors.
    ``final_params``: per layer (W (M, n_ℓ, n_{ℓ−1}), b (M, n_ℓ)) at the last time when requested.
    """

    net: MLP
    method: str
    loss: str
    eta: float | None
    times: np.ndarray
    n_networks: int
    seed: int
    batch_size: int | None
    micro_batch: int
    dtype: str
    store: str
    train_outputs: np.ndarray | None
    test_outputs: np.ndarray | None
    train_loss: np.ndarray | None
    sums: dict | None
    final_params: tuple | None
    solver_steps: np.ndarray | None = None

    def _sums(self, split: str) -> dict:
        if split not in ("train", "test"):
            raise DeepEFTInputError(f"split must be 'train' or 'test', got {split!r}.")
        if self.sums is not None:
            return self.sums[split]
        z = self.train_outputs if split == "train" else self.test_outputs
        assert z is not None  # per-network outputs are stored whenever sums are not
        return _power_sums(z.reshape(z.shape[0], z.shape[1], -1), z[:1].reshape(1, z.shape[1], -1).mean(0))

    def mean(self, split: str = "test") -> Estimate:
        """E[z_{i;δ}(t)] over networks: Estimate (R, N, n_L) (stderr inf for a single network)."""
        if self.sums is None and split in ("train", "test"):
            z = self.train_outputs if split == "train" else self.test_outputs
            assert z is not None  # per-network outputs are stored whenever sums are not
            se = z.std(0, ddof=1) / np.sqrt(z.shape[0]) if z.shape[0] > 1 else np.full(z.shape[1:], np.inf)
            return Estimate(z.mean(0), se)
        s = self._sums(split)
        m, se = est.mean_and_se(self.n_networks, s["shift"], s["S1"], np.diagonal(s["S2"], axis1=-2, axis2=-1))
        R = self.times.size
        return Estimate(m.reshape(R, -1, self.net.output_dim), se.reshape(R, -1, self.net.output_dim))

    def cov(self, split: str = "test") -> Estimate:
        """Cov over networks of z_{i1;δ1}(t), z_{i2;δ2}(t): Estimate (R, N, n_L, N, n_L) with standard errors."""
        s = self._sums(split)
        c, se = est.covariance(self.n_networks, s["S1"], s["S2"], s["S3"], s["S4"])
        R, nL = self.times.size, self.net.output_dim
        k = c.shape[-1] // nL
        return Estimate(c.reshape(R, k, nL, k, nL), se.reshape(R, k, nL, k, nL))

    def to_xarray(self):
        """xarray.Dataset of the per-network outputs (store="outputs") or of mean/cov (store="moments")."""
        import xarray as xr

        attrs = {"method": self.method, "loss": self.loss, "eta": np.nan if self.eta is None else self.eta,
                 "seed": self.seed, "n_networks": self.n_networks, "micro_batch": self.micro_batch, "dtype": self.dtype,
                 "net": repr(self.net)}
        coords = {"time": self.times}
        data: dict[str, Any]
        if self.store == "outputs":
            data = {
                "train_outputs": (("network", "time", "train_input", "output"), self.train_outputs),
                "test_outputs": (("network", "time", "test_input", "output"), self.test_outputs),
                "train_loss": (("network", "time"), self.train_loss),
            }
        else:
            m, c = self.mean("test"), self.cov("test")
            data = {
                "test_mean": (("time", "test_input", "output"), m.value),
                "test_mean_stderr": (("time", "test_input", "output"), m.stderr),
                "test_cov": (("time", "test_input", "output", "test_input2", "output2"), c.value),
                "test_cov_stderr": (("time", "test_input", "output", "test_input2", "output2"), c.stderr),
            }
        return xr.Dataset(data, coords=coords, attrs=attrs)


def _power_sums(f, shift):
    """Shifted power sums over networks of f (M, R, P): S1 (R, P), S2/S3/S4 (R, P, P) (see estimators)."""
    d = np.asarray(f, np.float64) - shift
    d2 = d * d
    return {
        "shift": shift,
        "S1": d.sum(0),
        "S2": np.einsum("mra,mrb->rab", d, d),
        "S3": np.einsum("mra,mrb->rab", d2, d),
        "S4": np.einsum("mra,mrb->rab", d2, d2),
    }


def _add_sums(acc, new):
    if acc is None:
        return new
    return {k: (acc[k] if k == "shift" else acc[k] + new[k]) for k in acc}


# -- validation -------------------------------------------------------------------------------------


def _check_targets(Y, N: int, n_L: int, name: str) -> np.ndarray:
    try:
        Y = np.asarray(Y, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeepEFTInputError(f"{name} must be a numeric array of shape (N, n_L) = ({N}, {n_L}).") from None
    if Y.ndim == 1 and n_L == 1 and Y.shape[0] == N:
        Y = Y[:, None]
    if Y.shape != (N, n_L):
        raise DeepEFTInputError(
            f"{name} must have shape (N, n_L) = ({N}, {n_L}) (one target row per input, "
            f"one column per output), got {Y.shape}."
        )
    if not np.all(np.isfinite(Y)):
        raise DeepEFTInputError(f"{name} contains NaN or inf; clean those targets.")
    return Y


def _check_times(times, method: str) -> np.ndarray:
    if times is None:
        raise DeepEFTInputError(
            "times is required: the steps (gd/sgd) or flow times at which outputs are "
            "recorded, e.g. times=[0, 10, 100]."
        )
    try:
        t = np.atleast_1d(np.asarray(times, dtype=np.float64))
    except (TypeError, ValueError):
        raise DeepEFTInputError(f"times must be a list of numbers (steps or flow times), got {times!r}.") from None
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)) or np.any(t < 0) or np.any(np.diff(t) <= 0):
        raise DeepEFTInputError(f"times must be a non-empty, strictly increasing list of numbers >= 0, got {times!r}.")
    if method != "flow":
        if np.any(t != np.round(t)):
            raise DeepEFTInputError(f"times are step counts for method={method!r}; they must be integers, got {times!r}.")
        return t.astype(np.int64)
    return t


# -- driver ------------------------------------------------------------------------------------------


def train_ensemble(
    net: MLP,
    X_train,
    Y_train,
    n_networks: int,
    *,
    times,
    eta: float | None = None,
    method: str = "gd",
    X_test=None,
    loss: str | Callable = "mse",
    batch_size: int | None = None,
    seed: int = 0,
    store: str = "outputs",
    chunk_size: int | None = None,
    micro_batch: int | None = None,
    dtype="float32",
    rtol: float = 1e-6,
    atol: float = 1e-8,
    max_steps: int = 100_000,
    return_params: bool = False,
) -> TrainedEnsemble:
    """Train networks s = 0..n_networks−1 (initialised as ``sample_params(net, seed, s)``) and record outputs.

    Parameters
    ----------
    net : the architecture; its C_b, C_W draw the initialisation (2.19)–(2.20), its λ_b, λ_W set the
        tensorial learning rates (8.6) (plain GD: λ_b = 1, λ_W = n_{ℓ−1}).
    X_train, Y_train : training inputs (N, n_0) and targets (N, n_L).
    n_networks : ensemble size M.
    times : recording points, strictly increasing: steps (``"gd"``, ``"sgd"``; 0 = initialisation) or
        gradient-flow times (``"flow"``).
    eta : global learning rate η > 0 (gd, sgd); not used by ``"flow"`` (time t plays ηk).
    method : ``"gd"``, ``"sgd"`` or ``"flow"`` (see the module docstring).
    X_test : inputs whose outputs are also recorded (default: none, an empty (0, n_0) set).
    loss : ``"mse"``, ``"cross_entropy"`` or a function ℓ(z, y) → scalar for one sample (z, y: (n_L,)).
    batch_size : minibatch size |ℬ| for ``"sgd"``.
    store : ``"outputs"`` (per-network arrays) or ``"moments"`` (streamed power sums only).
    chunk_size : networks per compiled call (a multiple of the micro-batch; results do not depend on it).
    micro_batch : networks vmapped together (default :func:`default_train_micro_batch`); results depend on it
        only at rounding level (batched vs unbatched GEMMs).
    dtype : ``"float32"`` (default) or ``"float64"``.
    rtol, atol, max_steps : diffrax PID controller tolerances and step limit (``"flow"``).
    return_params : also return the final parameters of every network.
    """
    net = fw.check_net(net)
    if method not in METHODS:
        raise DeepEFTInputError(f"unknown method {method!r}.{suggest(str(method), METHODS)} Use one of {METHODS}.")
    if store not in STORES:
        raise DeepEFTInputError(f"unknown store {store!r}.{suggest(str(store), STORES)} Use one of {STORES}.")
    X_train = net.check_inputs(X_train, "X_train")
    N = X_train.shape[0]
    Y_train = _check_targets(Y_train, N, net.output_dim, "Y_train")
    X_test = np.zeros((0, net.input_dim)) if X_test is None else net.check_inputs(X_test, "X_test")
    M = v.positive_int(n_networks, "n_networks")
    seed = fw.check_seed(seed)
    ts = _check_times(times, method)
    if method == "flow" and ts[-1] <= 0:
        raise DeepEFTInputError("method='flow' needs a final time > 0 in times.")
    if method == "flow" and return_params:
        raise DeepEFTInputError("return_params is not available for method='flow' (the solver saves outputs only).")
    loss_name, loss_fn = resolve_loss(loss)
    if method == "flow":
        if eta is not None:
            raise DeepEFTInputError(
                "method='flow' integrates dθ/dt = −λ∂ℒ/∂θ; its time t plays ηk, so "
                "pass eta=None and give flow times."
            )
        eta_v = None
    else:
        if eta is None:
            raise DeepEFTInputError(
                f"method={method!r} needs a learning rate eta > 0 (per-parameter "
                "steps ηλ_b, ηλ_W/n_(ℓ−1) (8.6))."
            )
        eta_v = v.finite_scalar(eta, "eta", strict=True)
    if method == "sgd":
        if batch_size is None:
            raise DeepEFTInputError("method='sgd' needs batch_size (the minibatch size |B|, 1 ≤ |B| ≤ N).")
        B_sgd = v.positive_int(batch_size, "batch_size")
        if B_sgd > N:
            raise DeepEFTInputError(
                f"batch_size {B_sgd} exceeds the number of training inputs N = {N}; "
                "lower it or use method='gd'."
            )
    elif batch_size is not None:
        raise DeepEFTInputError(f"batch_size is for method='sgd' only (method={method!r} uses the full batch).")
    else:
        B_sgd = 0
    dt_name = fw.check_dtype(dtype)
    dt = jnp.dtype(dt_name)
    B = default_train_micro_batch(net, N, M) if micro_batch is None else v.positive_int(micro_batch, "micro_batch")
    n_mb = -(-M // B)
    if chunk_size is None:
        per = max(1, _CHUNK_BUDGET_FLOATS // (B * _per_network_floats(net, N)))
        k = max(1, min(n_mb, per, max(1, _MAX_CHUNK // B)))
    else:
        c = v.positive_int(chunk_size, "chunk_size")
        if c % B:
            raise DeepEFTInputError(f"chunk_size {c} must be a multiple of the micro-batch B = {B} (e.g. {B * max(1, c // B)}).")
        k = min(c // B, n_mb)
    rtol_v = v.finite_scalar(rtol, "rtol (relative tolerance of the flow solver)", strict=True)
    atol_v = v.finite_scalar(atol, "atol (absolute tolerance of the flow solver)")
    cfg = _Config(net, loss_fn, method, B_sgd, dt_name, rtol_v, atol_v, v.positive_int(max_steps, "max_steps"))
    try:
        out_shape = jax.eval_shape(loss_fn, jnp.zeros(net.output_dim), jnp.zeros(net.output_dim)).shape
    except Exception as e:  # noqa: BLE001 - any failure of a user's function is reported as bad input
        raise DeepEFTInputError(f"loss {loss_name!r} failed on (z, y) of shape ({net.output_dim},): {e}") from None
    if out_shape != ():
        raise DeepEFTInputError(
            "loss must return a scalar per sample (z, y of shape "
            f"({net.output_dim},)), got shape {out_shape}."
        )

    R = ts.size
    keep = store == "outputs"
    Ntr, Nte, nL = N, X_test.shape[0], net.output_dim
    if keep:
        z_tr_all = np.empty((M, R, Ntr, nL))
        z_te_all = np.empty((M, R, Nte, nL))
        loss_all = np.empty((M, R))
    sums = {"train": None, "test": None}
    finals: list = []  # final parameters per chunk (return_params)
    steps_all = np.empty((M,), np.int64)  # solver steps per network (flow)
    init, advance, record, flow = _programs(cfg)

    with x64():
        Xtr, Ytr, Xte = (jnp.asarray(a, dt) for a in (X_train, Y_train, X_test))
        eta_j = None if eta_v is None else jnp.asarray(eta_v, dt)
        ts_j = jnp.asarray(ts, dt)
        shift = {"train": None, "test": None}
        for lo in range(0, n_mb * B, k * B):
            kk = k  # fixed chunk shape: the last chunk is padded to k micro-batches (no recompilation)
            ids = np.arange(lo, lo + kk * B, dtype=np.uint32)
            keys = jax.vmap(lambda s: fw.network_key(seed, s))(jnp.asarray(ids)).reshape(kk, B, -1)
            params = init(keys)
            if method == "flow":
                (z_tr, z_te, lval), ok, nsteps = flow(params, Xtr, Ytr, Xte, ts_j)
                ok, nsteps = np.asarray(ok).ravel(), np.asarray(nsteps).ravel()
                valid = ids < M
                if not np.all(ok[valid]):
                    raise DeepEFTInputError(
                        f"gradient flow did not reach t = {ts[-1]:g} within max_steps = {cfg.max_steps} for some networks "
                        "(stiff dynamics); raise max_steps, loosen rtol/atol, or lower the final time."
                    )
                z_tr, z_te, lval = (np.asarray(a, np.float64).reshape(kk * B, *a.shape[2:]) for a in (z_tr, z_te, lval))
                steps_all[lo : min(M, lo + kk * B)] = nsteps[valid]
            else:
                rec = []
                for r in range(R):
                    if r > 0 or ts[0] > 0:
                        t0 = 0 if r == 0 else int(ts[r - 1])
                        params = advance(params, keys, Xtr, Ytr, eta_j, jnp.int32(t0), jnp.int32(int(ts[r]) - t0))
                    rec.append(record(params, Xtr, Ytr, Xte))
                z_tr = np.stack([np.asarray(a[0], np.float64) for a in rec], axis=2).reshape(kk * B, R, Ntr, nL)
                z_te = np.stack([np.asarray(a[1], np.float64) for a in rec], axis=2).reshape(kk * B, R, Nte, nL)
                lval = np.stack([np.asarray(a[2], np.float64) for a in rec], axis=2).reshape(kk * B, R)
            n_valid = int(min(M, lo + kk * B) - lo)
            if keep:
                sl = slice(lo, lo + n_valid)
                z_tr_all[sl], z_te_all[sl], loss_all[sl] = z_tr[:n_valid], z_te[:n_valid], lval[:n_valid]
            else:
                for split, z in (("train", z_tr), ("test", z_te)):
                    f = z.reshape(kk * B, R, -1)
                    if shift[split] is None:
                        shift[split] = f[:B].mean(0)  # the first micro-batch fixes the shift
                    for j in range(0, n_valid, B):  # micro-batch by micro-batch: order independent of chunking
                        sums[split] = _add_sums(sums[split], _power_sums(f[j : min(j + B, n_valid)], shift[split]))
            if return_params:
                finals.append(jax.tree.map(lambda a, kk=kk, nv=n_valid: np.asarray(a).reshape(kk * B, *a.shape[2:])[:nv], params))
    final = None
    solver_steps = steps_all if method == "flow" else None
    if return_params:
        final = jax.tree.map(lambda *xs: np.concatenate(xs, axis=0), *finals)
    return TrainedEnsemble(
        net=net, method=method, loss=loss_name, eta=eta_v, times=ts, n_networks=M, seed=seed,
        batch_size=B_sgd or None, micro_batch=B, dtype=dt_name, store=store,
        train_outputs=z_tr_all if keep else None, test_outputs=z_te_all if keep else None,
        train_loss=loss_all if keep else None, sums=None if keep else sums, final_params=final, solver_steps=solver_steps,
    )
