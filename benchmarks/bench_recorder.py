"""Overhead of the checkpoint-series recorder (issue 17 target: ≤ 5 % of a training step of a width-1024 MLP when
recording spectra every 100 steps).

A PyTorch MLP 1024-1024-1024-1024-10 (ReLU, batch 128, SGD). Paired blocks, in the same run: 100 steps without the
recorder, then 100 steps with a :class:`deepeft.diagnostics.SpectrumRecorder` hooked to the optimizer (one record at
the block's 100th step: import of the weights, the three Gram eigendecompositions, the Zarr write), repeated
``PAIRS`` times; overhead = median over pairs of (t_with − t_without)/t_without, on wall time and on process CPU
time (all threads). Adjacent blocks see nearly the same machine load, so the pairing removes most of the drift of a
shared machine. Rows: synchronous float64 (the default) and ``precision="float32"``; the same two as components
(median CPU of one ``record()`` over median CPU of 100 steps, alternated in one process: the least load-sensitive
estimate); ``background=True`` (the eigendecompositions on a worker thread) as whole runs with and without (its work
spills into later blocks).
torch runs one thread: on the 2 shared cores two torch threads spin against the other engineers' load and make the
step time itself vary 3× (measured); the recorder's spectra use one BLAS thread per layer as well. The 1-min load
average is recorded. Needs torch (skipped otherwise). Quick: width 256, 3 pairs.

    python benchmarks/bench_recorder.py [--quick]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from _timing import stopwatch, write_results  # sibling module (the runner puts benchmarks/ on sys.path)

HERE = Path(__file__).resolve().parent
TARGET_OVERHEAD = 0.05
EVERY = 100


PAIRS = 5


def _setup(torch, width: int):
    torch.manual_seed(0)
    nn = torch.nn
    m = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                      nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))
    opt = torch.optim.SGD(m.parameters(), lr=1e-3)
    X, y = torch.randn(128, width), torch.randn(128, 10)
    return m, opt, X, y


def _block(m, opt, X, y, steps: int) -> np.ndarray:
    """(wall, process CPU) seconds of ``steps`` SGD steps."""
    with stopwatch() as sw:
        for _ in range(steps):
            opt.zero_grad()
            ((m(X) - y) ** 2).mean().backward()
            opt.step()
    return np.array([sw.wall, sw.cpu])


def _paired(torch, width: int, pairs: int, path, **rec_kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Per pair: (wall, CPU) of a block without and a block with one record; returns (without, with) arrays (pairs, 2)."""
    from deepeft.diagnostics import SpectrumRecorder

    m, opt, X, y = _setup(torch, width)
    rec = SpectrumRecorder(path, every=EVERY, **rec_kwargs)
    _block(m, opt, X, y, 10)  # warm-up (allocator) outside the timing
    without, with_ = [], []
    for _ in range(pairs):
        without.append(_block(m, opt, X, y, EVERY))
        handle = rec.attach(opt, m)
        with_.append(_block(m, opt, X, y, EVERY))
        handle.remove()
    rec.close()
    return np.array(without), np.array(with_)


def _whole(torch, width: int, blocks: int, path, **rec_kwargs) -> tuple[np.ndarray, np.ndarray]:
    """(wall, CPU) of blocks × 100 steps without, then with the recorder attached (close() included), twice interleaved."""
    from deepeft.diagnostics import SpectrumRecorder

    out = np.zeros((2, 2))
    for k in range(2):
        m, opt, X, y = _setup(torch, width)
        _block(m, opt, X, y, 10)
        out[0] += _block(m, opt, X, y, blocks * EVERY)
        m, opt, X, y = _setup(torch, width)
        _block(m, opt, X, y, 10)
        rec = SpectrumRecorder(f"{path}{k}", every=EVERY, **rec_kwargs)
        handle = rec.attach(opt, m)
        with stopwatch() as sw:
            _block(m, opt, X, y, blocks * EVERY)
            rec.close()
        out[1] += np.array([sw.wall, sw.cpu])
        handle.remove()
    return out[0], out[1]


def _component(torch, width: int, path, precision: str, repeats: int = 5) -> tuple[float, float]:
    """Median process-CPU seconds of one ``record()`` (synchronous) and of one 100-step block, measured alternately
    in the same process: short bursts, so the machine's load drifts less between them than between whole runs."""
    from deepeft.diagnostics import SpectrumRecorder

    m, opt, X, y = _setup(torch, width)
    rec = SpectrumRecorder(path, every=EVERY, precision=precision)
    _block(m, opt, X, y, 10)
    rec.record(0, m)  # first record creates the store
    r, b = [], []
    for k in range(repeats):
        b.append(_block(m, opt, X, y, EVERY)[1])
        with stopwatch() as sw:
            rec.record(k + 1, m)
        r.append(sw.cpu)
    rec.close()
    return float(np.median(r)), float(np.median(b))


def _rows(name: str, over: np.ndarray, step_without: np.ndarray, load: float, notes: str) -> list[dict]:
    rows = []
    for j, kind in enumerate(("", "_cpu")):
        o = float(over[j])
        rows.append({"name": name + kind, "seconds": float(step_without[j]), "target": TARGET_OVERHEAD, "value": o,
                     "ratio": o / TARGET_OVERHEAD, "passed": bool(o <= TARGET_OVERHEAD), "load_1min": load,
                     "notes": f"{'process CPU' if j else 'wall'}: {notes}; seconds = one step without the recorder"})
    return rows


def run(quick: bool = False) -> list[dict]:
    try:
        import torch
    except ImportError:
        return [{"name": "recorder_overhead", "seconds": float("nan"), "notes": "skipped: torch not installed"}]

    width, pairs = (256, 3) if quick else (1024, PAIRS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as d:
            for precision in ("float64", "float32"):
                load = os.getloadavg()[0]
                a, b = _paired(torch, width, pairs, Path(d) / f"p{precision}.zarr", precision=precision)
                over = np.median((b - a) / a, axis=0)
                rows += _rows(f"recorder_overhead_sync_{precision}_n{width}", over, a.mean(0) / EVERY, load,
                              f"median over {pairs} pairs of 100-step blocks, one record per block "
                              f"(per-pair wall overheads {np.round((b - a)[:, 0] / a[:, 0], 3).tolist()})")
            for precision in ("float64", "float32"):
                load = os.getloadavg()[0]
                rec_cpu, block_cpu = _component(torch, width, Path(d) / f"c{precision}.zarr", precision)
                over = rec_cpu / block_cpu
                rows.append({"name": f"recorder_overhead_components_{precision}_n{width}", "seconds": rec_cpu,
                             "target": TARGET_OVERHEAD, "value": over, "ratio": over / TARGET_OVERHEAD,
                             "passed": bool(over <= TARGET_OVERHEAD), "block_cpu_seconds": block_cpu, "load_1min": load,
                             "notes": f"CPU of one synchronous record() / CPU of {EVERY} steps (medians of 5, alternated)"})
            load = os.getloadavg()[0]
            a, b = _whole(torch, width, 3 if quick else pairs, Path(d) / "bg.zarr", background=True)
            rows += _rows(f"recorder_overhead_background_float64_n{width}", (b - a) / a, a / (2 * pairs * EVERY), load,
                          f"whole runs of {pairs} × 100 steps, with/without, twice interleaved")
    finally:
        torch.set_num_threads(threads)
    return rows


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    write_results("recorder", run(quick=quick), quick=quick)
