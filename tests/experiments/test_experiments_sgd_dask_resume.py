"""sgd-finite-size through the CLI on a Dask LocalCluster (``--workers 1``), the way its paper run is made
(docs/sgd.md, "Runbook: `sgd-finite-size --preset paper`"): interrupted with Ctrl-C (SIGINT) mid-sweep, then resumed with
``--resume``. No finished task is lost or recomputed (the stored task files are byte-identical after the resume,
and the summary counts them as resumed), and the assembled data equal an uninterrupted in-process run bit for bit.

Tiny size (one width pair, 2 × 2 grid, six one-member tasks, 40 steps): the checks are not meant to
pass here (exit 1 is accepted); the data and the bookkeeping are what is tested. Slow: two LocalCluster starts
(one worker process each: a task already uses two threads, docs/sgd.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr

from deepeft.experiments import run_experiment
from deepeft.experiments.store import RunStore

pytestmark = pytest.mark.slow

TINY = {"n1": "6", "n2": "4", "temperatures": "0.03125,4", "inv_sigma_W": "0.5,8", "members": 6,
        "members_per_task": 1, "steps": 40, "n_records": 2}
N_TASKS = 6  # 1 width pair × 6 member chunks (one width: each process compiles one set of kernels)
_SCRIPT = Path(sys.executable).with_name("deepeft")
_CMD = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "deepeft.cli"]


def _start(out: Path, resume: bool, delay: float) -> subprocess.Popen:
    args = [*_CMD, "run", "sgd-finite-size", "--out", str(out), "--workers", "1", "-q"]
    for k, v in TINY.items():
        args += ["--set", f"{k}={v}"]
    if resume:
        args.append("--resume")
    env = dict(os.environ, JAX_PLATFORMS="cpu", DEEPEFT_TASK_DELAY=str(delay))
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _load(d: Path) -> xr.Dataset:
    return xr.open_zarr(d / "data.zarr", zarr_format=3, consolidated=False).load()


def test_dask_interrupt_then_resume_loses_no_finished_work(tmp_path):
    out = tmp_path / "fs"
    store = RunStore(out)
    p = _start(out, resume=False, delay=1.5)  # each task holds its worker 1.5 s: Ctrl-C lands mid-sweep
    t0 = time.monotonic()
    while len(store.finished()) < 2:
        assert p.poll() is None, f"run ended before it could be interrupted: {p.communicate()[1]}"
        assert time.monotonic() - t0 < 240, "sweep made no progress"
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, se = p.communicate(timeout=120)
    assert p.returncode == 130, se
    assert "Traceback" not in se
    done = store.finished()
    assert 2 <= len(done) < N_TASKS, done
    kept = {i: (store.tasks_dir / f"task-{i:06d}.npz").read_bytes() for i in done}

    p = _start(out, resume=True, delay=0.0)
    so, se = p.communicate(timeout=300)
    assert p.returncode in (0, 1), se  # 1: checks fail at this tiny size; the run itself completed
    summary = json.loads((out / "summary.json").read_text())
    assert "LocalCluster (1 workers" in summary["executor"]
    assert summary["timing"]["tasks_resumed"] == len(done)
    assert summary["timing"]["tasks_run"] == N_TASKS - len(done)
    assert store.finished() == set(range(N_TASKS))
    for i, b in kept.items():  # finished work is reused as stored, never recomputed
        assert (store.tasks_dir / f"task-{i:06d}.npz").read_bytes() == b, i
    print(f"interrupted after {len(done)} of {N_TASKS} tasks; resumed the rest")

    ref = run_experiment("sgd-finite-size", tmp_path / "ref", overrides=TINY, render=False)
    a, b = _load(out), _load(ref.out_dir)
    xr.testing.assert_identical(a, b)
    for name in a.variables:
        assert a[name].values.tobytes() == b[name].values.tobytes(), name
    assert summary["checks"] == ref.summary["checks"]
