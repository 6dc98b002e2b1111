"""``deepeft diagnose`` on a 50-layer, width-1024 MLP (issue 17 target: ≤ 10 s), as a user meets it.

Rows: (1) the command line ``deepeft diagnose model.pt --activation relu`` in a fresh process (Python and deepeft
import, torch.load, 50 spectra, criticality, table) — the target, wall time; (1b) the same command's CPU time
(user + sys of the child process, all its threads): the machine here is 2 cores shared by several engineers, so
its wall times measure the load; the CPU time is the work, and bounds the wall time of a single idle core (the
50 eigendecompositions run on all cores, so an idle 2-core machine needs less); (1c) the same with
``--precision float32``; (2) the public API ``de.diagnose`` on the loaded model, first call (compilation of the
criticality/phase recursions) and warm, wall and CPU; (3) the spectra alone (50 Gram eigendecompositions, the
floor). The state dict is written by PyTorch when it is installed, else the model is built from NumPy arrays and
only rows (2)–(3) run. The 1-min load average is recorded.

    python benchmarks/bench_diagnose.py [--quick]     # quick: 10 layers of width 512
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

import deepeft as de

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _timing import child_seconds, timed, write_results  # noqa: E402

TARGET_SECONDS = 10.0


def _weights(depth: int, width: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, np.sqrt(2.0 / width), (width, width)).astype(np.float32) for _ in range(depth)]


def run(quick: bool = False) -> list[dict]:
    depth, width = (10, 512) if quick else (50, 1024)
    size = f"L{depth}_n{width}"
    Ws = _weights(depth, width)
    im = de.from_arrays(Ws, [np.zeros(width)] * depth, "relu")
    load = os.getloadavg()[0]
    rows = []
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "model.pt"
            torch.save({f"{i}.weight": torch.from_numpy(W) for i, W in enumerate(Ws)}, path)
            script = Path(sys.executable).with_name("deepeft")
            cmd = [str(script)] if script.exists() else [sys.executable, "-m", "deepeft.cli"]
            env = dict(os.environ, JAX_PLATFORMS="cpu")
            for precision in ("float64", "float32"):
                t_cli, cpu = child_seconds([*cmd, "diagnose", str(path), "--activation", "relu", "--precision", precision],
                                           env)  # raises if the command fails
                tag = "" if precision == "float64" else "_float32"
                rows.append({"name": f"diagnose_cli_{size}{tag}", "seconds": t_cli, "target": TARGET_SECONDS,
                             "ratio": t_cli / TARGET_SECONDS, "passed": bool(t_cli <= TARGET_SECONDS),
                             "cpu_seconds": cpu, "load_1min": load,
                             "notes": f"wall, fresh process: import + torch.load + diagnose ({precision}) + table"})
                rows.append({"name": f"diagnose_cli_{size}{tag}_cpu", "seconds": cpu, "target": TARGET_SECONDS,
                             "ratio": cpu / TARGET_SECONDS, "passed": bool(cpu <= TARGET_SECONDS),
                             "wall_seconds": t_cli, "load_1min": load,
                             "notes": "CPU (user+sys, all threads) of the same command: up to I/O waits, ≥ the wall "
                                      "time on one idle core"})
    tm = timed(lambda: de.diagnose(im), repeats=1 if not quick else 2)
    rows.append({"name": f"diagnose_api_{size}", "seconds": tm.warm, "cold_seconds": tm.cold, "cpu_seconds": tm.cpu,
                 "load_1min": load, "notes": "de.diagnose(model): warm (cold = first call, compiles χ recursions)"})
    from deepeft.diagnostics.spectrum import gram_eigenvalues_many

    ts = timed(lambda: gram_eigenvalues_many(Ws), repeats=1)
    rows.append({"name": f"gram_spectra_{size}", "seconds": ts.warm, "cpu_seconds": ts.cpu, "load_1min": load,
                 "notes": f"{depth} float64 eigvalsh of {width}² Gram matrices, one BLAS thread each, layers on all cores"})
    return rows


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    write_results("diagnose", run(quick=quick), quick=quick)
