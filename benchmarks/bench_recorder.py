"""Overhead of the checkpoint-series recorder (issue 17 target: ≤ 5 % of a training step of a width-1024 MLP when
recording spectra every 100 steps).

A PyTorch MLP 1024-1024-1024-1024-10 (ReLU, batch 128, SGD) trains for S steps without and with a
:class:`deepeft.diagnostics.SpectrumRecorder` attached to its optimizer (spectra every 100 steps, the three 1024²
Gram matrices): synchronous float64, ``background=True`` (eigendecompositions on a worker thread) float64, and
background with ``precision="float32"``. Overhead = (t_with − t_without)/t_without over the same S steps, the two
runs interleaved twice to halve drift. Needs torch (skipped otherwise). The 2 shared cores make it indicative; the
1-min load average is recorded. Quick: width 256, 200 steps.

    python benchmarks/bench_recorder.py [--quick]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from _timing import stopwatch, write_results  # sibling module (the runner puts benchmarks/ on sys.path)

HERE = Path(__file__).resolve().parent
TARGET_OVERHEAD = 0.05
EVERY = 100


def _train(torch, width: int, steps: int, recorder=None) -> float:
    torch.manual_seed(0)
    nn = torch.nn
    m = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                      nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))
    opt = torch.optim.SGD(m.parameters(), lr=1e-3)
    X, y = torch.randn(128, width), torch.randn(128, 10)
    for _ in range(3):  # warm-up (allocator, threads) outside the timing
        opt.zero_grad()
        ((m(X) - y) ** 2).mean().backward()
    handle = recorder.attach(opt, m) if recorder is not None else None
    with stopwatch() as sw:
        for _ in range(steps):
            opt.zero_grad()
            ((m(X) - y) ** 2).mean().backward()
            opt.step()
        if recorder is not None:
            recorder.close()
            handle.remove()
    return sw.wall


def run(quick: bool = False) -> list[dict]:
    try:
        import torch
    except ImportError:
        return [{"name": "recorder_overhead", "seconds": float("nan"), "notes": "skipped: torch not installed"}]
    from deepeft.diagnostics import SpectrumRecorder

    width, steps = (256, 200) if quick else (1024, 400)
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for background, precision in ((False, "float64"), (True, "float64"), (True, "float32")):
            base, withrec = 0.0, 0.0
            for k in range(2):
                base += _train(torch, width, steps)
                rec = SpectrumRecorder(Path(d) / f"r{int(background)}{precision}{k}.zarr", every=EVERY,
                                       background=background, precision=precision)
                withrec += _train(torch, width, steps, rec)
            over = (withrec - base) / base
            rows.append({"name": f"recorder_overhead_{'background' if background else 'sync'}_{precision}_n{width}",
                         "seconds": withrec / (2 * steps), "target": TARGET_OVERHEAD, "value": over,
                         "ratio": over / TARGET_OVERHEAD, "passed": bool(over <= TARGET_OVERHEAD),
                         "step_seconds_without": base / (2 * steps), "load_1min": load,
                         "notes": f"relative overhead of recording spectra every {EVERY} steps ({steps} steps × 2)"})
    return rows


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    write_results("recorder", run(quick=quick), quick=quick)
