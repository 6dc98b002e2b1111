"""The run directory: atomic per-task results, the run record, and the assembled ``data.zarr``.

Layout of ``DIR``::

    run.json            experiment, parameters, version, task-list hash (compared on --resume)
    tasks/task-000012.npz   one finished task (written to a temp name, fsynced, then renamed)
    data.zarr/          the assembled xarray Dataset (Zarr v3), written when every task is done
    *.png, summary.json, report.html

A process killed at any moment leaves only complete task files (plus ``.tmp-*`` debris that the
next run removes), so a resumed run recomputes exactly the unfinished tasks.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RunStore", "atomic_write_bytes", "atomic_write_json", "tasks_digest"]

_TASK = "task-{:06d}.npz"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either the old file or the complete new one."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n").encode())


def tasks_digest(tasks: list[dict]) -> str:
    """SHA-256 of the canonical JSON of the task list (detects a changed sweep on resume)."""
    return hashlib.sha256(json.dumps(tasks, sort_keys=True).encode()).hexdigest()


def _to_numeric(name: str, value) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"task result {name!r} must be a numeric array, got dtype {arr.dtype}")
    return arr


def normalize_result(result) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    """``{var: array | (dims, array)}`` → ``{var: (dims, ndarray)}`` with dims checked against ndim."""
    if not isinstance(result, dict) or not result:
        raise TypeError("compute() must return a non-empty dict {name: array or (dims, array)}")
    out = {}
    for name, value in result.items():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], (tuple, list)):
            dims, arr = tuple(value[0]), _to_numeric(name, value[1])
        else:
            dims, arr = (), _to_numeric(name, value)
        if len(dims) != arr.ndim:
            raise TypeError(f"task result {name!r}: dims {dims} do not match array shape {arr.shape}")
        out[name] = (dims, arr)
    return out


class RunStore:
    """Files of one experiment run under ``root``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.tasks_dir = self.root / "tasks"
        self.record_path = self.root / "run.json"
        self.data_path = self.root / "data.zarr"

    # -- run record -------------------------------------------------------------------------
    def read_record(self) -> dict | None:
        if not self.record_path.exists():
            return None
        return json.loads(self.record_path.read_text())

    def write_record(self, record: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.record_path, record)

    # -- tasks --------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the folders and remove debris of writes interrupted by a crash."""
        self.tasks_dir.mkdir(parents=True, exist_ok=True)
        for d in (self.root, self.tasks_dir):
            for tmp in d.glob(".tmp-*"):
                shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink(missing_ok=True)

    def finished(self) -> set[int]:
        if not self.tasks_dir.is_dir():
            return set()
        return {int(p.name[5:11]) for p in self.tasks_dir.glob("task-??????.npz")}

    def write_task(self, index: int, result: dict[str, tuple], meta: dict) -> None:
        """Atomically store task ``index``: arrays plus a JSON header (dims, task, seed, seconds)."""
        header = dict(meta, dims={k: list(d) for k, (d, _) in result.items()})
        arrays = {f"v:{k}": a for k, (_, a) in result.items()}
        arrays["__meta__"] = np.array(json.dumps(header))
        path = self.tasks_dir / _TASK.format(index)
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.tasks_dir)

    def read_task(self, index: int) -> tuple[dict[str, tuple], dict]:
        with np.load(self.tasks_dir / _TASK.format(index), allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            result = {k: (tuple(meta["dims"][k]), z[f"v:{k}"]) for k in meta["dims"]}
        return result, meta

    def clear(self) -> None:
        """Remove the outputs of a previous run in this folder — only files a run writes (tasks, data,
        run record, summary, report and the figures the summary lists); nothing else in the folder."""
        if not self.record_path.exists():
            return
        figures = []
        summary = self.root / "summary.json"
        if summary.exists():
            try:
                figures = list(json.loads(summary.read_text()).get("figures", []))
            except (json.JSONDecodeError, AttributeError):
                figures = []
        for name in ("tasks", "data.zarr"):
            shutil.rmtree(self.root / name, ignore_errors=True)
        for name in ("summary.json", "report.html", *figures, "run.json"):
            if "/" not in name and name not in ("", ".", ".."):
                (self.root / name).unlink(missing_ok=True)

    # -- assembled dataset --------------------------------------------------------------------
    def write_dataset(self, ds) -> None:
        """Write ``ds`` to ``data.zarr`` (Zarr v3) via a temp folder and a rename."""
        ds = ds.copy()
        for name in list(ds.variables):
            if ds[name].dtype.kind == "U":  # variable-length UTF-8 has a Zarr v3 spec; fixed-width does not
                ds[name] = ds[name].astype(object)
        tmp = self.root / f".tmp-{uuid.uuid4().hex}-data.zarr"
        ds.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False)
        old = self.root / f".tmp-{uuid.uuid4().hex}-old.zarr"
        if self.data_path.exists():
            os.replace(self.data_path, old)
        os.replace(tmp, self.data_path)
        _fsync_dir(self.root)
        shutil.rmtree(old, ignore_errors=True)

    def open_dataset(self):
        import xarray as xr

        return xr.open_zarr(self.data_path, zarr_format=3, consolidated=False).load()
