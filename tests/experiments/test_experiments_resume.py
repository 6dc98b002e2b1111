"""A sweep killed with SIGKILL mid-run loses only unfinished tasks and resumes to bit-identical data.

The CLI runs in a subprocess with the test hook DEEPEFT_TASK_DELAY (each task sleeps after
computing, so kills land mid-sweep reliably); it is killed twice at different points, once more
at an arbitrary moment (possibly while writing a task or data.zarr), and then resumed to the end.
The result is compared byte for byte with an uninterrupted in-process run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import xarray as xr

from deepeft.experiments import run_experiment
from deepeft.experiments.store import RunStore

SETS = {"activations": "relu,tanh", "variances": "0.25,0.5,1,2,4", "n_samples": 4000}
N_TASKS = 10
_SCRIPT = Path(sys.executable).with_name("deepeft")
_CMD = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "deepeft.cli"]


def _start(out: Path, delay: float, resume: bool) -> subprocess.Popen:
    args = [*_CMD, "run", "gaussian-moments", "--out", str(out), "-q"]
    for k, v in SETS.items():
        args += ["--set", f"{k}={v}"]
    if resume:
        args.append("--resume")
    env = dict(os.environ, JAX_PLATFORMS="cpu", DEEPEFT_TASK_DELAY=str(delay))
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_when(proc: subprocess.Popen, store: RunStore, n_finished: int, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while len(store.finished()) < n_finished:
        assert proc.poll() is None, f"run ended before it could be killed: {proc.communicate()[1]}"
        assert time.monotonic() - t0 < timeout, "sweep made no progress"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _load(d: Path) -> xr.Dataset:
    return xr.open_zarr(d / "data.zarr", zarr_format=3, consolidated=False).load()


def test_sigkill_mid_sweep_resumes_bit_identical(tmp_path):
    out = tmp_path / "killed"
    store = RunStore(out)

    # 1st kill: after 2 finished tasks
    _kill_when(_start(out, delay=0.4, resume=False), store, 2)
    done1 = store.finished()
    assert 2 <= len(done1) < N_TASKS, done1
    assert not store.data_path.exists() and not (out / "summary.json").exists()

    # 2nd kill, resuming: after 2 more tasks
    _kill_when(_start(out, delay=0.4, resume=True), store, len(done1) + 2)
    done2 = store.finished()
    assert done1 < done2 and len(done2) < N_TASKS

    # 3rd kill at an arbitrary moment of a resumed run without delay (may hit a write)
    p = _start(out, delay=0.0, resume=True)
    time.sleep(2.5)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    done3 = store.finished()
    assert done2 <= done3

    # finish
    p = _start(out, delay=0.0, resume=True)
    so, se = p.communicate(timeout=180)
    assert p.returncode == 0, se
    summary = json.loads((out / "summary.json").read_text())
    assert summary["timing"]["tasks_resumed"] == len(done3)
    assert summary["timing"]["tasks_run"] == N_TASKS - len(done3)
    assert not list(out.glob(".tmp-*")) and not list(store.tasks_dir.glob(".tmp-*"))
    print(f"finished tasks after kills: {len(done1)}, {len(done2)}, {len(done3)} of {N_TASKS}")

    ref = run_experiment("gaussian-moments", tmp_path / "ref", overrides=SETS)
    a, b = _load(out), _load(ref.out_dir)
    xr.testing.assert_identical(a, b)
    for name in a.variables:
        assert a[name].values.tobytes() == b[name].values.tobytes(), name
    assert summary["checks"] == ref.summary["checks"]


def test_ctrl_c_exits_130_and_keeps_finished_tasks(tmp_path):
    out = tmp_path / "int"
    store = RunStore(out)
    p = _start(out, delay=0.4, resume=False)
    t0 = time.monotonic()
    while len(store.finished()) < 1:
        assert p.poll() is None and time.monotonic() - t0 < 120
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    _, se = p.communicate(timeout=60)
    assert p.returncode == 130, se
    assert "interrupted; finished tasks are saved" in se and "Traceback" not in se
    assert 1 <= len(store.finished()) < N_TASKS
