"""``deepeft diagnose`` on a 50-layer, width-1024 MLP (issue 17 target: ≤ 10 s), as a user meets it.

Rows: (1) the command line ``deepeft diagnose model.pt --activation relu`` in a fresh process (Python and deepeft
import, torch.load, 50 spectra, criticality, table) — the target; (2) the public API ``de.diagnose`` on the
loaded model, first call (compilation of the criticality/phase recursions) and warm; (3) the spectra alone
(50 eigendecompositions of 1024 × 1024 Gram matrices, the floor). The state dict is written by PyTorch when it
is installed, else the model is built from NumPy arrays and only rows (2)–(3) run. The machine has 2 shared
cores: numbers are indicative; the 1-min load average is recorded.

    python benchmarks/bench_diagnose.py [--quick]     # quick: 10 layers of width 512
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import deepeft as de

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _timing import stopwatch, timed, write_results  # noqa: E402

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
            with stopwatch() as sw:
                r = subprocess.run([*cmd, "diagnose", str(path), "--activation", "relu"], capture_output=True,
                                   text=True, env=env, check=False)
            t_cli = sw.wall
        ok = r.returncode == 0 and "critical" in r.stdout
        rows.append({"name": f"diagnose_cli_{size}", "seconds": t_cli, "target": TARGET_SECONDS,
                     "ratio": t_cli / TARGET_SECONDS, "passed": bool(ok and t_cli <= TARGET_SECONDS),
                     "load_1min": load, "notes": "fresh process: import + torch.load + diagnose + table"})
    tm = timed(lambda: de.diagnose(im), repeats=1 if not quick else 2)
    rows.append({"name": f"diagnose_api_{size}", "seconds": tm.warm, "cold_seconds": tm.cold, "cpu_seconds": tm.cpu,
                 "load_1min": load, "notes": "de.diagnose(model): warm (cold = first call, compiles χ recursions)"})
    ts = timed(lambda: [de.weight_spectrum(W) for W in Ws], repeats=1)
    rows.append({"name": f"weight_spectra_{size}", "seconds": ts.warm, "cpu_seconds": ts.cpu, "load_1min": load,
                 "notes": f"{depth} × de.weight_spectrum (float64 eigvalsh of {width}² Gram matrices)"})
    return rows


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    write_results("diagnose", run(quick=quick), quick=quick)
