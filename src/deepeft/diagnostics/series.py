"""Checkpoint series: record per-layer spectra (or weights) during a user's training into Zarr, resumably.

Store layout (Zarr v3 group; ``attrs["format"] == "deepeft-checkpoint-series"``):

* ``step`` (T,) int64 — the training step of each record, strictly increasing;
* ``eig_ℓ`` (T, m_ℓ) float64 — eigenvalues of W^{(ℓ)}'s smaller Gram matrix / max(shape) (:mod:`.spectrum`);
* ``W_ℓ`` (T, n_ℓ, n_{ℓ−1}), ``b_ℓ`` (T, n_ℓ) float32 — only with ``mode="weights"``;
* ``coef_ℓ`` (T, 3) float64 — optional instantaneous (K_S, V_S, D_S) (B.7)–(B.9) the caller measured;
* attrs: ``count`` (records committed), layer ``names``, ``shapes``, ``activation``, ``mode``.

Commit protocol: ``attrs["pending"]`` names the record being written, its arrays are written (they grow in blocks
of ``TIME_CHUNK`` records, so they may be longer than ``count``), then ``count`` is raised and ``pending`` cleared —
the commit marker. Readers use the first ``count`` records only, so an interrupted record is never mixed in; on
resuming, a set ``pending`` is reported (a warning) and overwritten. Arrays shorter than ``count``, missing arrays,
foreign attrs, unreadable chunk files, or committed records whose chunk files are gone (the arrays' fill values,
step −1 and NaN, read back) are a corrupt store (an error says what to do).
Recording a model whose layer shapes differ from the store's, or a step not after the last one, is refused.

Writers: :meth:`SpectrumRecorder.record` (any model :func:`~deepeft.diagnostics.as_imported` reads: a torch module,
a JAX parameter tree, a list of arrays), :meth:`SpectrumRecorder.attach` (a PyTorch optimizer step hook: records
every ``every`` optimizer steps), :func:`record_jax` (a JAX training loop: call it with the step and the params).
With ``background=True`` the eigendecompositions and the Zarr write run on one worker thread while training continues:
record() only copies the weights (for a torch module already recorded once: the Linear layers' tensors, ≈ 1 ms at
3 × 1024²), records are written in order, at most ``MAX_PENDING`` wait (then record() waits for the oldest), and a
failed background record stops the recorder: its error is raised by the next record() or by close(), and nothing
after it is written (the series keeps the records before it; resuming discards the interrupted one).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import warnings
import weakref
from pathlib import Path

import numpy as np

from ..errors import DeepEFTInputError, DeepEFTWarning
from ..interop import ImportedModel, from_arrays
from .spectrum import gram_eigenvalues_many

__all__ = ["SpectrumRecorder", "CheckpointSeries", "load_series", "record_jax", "FORMAT", "MODES"]

FORMAT = "deepeft-checkpoint-series"
MODES = ("spectra", "weights")
TIME_CHUNK = 64  # records per Zarr chunk along time
MAX_PENDING = 2  # background records queued before record() waits for the oldest (bounds the weight snapshots held)


def _open_group(path: Path, mode):
    import zarr

    try:
        return zarr.open_group(str(path), mode=mode)
    except Exception as exc:  # noqa: BLE001 - zarr raises several types for unreadable folders
        raise DeepEFTInputError(f"{path} is not a readable Zarr store ({type(exc).__name__}: {exc}).") from None


def _check_store(g, path: Path, repair: bool) -> int:
    """The committed record count of an existing series; cut an interrupted record back (``repair``) or refuse."""
    a = dict(g.attrs)
    if a.get("format") != FORMAT:
        raise DeepEFTInputError(f"{path} is not a deepeft checkpoint series (attrs format={a.get('format')!r}); "
                                "choose another folder or pass overwrite=True to replace it.")
    count = int(a.get("count", -1))
    L = len(a.get("shapes", []))
    names = ["step"] + [f"eig_{l}" for l in range(L)]
    if a.get("mode") == "weights":
        names += [f"W_{l}" for l in range(L)] + [f"b_{l}" for l in range(L)]
    present = set(g.array_keys())
    missing = [n for n in names if n not in present]
    if count < 0 or missing:
        raise DeepEFTInputError(f"{path} is a corrupt checkpoint series (count={count}, missing arrays {missing}); "
                                "delete the folder (or pass overwrite=True) and record again.")
    for n in sorted(present):
        if g[n].shape[0] < count:
            raise DeepEFTInputError(f"{path}: array {n} has {g[n].shape[0]} records but the series committed {count}: the "
                                    "store is corrupt (files deleted or copied partially); delete it and record again.")
    if repair and a.get("pending") is not None:
        last = int(g["step"][count - 1]) if count else "—"
        warnings.warn(f"{path}: record {a['pending']} was interrupted while being written; it is discarded and the "
                      f"series continues after step {last}.", DeepEFTWarning, stacklevel=3)
        g.attrs["pending"] = None
    return count


def _read(g, name: str, path: Path, sel=slice(None)):
    """g[name][sel] as a NumPy array; an unreadable chunk (garbage bytes, a truncated file) is a corrupt store."""
    try:
        return np.asarray(g[name][sel])
    except Exception as exc:  # noqa: BLE001 - codecs raise many types for damaged chunk files
        raise DeepEFTInputError(f"{path}: array {name} cannot be read ({type(exc).__name__}: {exc}): the store is corrupt "
                                "(a damaged or partly copied chunk file); delete it and record again.") from None


def _check_records(path: Path, steps: np.ndarray, eigs) -> None:
    """Refuse committed records whose data are missing (fill values: step −1, NaN eigenvalues) or out of order."""
    bad = np.flatnonzero(steps < 0)
    for e in eigs:
        bad = np.union1d(bad, np.flatnonzero(np.isnan(e).any(axis=1)))
    if bad.size:
        raise DeepEFTInputError(
            f"{path}: committed records {bad.tolist()[:10]}{' …' if bad.size > 10 else ''} have no data (their chunk "
            "files are missing: a partial copy or deleted files); the store is corrupt — delete it and record again, or "
            "copy it completely.")
    if np.any(np.diff(steps) <= 0):
        raise DeepEFTInputError(f"{path}: the recorded steps do not increase ({steps.tolist()[:10]} …): the store is "
                                "corrupt; delete it and record again.")


class SpectrumRecorder:
    """Append per-layer spectra (``mode="spectra"``) or weights (``mode="weights"``) of a training run to a Zarr series.

    ``path``: a new folder, or an existing series to resume (``resume=True``, default); ``overwrite=True`` replaces
    it. ``every``: the recording period used by :meth:`attach`. ``background``: compute spectra on a worker thread —
    the option for recording during training: the training thread only copies the weights (measured: +2.8 % wall on
    a width-1024 MLP recorded every 100 steps when a core is free for the worker; the spectra still cost their CPU,
    ≈ 0.3 s per record there, see docs/diagnose.md).
    ``precision="float32"``: single-precision Gram matrices and eigendecompositions (≈ 30 % cheaper at 1024²,
    absolute error ~1e-6 λ_max).
    Call :meth:`close` (or use ``with``) to wait for pending records (and to see a background record's error).
    """

    def __init__(self, path, *, mode: str = "spectra", every: int = 100, resume: bool = True, overwrite: bool = False,
                 background: bool = False, precision: str = "float64"):
        from .. import _validate as v

        if mode not in MODES:
            raise DeepEFTInputError(f"mode must be one of {MODES}, got {mode!r}.")
        if precision not in ("float64", "float32"):
            raise DeepEFTInputError(f"precision must be 'float64' or 'float32' (eigendecompositions), got {precision!r}.")
        self._eig_dtype = np.float64 if precision == "float64" else np.float32
        self.path = Path(path)
        self.mode = mode
        self.every = v.positive_int(every, "every")
        exists = self.path.exists() and any(self.path.iterdir()) if self.path.is_dir() else self.path.exists()
        if exists and not overwrite and not resume:
            raise DeepEFTInputError(f"{self.path} already exists; pass resume=True to continue it or overwrite=True.")
        self._g = _open_group(self.path, "w" if (overwrite or not exists) else "r+")
        self._count = 0
        self._shapes: list[tuple[int, int]] | None = None
        if exists and not overwrite:
            self._count = _check_store(self._g, self.path, repair=True)
            L = len(self._g.attrs.get("shapes", []))
            _check_records(self.path, _read(self._g, "step", self.path, slice(0, self._count)),
                           [_read(self._g, f"eig_{l}", self.path, slice(0, self._count)) for l in range(L)])
            a = dict(self._g.attrs)
            if a.get("mode") != mode:
                raise DeepEFTInputError(f"{self.path} was recorded with mode={a.get('mode')!r}; resume it with that mode.")
            self._shapes = [(int(s[0]), int(s[1])) for s in a["shapes"]]
        self._last_step = int(self._g["step"][self._count - 1]) if self._count else None
        self._arrays: dict = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1) if background else None
        self._pending: list[concurrent.futures.Future] = []
        self._failure: tuple[int, BaseException] | None = None  # (step, error) of a failed background record
        self._failure_raised = False
        self._torch_layers: tuple | None = None  # (weakref to a torch module, its Linear layers' paths): fast snapshots
        self._hook_steps = 0

    # -- writing ---------------------------------------------------------------------------------
    def _init_store(self, im: ImportedModel) -> None:
        shapes = [(int(W.shape[0]), int(W.shape[1])) for W, _ in im.params]
        self._shapes = shapes
        g = self._g
        # fill values that no record can hold: a chunk file lost after its records were committed reads back as
        # step −1 / NaN, and the readers refuse it (_check_records) instead of mixing in zeros
        g.create_array("step", shape=(0,), chunks=(TIME_CHUNK,), dtype="int64", fill_value=-1)
        for l, (o, i) in enumerate(shapes):
            g.create_array(f"eig_{l}", shape=(0, min(o, i)), chunks=(TIME_CHUNK, min(o, i)), dtype="float64",
                           fill_value=np.nan)
            if self.mode == "weights":
                g.create_array(f"W_{l}", shape=(0, o, i), chunks=(1, o, i), dtype="float32", fill_value=np.nan)
                g.create_array(f"b_{l}", shape=(0, o), chunks=(TIME_CHUNK, o), dtype="float32", fill_value=np.nan)
        g.attrs.update({"format": FORMAT, "version": 1, "count": 0, "mode": self.mode, "names": list(im.names),
                        "shapes": [list(s) for s in shapes], "activation": im.net.activation.name})

    def _check_shapes(self, im: ImportedModel) -> None:
        shapes = [(int(W.shape[0]), int(W.shape[1])) for W, _ in im.params]
        if shapes != self._shapes:
            raise DeepEFTInputError(
                f"the model's layer shapes {shapes} differ from the series' {self._shapes} ({self.path}): a checkpoint "
                "series follows one architecture; record this model into a new folder."
            )

    def _append(self, name: str, t: int, value) -> None:
        arr = self._arrays.get(name)
        if arr is None:
            arr = self._arrays[name] = self._g[name]
        if arr.shape[0] < t + 1:  # grow by whole time chunks: one metadata write per TIME_CHUNK records
            arr.resize((TIME_CHUNK * (t // TIME_CHUNK + 1), *arr.shape[1:]))
        arr[t] = value

    def _write(self, t: int, step: int, params, coefficients) -> None:
        for l, (W, _) in enumerate(params):  # (the importers check this too; the torch fast path leaves it to here)
            if not np.isfinite(W).all():
                raise DeepEFTInputError(f"step {step}: the weight of layer {l} contains NaN or inf "
                                        f"({int((~np.isfinite(W)).sum())} entries); a diverged run has no spectrum.")
        self._g.attrs["pending"] = t
        # one LAPACK thread per layer; in the background only one worker, so that training keeps the other cores
        eigs = gram_eigenvalues_many([W for W, _ in params], self._eig_dtype, workers=1 if self._pool is not None else None)
        for l, (W, b) in enumerate(params):
            self._append(f"eig_{l}", t, eigs[l])
            if self.mode == "weights":
                self._append(f"W_{l}", t, W)
                self._append(f"b_{l}", t, b)
        if coefficients is not None:
            for l, c in coefficients.items():
                name = f"coef_{l}"
                if name not in self._arrays and name not in set(self._g.array_keys()):
                    self._g.create_array(name, shape=(0, 3), chunks=(TIME_CHUNK, 3), dtype="float64", fill_value=np.nan)
                self._append(name, t, np.asarray(c, np.float64))
        self._append("step", t, step)
        self._g.attrs.update({"count": t + 1, "pending": None})  # commit marker: written last

    def record(self, step: int, model, *, activation=None, coefficients: dict | None = None) -> None:
        """Record checkpoint ``step`` of ``model``. ``coefficients``: optional {layer index (0-based): (K_S, V_S, D_S)}
        measured at this step (instantaneous (B.7)–(B.9), e.g. by :func:`deepeft.sgd.spacing_coefficients`)."""
        self._raise_failure()
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise DeepEFTInputError(f"step must be an integer >= 0, got {step!r}.")
        if self._last_step is not None and step <= self._last_step:
            raise DeepEFTInputError(f"step {step} is not after the last recorded step {self._last_step} of {self.path}; "
                                    "steps must increase (resuming? continue from the next step).")
        params = self._snapshot(model, activation)
        t = self._count
        if self._pool is None:
            self._write(t, int(step), params, coefficients)
            self._count, self._last_step = t + 1, int(step)
            return
        self._count, self._last_step = t + 1, int(step)
        while len(self._pending) >= MAX_PENDING:  # the worker is behind: wait for the oldest record
            concurrent.futures.wait([self._pending.pop(0)])
        self._pending = [f for f in self._pending if not f.done()]
        self._raise_failure()
        self._pending.append(self._pool.submit(self._write_background, t, int(step), params, coefficients))

    def _snapshot(self, model, activation) -> list:
        """[(W, b)] copies taken now (training goes on meanwhile). A torch module recorded before is read directly from
        its Linear layers (the paths found by the first, fully checked import): a tensor copy, no float64 import."""
        cached = self._torch_layers
        if cached is not None and cached[0]() is model:  # (the activation was checked by that import)
            try:
                layers = [model.get_submodule(name) for name in cached[1]]
                tensors = [(m.weight, m.bias) for m in layers]
            except AttributeError:
                tensors = None
            if tensors is not None and all(str(W.dtype) in ("torch.float32", "torch.float64") for W, _ in tensors) \
                    and [tuple(W.shape) for W, _ in tensors] == self._shapes:
                keep_b = self.mode == "weights"
                return [(W.detach().to("cpu", copy=True).numpy(),
                         (np.zeros(W.shape[0]) if b is None else b.detach().to("cpu", copy=True).numpy()) if keep_b else None)
                        for W, b in tensors]
        from .diagnose import as_imported

        if isinstance(model, (list, tuple)):  # bare weight matrices: the activation is only a label here
            im = from_arrays(model, None, activation or "linear")
        else:
            im = as_imported(model, activation)
        if self._shapes is None:
            self._init_store(im)
        self._check_shapes(im)
        if im.source == "torch" and hasattr(model, "get_submodule"):
            self._torch_layers = (weakref.ref(model), im.names)
        return [(np.array(W), np.array(b)) for W, b in im.params]  # copies: an importer may share float64 input

    def _write_background(self, t: int, step: int, params, coefficients) -> None:
        if self._failure is not None:  # an earlier record failed: write nothing after it
            return
        try:
            self._write(t, step, params, coefficients)
        except BaseException as exc:
            self._failure = (step, exc)
            raise

    def _raise_failure(self) -> None:
        """Raise a failed background record's error (its own exception, once); afterwards refuse to go on."""
        if self._failure is None:
            return
        step, exc = self._failure
        if not self._failure_raised:
            self._failure_raised = True
            exc.add_note(f"(raised by the background record of step {step} of {self.path}; the series holds the records "
                         "before it, nothing after it was written.)")
            raise exc
        raise DeepEFTInputError(f"this recorder stopped after its background record of step {step} failed "
                                f"({type(exc).__name__}: {exc}); open the series again (resume=True) to continue.")

    def attach(self, optimizer, model, *, activation=None):
        """PyTorch: record ``model`` after every ``every``-th optimizer step (``optimizer.register_step_post_hook``); the
        step number is the count of completed steps (record the initialisation yourself: ``rec.record(0, model)``).
        When resuming, the count continues from the series' last step. Returns the hook handle (``.remove()``)."""
        self._hook_steps = 0 if self._last_step is None else self._last_step

        def hook(opt, args, kwargs):
            self._hook_steps += 1
            if self._hook_steps % self.every == 0:
                self.record(self._hook_steps, model, activation=activation)

        return optimizer.register_step_post_hook(hook)

    def close(self) -> None:
        """Wait for the background records and stop the worker; raise a failed record's error if not raised yet."""
        if self._pool is not None:
            concurrent.futures.wait(self._pending)
            self._pending = []
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._failure is not None and not self._failure_raised:
            self._raise_failure()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def count(self) -> int:
        return self._count


def record_jax(recorder: SpectrumRecorder, step: int, params, *, activation=None, layout: str | None = None) -> None:
    """Record a JAX model (a list of weight matrices, a Flax parameter tree or an Equinox MLP) at ``step``.

    Call it from the host side of the training loop (or through ``jax.experimental.io_callback``); the arrays are
    copied to host memory before the call returns. ``layout="in_out"`` for a list of ``x @ W`` kernels."""
    if isinstance(params, (list, tuple)) and layout is not None:
        params = from_arrays(params, None, activation or "linear", layout=layout)
    recorder.record(step, params, activation=activation)


@dataclasses.dataclass(frozen=True, eq=False)
class CheckpointSeries:
    """A recorded series (read-only): steps (T,), per-layer eigenvalues [(T, m_ℓ)], optional weights and coefficients."""

    path: Path
    steps: np.ndarray
    eigenvalues: tuple[np.ndarray, ...]
    names: tuple[str, ...]
    shapes: tuple[tuple[int, int], ...]
    activation: str
    mode: str
    coefficients: dict

    def weights_at(self, t: int):
        """((W, b), …) of record ``t`` (``mode="weights"`` only)."""
        if self.mode != "weights":
            raise DeepEFTInputError(f"{self.path} holds spectra only (mode='spectra'); record with mode='weights' to keep "
                                    "the weights.")
        T = self.steps.size
        if not -T <= t < T:
            raise DeepEFTInputError(f"record index {t} is out of range: the series holds {T} records.")
        t = t % T  # the arrays may be longer than the committed records (see the commit protocol)
        g = _open_group(self.path, "r")
        out = tuple((_read(g, f"W_{l}", self.path, t).astype(np.float64), _read(g, f"b_{l}", self.path, t).astype(np.float64))
                    for l in range(len(self.shapes)))
        if any(np.isnan(W).any() for W, _ in out):
            raise DeepEFTInputError(f"{self.path}: the weights of record {t} are missing (a chunk file of W was lost: a "
                                    "partial copy or deleted files); the store is corrupt — copy it completely.")
        return out

    def model_at(self, t: int, activation=None) -> ImportedModel:
        params = self.weights_at(t)
        return from_arrays([W for W, _ in params], [b for _, b in params], activation or self.activation,
                           names=self.names)


def load_series(path) -> CheckpointSeries:
    """Open a recorded series for analysis (refuses corrupt stores; ignores an uncommitted last record)."""
    p = Path(path)
    if not p.exists():
        raise DeepEFTInputError(f"no such checkpoint series: {p}.")
    g = _open_group(p, "r")
    count = _check_store(g, p, repair=False)
    if count == 0:
        raise DeepEFTInputError(f"{p} holds no committed records yet.")
    a = dict(g.attrs)
    L = len(a["shapes"])
    coefs = {l: _read(g, f"coef_{l}", p, slice(0, count)) for l in range(L) if f"coef_{l}" in set(g.array_keys())}
    steps = _read(g, "step", p, slice(0, count))
    eigs = tuple(_read(g, f"eig_{l}", p, slice(0, count)) for l in range(L))
    _check_records(p, steps, eigs)
    return CheckpointSeries(p, steps, eigs, tuple(a["names"]), tuple(tuple(s) for s in a["shapes"]), a["activation"],
                            a["mode"], coefs)
