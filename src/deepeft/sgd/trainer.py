"""Vectorised ensemble training: all hyperparameter points × all members in one compiled program.

Updates (Park, Lucini & Aarts 2025, §2.6), one per step t, for every point p with learning rate ε_p:

* ``"sgd"``      W′ = W − ε Δ_B, Δ_B the minibatch mean of per-sample gradients (2.28); minibatches
                 of |B| indices drawn iid uniformly from D (with replacement), as (2.29) assumes.
* ``"gd"``       full-batch gradient descent, W′ = W − ε E[Δ] (T = 0).
* ``"langevin"`` W′ = W − ε E[Δ] + √(ε² V[Δ]/|B|) η, η ~ N(0, 1) (2.29): E and V are the elementwise
                 mean and variance of the per-sample gradient over the whole training set;
                 T = ε/|B| (2.30). Costs |D|/|B| times an SGD step — for small studies.

Execution: members are processed in chunks (``member_chunk`` members per compiled call, one after
the other via ``lax.map``; all P points of a member stacked into one wide layer, see
:mod:`.teacher_student`), each member advanced by a ``lax.fori_loop`` between recording times so
its parameters stay in cache. SGD minibatch indices are drawn per block of ``INDEX_BLOCK`` steps in one
vectorised threefry call (the per-step definition is unchanged; drawing them one step at a time
cost about as much as the step itself — measured 1.6× slower on the paper grid). Chunks run on
``workers`` threads (XLA releases the GIL). The problem of a chunk is generated inside the
worker from the members' keys, so nothing of size M is held but the recorded observables.
Results depend only on (setup, hyperparameters, seed, dtype): not on chunking or threads.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _validate as v
from ..errors import DeepEFTInputError, suggest
from . import observables as obs
from .teacher_student import (
    STREAM_BATCH,
    STREAM_NOISE,
    TeacherStudent,
    from_user_layout,
    init_params,
    losses,
    mse,
    sample_problem,
    student_outputs,
    to_user_layout,
)

__all__ = ["EnsembleRun", "train_ensemble", "continue_ensemble", "record_times", "phase_grid", "gradient_moments",
           "METHODS"]

METHODS = ("sgd", "gd", "langevin")


def record_times(steps: int, n_records: int = 30) -> np.ndarray:
    """0 and ~n_records log-spaced integer times in [1, steps] (always including ``steps``)."""
    steps = v.positive_int(steps, "steps")
    n = v.positive_int(n_records, "n_records")
    t = np.unique(np.round(np.logspace(0, np.log10(steps), n)).astype(np.int64))
    return np.concatenate([[0], t[(t > 0) & (t <= steps)]])


def phase_grid(temperatures, inv_sigma_W, batch_size: int = 4) -> dict:
    """Flattened T × 1/σ_W grid: learning rates ε = T|B| (2.30) and σ_W per point (P = nT·nσ, T-major)."""
    T = np.asarray(temperatures, dtype=np.float64).ravel()
    s = np.asarray(inv_sigma_W, dtype=np.float64).ravel()
    if T.size == 0 or s.size == 0 or np.any(T <= 0) or np.any(s <= 0) or not np.all(np.isfinite(np.r_[T, s])):
        raise DeepEFTInputError("temperatures and inv_sigma_W must be non-empty arrays of finite positive numbers.")
    TT, SS = np.meshgrid(T, s, indexing="ij")
    return {
        "learning_rate": (TT * batch_size).ravel(),
        "sigma_W": (1.0 / SS).ravel(),
        "grid_shape": (T.size, s.size),
        "temperature": T,
        "inv_sigma_W": s,
    }


# -- one step of each method (one member, P points) -----------------------------------------


def _grads(setup, params, frozen, a, y):
    """Per-point gradients of ℒ (2.6) for all trainable leaves (points are independent: grad of the sum).

    The first trainable layer's weight gradient is assembled as aᵀδ (δ = ∂ℒ/∂z by autodiff through a
    zero perturbation of z), which lands directly in the internal (n_in, P·n_out) layout — autodiff
    of W itself would produce the transposed layout and a copy every step.
    """
    first = params[0]
    n_in, P, n_out = first["W"].shape
    head = ({**first, "W": jax.lax.stop_gradient(first["W"])},) + tuple(params[1:])
    e0 = jnp.zeros((a.shape[0], P, n_out), first["W"].dtype)

    def total(ps, e):
        return losses(setup, ps, frozen, a, y, e, setup.first_trainable).sum()

    g, delta = jax.grad(total, argnums=(0, 1))(head, e0)
    gW = (a.T @ delta.reshape(a.shape[0], P * n_out)).reshape(n_in, P, n_out)
    return ({**g[0], "W": gW},) + tuple(g[1:])


def _apply(params, direction, lr):
    """θ_p ← θ_p − ε_p d_p for every trainable leaf (W: (n_in, P, n_out), b: (P, n_out))."""
    out: list[Any] = []
    for p, d in zip(params, direction):
        if p is None:
            out.append(None)
            continue
        W = p["W"] - lr[None, :, None] * d["W"]
        b = None if p["b"] is None else p["b"] - lr[:, None] * d["b"]
        out.append({"W": W, "b": b})
    return tuple(out)


def _sgd_update(setup, params, frozen, a, y, lr):
    """One SGD update (2.28) of all trainable leaves on the minibatch (a, y) (|B| = a.shape[0])."""
    return _apply(params, _grads(setup, params, frozen, a, y), lr)


def _data_chunk(n: int, cap: int = 128) -> int:
    return max(d for d in range(1, min(n, cap) + 1) if n % d == 0)


def gradient_moments(setup, params, frozen, a, y):
    """Elementwise mean E[Δ] and variance V[Δ] of the per-sample gradient Δ_α = ∂ℓ(x_α)/∂θ over (a, y)."""
    n = a.shape[0]
    c = _data_chunk(n)
    per_sample = jax.vmap(lambda ai, yi: _grads(setup, params, frozen, ai[None], yi[None]))

    def body(acc, xs):
        g = per_sample(*xs)
        s1 = jax.tree.map(lambda s, x: s + x.sum(0), acc[0], g)
        s2 = jax.tree.map(lambda s, x: s + (x * x).sum(0), acc[1], g)
        return (s1, s2), None

    zeros = jax.tree.map(jnp.zeros_like, params)
    xs = (a.reshape(n // c, c, *a.shape[1:]), y.reshape(n // c, c, *y.shape[1:]))
    (s1, s2), _ = jax.lax.scan(body, (zeros, zeros), xs)
    mean = jax.tree.map(lambda s: s / n, s1)
    var = jax.tree.map(lambda s, m: jnp.maximum(s / n - m * m, 0.0), s2, mean)
    return mean, var


def _langevin_noise(key, params, t):
    """η for one member at step t, shared by its P points (common random numbers)."""
    k = jax.random.fold_in(key, t)
    out: list[Any] = []
    for j, p in enumerate(params):
        if p is None:
            out.append(None)
            continue
        kW, kb = jax.random.split(jax.random.fold_in(k, j))
        n_in, P, n_out = p["W"].shape
        eW = jnp.broadcast_to(jax.random.normal(kW, (n_in, 1, n_out), p["W"].dtype), p["W"].shape)
        eb = None
        if p["b"] is not None:
            eb = jnp.broadcast_to(jax.random.normal(kb, (1, n_out), p["b"].dtype), p["b"].shape)
        out.append({"W": eW, "b": eb})
    return tuple(out)


#: SGD steps whose minibatch indices are drawn together (one vectorised threefry call per block);
#: fewer when the block's gathered minibatches would exceed _BLOCK_FLOATS (large |B| or wide inputs).
INDEX_BLOCK = 128
_BLOCK_FLOATS = 1 << 20


def batch_indices(key, t0, n_steps: int, batch_size: int, n_train: int):
    """Minibatch indices of steps t0 … t0+n_steps−1 for one member, shape (n_steps, |B|).

    Step t draws |B| indices iid uniform in [0, |D|) from ``fold_in(fold_in(key, STREAM_BATCH), t)``:
    the definition is per step, so the indices do not depend on how steps are blocked; drawing a block
    at once (vmap over t) replaces n_steps small threefry calls by one vectorised call.
    """
    kb = jax.random.fold_in(key, STREAM_BATCH)
    ts = t0 + jnp.arange(n_steps, dtype=jnp.int32)
    return jax.vmap(lambda t: jax.random.randint(jax.random.fold_in(kb, t), (batch_size,), 0, n_train))(ts)


def _sgd_advance(setup, batch_size, params, frozen, a, y, key, lr, t0, nsteps):
    """nsteps SGD updates (2.28) of one member from step t0: indices drawn per block of ≤ INDEX_BLOCK steps."""
    S = int(max(1, min(INDEX_BLOCK, _BLOCK_FLOATS // (batch_size * (a.shape[1] + y.shape[1])))))

    def block(b, p):
        idx = batch_indices(key, t0 + b * S, S, batch_size, a.shape[0])
        A, Y = a[idx], y[idx]  # (S, |B|, n_in), (S, |B|, n_L)

        def one(i, q):
            return _sgd_update(setup, q, frozen, A[i], Y[i], lr)

        return jax.lax.fori_loop(0, jnp.minimum(S, nsteps - b * S), one, p)

    return jax.lax.fori_loop(0, (nsteps + S - 1) // S, block, params)


def _step(setup, method, batch_size, params, frozen, a, y, key, lr, t):
    if method == "sgd":
        idx = batch_indices(key, t, 1, batch_size, a.shape[0])[0]
        return _sgd_update(setup, params, frozen, a[idx], y[idx], lr)
    if method == "gd":
        return _apply(params, _grads(setup, params, frozen, a, y), lr)
    mean, var = gradient_moments(setup, params, frozen, a, y)
    eta = _langevin_noise(jax.random.fold_in(key, STREAM_NOISE), params, t)
    scale = 1.0 / np.sqrt(batch_size)
    direction = jax.tree.map(lambda m, s, e: m - jnp.sqrt(s) * scale * e, mean, var, eta)
    return _apply(params, direction, lr)


# -- compiled kernels (cached per setup / method / batch size) ----------------------------------


@functools.lru_cache(maxsize=16)
def _kernels(setup: TeacherStudent, method: str, batch_size: int):
    step = functools.partial(_step, setup, method, batch_size)

    def advance_one(params, frozen, a, y, key, lr, t0, nsteps):
        if method == "sgd":
            return _sgd_advance(setup, batch_size, params, frozen, a, y, key, lr, t0, nsteps)
        return jax.lax.fori_loop(0, nsteps, lambda i, p: step(p, frozen, a, y, key, lr, t0 + i), params)

    advance = jax.jit(_over_members(advance_one, 5))

    def record_one(params, noise, frozen, a, y, sigma_W):
        params0 = init_params(noise, sigma_W, setup)
        phi, out = student_outputs(setup, params, frozen, a)
        phi0, _ = student_outputs(setup, params0, frozen, a)
        loss = mse(out, y)
        h = obs.external_field(setup, params, frozen, y)
        j = setup.tracked_layer - setup.first_trainable
        return {
            "test_loss": loss,
            "G": obs.feature_correlation(phi, phi0),
            "G_self": obs.feature_correlation(phi, phi),
            "alignment": obs.alignment(h, phi),
            "X": obs.gram(params[j]["W"]),
        }

    record = jax.jit(_over_members(record_one, 5))
    gnorm = jax.jit(_over_members(functools.partial(obs.gradient_norm, setup), 4))
    init = jax.jit(_over_members(lambda noise, s: init_params(noise, s, setup), 1))
    return advance, record, gnorm, init


def finite_eigvalsh(X) -> np.ndarray:
    """Ascending eigenvalues of symmetric matrices (..., n, n) by LAPACK; NaN for a matrix with a non-finite
    entry (a diverged model, e.g. an unbounded activation at high T: LAPACK would raise for the whole batch)."""
    X = np.asarray(X, np.float64)
    ok = np.isfinite(X).all(axis=(-2, -1))
    out = np.full(X.shape[:-1], np.nan)
    if ok.any():
        out[ok] = np.linalg.eigvalsh(X[ok])
    return out


def _over_members(fn, n_batched: int):
    """fn over the leading member axis of its first ``n_batched`` arguments, one member after the other
    (``lax.map``, not ``vmap``): every member runs the identical unbatched program, so results are
    bit-identical whatever the chunk size."""

    def mapped(*args):
        batched, shared = args[:n_batched], args[n_batched:]
        return jax.lax.map(lambda xs: fn(*xs, *shared), batched)

    return mapped


# -- results ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EnsembleRun:
    """Recorded observables of an ensemble training run (axes: time R, member M, point P).

    test_loss, G (3.4), alignment (3.5), G_self = G(t, t) (the features' mean square, so that
    G(t, 0)/√(G(t, t) G(0, 0)) is a correlation coefficient for any activation): (R, M, P);
    eigenvalues of X (4.1): (R, M, P, n_ℓ);
    grad_norm_init / grad_norm (3.3) and train_loss_init / train_loss on the training set at
    t = 0 and t = steps: (M, P); teacher_eigenvalues: X of the teacher's spectral layer (M, n_ℓ);
    final_params: trainable parameters at t = steps in the user layout (per layer {"W": (M, P, n_ℓ,
    n_{ℓ−1}), "b": (M, P, n_ℓ) or None}, None at frozen layers).
    """

    setup: TeacherStudent
    method: str
    learning_rate: np.ndarray
    sigma_W: np.ndarray
    batch_size: int
    members: int
    steps: int
    seed: int
    times: np.ndarray
    test_loss: np.ndarray
    G: np.ndarray
    alignment: np.ndarray
    eigenvalues: np.ndarray
    grad_norm_init: np.ndarray
    grad_norm: np.ndarray
    train_loss_init: np.ndarray
    train_loss: np.ndarray
    teacher_eigenvalues: np.ndarray
    final_params: tuple
    grid_shape: tuple[int, ...] | None = None
    dtype: str = "float32"
    G_self: np.ndarray | None = None

    @property
    def temperature(self) -> np.ndarray:
        """T = ε/|B| per point (2.30); 0 for full-batch gradient descent."""
        if self.method == "gd":
            return np.zeros_like(self.learning_rate)
        return self.learning_rate / self.batch_size

    def to_xarray(self):
        """xarray.Dataset; with a grid_shape the point axis is split into (T, inv_sigma_W)."""
        import xarray as xr

        P = self.learning_rate.size
        coords = {"time": self.times, "member": np.arange(self.members)}
        data = {
            "test_loss": (("time", "member", "point"), self.test_loss),
            "G": (("time", "member", "point"), self.G),
            **({} if self.G_self is None else {"G_self": (("time", "member", "point"), self.G_self)}),
            "alignment": (("time", "member", "point"), self.alignment),
            "eigenvalues": (("time", "member", "point", "level"), self.eigenvalues),
            "grad_norm_init": (("member", "point"), self.grad_norm_init),
            "grad_norm": (("member", "point"), self.grad_norm),
            "train_loss_init": (("member", "point"), self.train_loss_init),
            "train_loss": (("member", "point"), self.train_loss),
            "teacher_eigenvalues": (("member", "level"), self.teacher_eigenvalues),
            "learning_rate": (("point",), self.learning_rate),
            "sigma_W": (("point",), self.sigma_W),
            "T": (("point",), self.temperature),
        }
        ds = xr.Dataset(data, coords={**coords, "point": np.arange(P)})
        ds.attrs.update(method=self.method, batch_size=self.batch_size, steps=self.steps, seed=self.seed,
                        dtype=self.dtype, widths=list(self.setup.n), trainable=list(self.setup.trainable),
                        activation=self.setup.teacher.activation.name)
        if self.grid_shape is not None and len(self.grid_shape) == 2 and int(np.prod(self.grid_shape)) == P:
            nT, ns = self.grid_shape
            T = self.temperature.reshape(nT, ns)[:, 0]
            s = (1.0 / self.sigma_W).reshape(nT, ns)[0]
            ds = ds.assign_coords(T_index=("point", np.repeat(np.arange(nT), ns)),
                                  s_index=("point", np.tile(np.arange(ns), nT)))
            ds = ds.set_index(point=["T_index", "s_index"]).unstack("point")
            ds = ds.rename({"T_index": "T_axis", "s_index": "inv_sigma_W_axis"})
            ds = ds.assign_coords(T_value=("T_axis", T), inv_sigma_W=("inv_sigma_W_axis", s))
        return ds


# -- driver -------------------------------------------------------------------------------------


def _chunk_size(setup: TeacherStudent, P: int) -> int:
    """Members per compiled call: enough model-steps per call to hide dispatch (≥ ~4e4 parameters)."""
    per_member = setup.trainable_parameter_count() * P
    return int(max(1, min(64, 40_000 // max(per_member, 1))))


def train_ensemble(
    setup: TeacherStudent,
    learning_rate,
    sigma_W,
    *,
    members: int = 100,
    steps: int = 100_000,
    batch_size: int = 4,
    method: str = "sgd",
    seed: int = 0,
    times=None,
    n_records: int = 30,
    member_chunk: int | None = None,
    workers: int | None = None,
    dtype=jnp.float32,
    grid_shape: tuple[int, ...] | None = None,
    progress=None,
) -> EnsembleRun:
    """Train ``members`` teacher–student pairs at every hyperparameter point (ε_p, σ_W,p).

    learning_rate, sigma_W: broadcast to one flat array of P points (see :func:`phase_grid`).
    times: recording steps (default :func:`record_times`); must start at 0 and increase.
    progress: optional callable(done_members, total_members).
    """
    if not isinstance(setup, TeacherStudent):
        raise DeepEFTInputError("setup must be a TeacherStudent (e.g. TeacherStudent.paper()).")
    if method not in METHODS:
        raise DeepEFTInputError(f"unknown method {method!r}.{suggest(str(method), METHODS)} Use one of {METHODS}.")
    lr, sw = np.broadcast_arrays(np.asarray(learning_rate, np.float64).ravel(), np.asarray(sigma_W, np.float64).ravel())
    if lr.size == 0 or np.any(~np.isfinite(lr)) or np.any(lr <= 0) or np.any(~np.isfinite(sw)) or np.any(sw <= 0):
        raise DeepEFTInputError("learning_rate and sigma_W must be finite and > 0 (one value per point, or scalars).")
    M = v.positive_int(members, "members")
    steps = v.positive_int(steps, "steps")
    B = v.positive_int(batch_size, "batch_size")
    if method != "gd" and B > setup.n_train:
        raise DeepEFTInputError(f"batch_size {B} exceeds n_train = {setup.n_train}; lower it or use method='gd'.")
    ts = record_times(steps, n_records) if times is None else np.asarray(times, dtype=np.int64)
    if ts.ndim != 1 or ts[0] != 0 or np.any(np.diff(ts) <= 0) or ts[-1] != steps:
        raise DeepEFTInputError(f"times must start at 0, strictly increase and end at steps = {steps}.")
    dtype = jnp.dtype(dtype)
    if dtype not in (jnp.float32, jnp.float64):
        raise DeepEFTInputError(f"dtype must be float32 or float64, got {dtype}.")
    return _execute(setup, method, lr, sw, M, B, seed, ts, dtype, member_chunk, workers, grid_shape, progress)


def continue_ensemble(
    run: EnsembleRun,
    steps: int,
    *,
    method: str | None = None,
    learning_rate=None,
    times=None,
    n_records: int = 2,
    member_chunk: int | None = None,
    workers: int | None = None,
    dtype=None,
    progress=None,
) -> EnsembleRun:
    """Advance a finished run by ``steps`` more steps from its final parameters (absolute time t_f … t_f + steps).

    With the run's own method and learning rates this is *exactly* longer training: SGD minibatch
    indices and Langevin noise are defined per absolute step, so ``continue_ensemble(train_ensemble(…,
    steps=a), b)`` equals ``train_ensemble(…, steps=a + b)`` (tested). With ``method="gd"`` (and, e.g.,
    a smaller ``learning_rate``) it is a noise-free *quench* of the t_f weights (used by
    :func:`~deepeft.sgd.dbm_analysis` with ``drift="quenched"``).

    times: absolute recording steps, from run.steps to run.steps + steps (default: ``n_records`` − 1
    log-spaced intervals; 2 → just the two ends). The returned run's grad_norm_init / train_loss_init
    are at run.steps; G(t, 0) (3.4) still refers to the features at t = 0. dtype: default the run's; float64
    continues a float32 run in double precision (the data are regenerated in that precision).
    """
    if not isinstance(run, EnsembleRun):
        raise DeepEFTInputError("run must be an EnsembleRun returned by train_ensemble or continue_ensemble.")
    method = run.method if method is None else method
    if method not in METHODS:
        raise DeepEFTInputError(f"unknown method {method!r}.{suggest(str(method), METHODS)} Use one of {METHODS}.")
    steps = v.positive_int(steps, "steps")
    lr = run.learning_rate if learning_rate is None else np.asarray(learning_rate, np.float64).ravel()
    lr = np.broadcast_to(lr, run.learning_rate.shape).astype(np.float64)
    if np.any(~np.isfinite(lr)) or np.any(lr <= 0):
        raise DeepEFTInputError("learning_rate must be finite and > 0 (one value per point, or a scalar).")
    t0 = int(run.steps)
    if times is None:
        ts = t0 + record_times(steps, max(1, v.positive_int(n_records, "n_records") - 1))
        if n_records <= 2:
            ts = np.array([t0, t0 + steps])
    else:
        ts = np.asarray(times, dtype=np.int64)
    if ts.ndim != 1 or ts[0] != t0 or np.any(np.diff(ts) <= 0) or ts[-1] != t0 + steps:
        raise DeepEFTInputError(f"times must start at run.steps = {t0}, strictly increase and end at {t0 + steps}.")
    dt = jnp.dtype(run.dtype if dtype is None else dtype)
    if dt not in (jnp.float32, jnp.float64):
        raise DeepEFTInputError(f"dtype must be float32 or float64, got {dt}.")
    return _execute(run.setup, method, lr, run.sigma_W, run.members, run.batch_size, run.seed, ts,
                    dt, member_chunk, workers, run.grid_shape, progress, start=run.final_params)


def _execute(setup, method, lr, sw, M, B, seed, ts, dtype, member_chunk, workers, grid_shape, progress, start=None):
    """Train (or, with ``start`` = final parameters of a run in the user layout, continue) every member
    chunk over the recording times ``ts`` (absolute steps)."""
    P = lr.size
    c = _chunk_size(setup, P) if member_chunk is None else v.positive_int(member_chunk, "member_chunk")
    c = min(c, M)
    nw = min(2, os.cpu_count() or 1) if workers is None else v.positive_int(workers, "workers")
    advance, record, gnorm, init = _kernels(setup, method, B)
    n_out = setup.spectral_shape[0]
    R = ts.size
    res = {k: np.empty((R, M, P), np.float64) for k in ("test_loss", "G", "G_self", "alignment")}
    res["eigenvalues"] = np.empty((R, M, P, n_out), dtype)
    for k in ("grad_norm_init", "grad_norm", "train_loss_init", "train_loss"):
        res[k] = np.empty((M, P), np.float64)
    res["teacher_eigenvalues"] = np.empty((M, n_out), np.float64)
    finals: list = [None] * ((M + c - 1) // c)
    j_spec = setup.tracked_layer - setup.first_trainable

    def run_chunk(ci):
        with jax.enable_x64(dtype == jnp.float64):
            lo, hi = ci * c, min(M, (ci + 1) * c)
            ids = np.arange(lo, lo + c)  # fixed chunk shape (no recompilation); extra members dropped
            prob = sample_problem(setup, ids, seed, dtype)
            lr_j, sw_j = jnp.asarray(lr, dtype), jnp.asarray(sw, dtype)
            if start is None:
                params = init(prob.init_noise, sw_j)
            else:  # padded members (beyond hi) repeat the chunk's last member; their results are dropped
                rows = np.minimum(np.arange(lo, lo + c), hi - 1)
                params = from_user_layout(jax.tree.map(lambda x: jnp.asarray(np.asarray(x)[rows], dtype), start))
            keys = prob.keys
            sl = slice(0, hi - lo)

            def rec(r, params):
                out = record(params, prob.init_noise, prob.frozen, prob.a_test, prob.y_test, sw_j)
                X = np.asarray(out.pop("X"), np.float64)[sl]  # LAPACK eigvalsh: far cheaper than XLA's eigh
                with np.errstate(over="ignore"):  # a diverging model's eigenvalues beyond float32 are stored as inf
                    res["eigenvalues"][r, lo:hi] = finite_eigvalsh(X)
                for k, val in out.items():
                    res[k][r, lo:hi] = np.asarray(val)[sl]

            rec(0, params)
            g0, l0 = gnorm(params, prob.frozen, prob.a_train, prob.y_train)
            res["grad_norm_init"][lo:hi], res["train_loss_init"][lo:hi] = np.asarray(g0)[sl], np.asarray(l0)[sl]
            for r in range(1, R):
                params = advance(params, prob.frozen, prob.a_train, prob.y_train, keys, lr_j,
                                 jnp.int32(ts[r - 1]), jnp.int32(ts[r] - ts[r - 1]))
                rec(r, params)
            g1, l1 = gnorm(params, prob.frozen, prob.a_train, prob.y_train)
            res["grad_norm"][lo:hi], res["train_loss"][lo:hi] = np.asarray(g1)[sl], np.asarray(l1)[sl]
            Wt = prob.teacher_trainable[j_spec]["W"]  # (c, n_out, n_in) teacher layout
            res["teacher_eigenvalues"][lo:hi] = np.linalg.eigvalsh(
                np.einsum("mik,mjk->mij", np.asarray(Wt, np.float64), np.asarray(Wt, np.float64)))[sl]
            finals[ci] = jax.tree.map(lambda x: np.asarray(x)[sl], to_user_layout(params))
            return hi - lo

    n_chunks = len(finals)
    done = 0
    if nw == 1 or n_chunks == 1:
        for ci in range(n_chunks):
            done += run_chunk(ci)
            if progress:
                progress(done, M)
    else:
        with cf.ThreadPoolExecutor(nw) as ex:
            for f in cf.as_completed([ex.submit(run_chunk, ci) for ci in range(n_chunks)]):
                done += f.result()
                if progress:
                    progress(done, M)
    final = jax.tree.map(lambda *xs: np.concatenate(xs, axis=0), *finals)
    return EnsembleRun(
        setup=setup, method=method, learning_rate=lr.copy(), sigma_W=sw.copy(), batch_size=B, members=M,
        steps=int(ts[-1]), seed=int(seed), times=ts, final_params=final, grid_shape=grid_shape,
        dtype=str(np.dtype(dtype)), **res,
    )
