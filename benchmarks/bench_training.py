"""Trained-ensemble throughput and memory (issue 12 benchmarks (b) and (c)), through ``de.train_ensemble``.

(b) Full-batch GD of MLPs of width 1024 and depth L = 4 (n_0 = n_1 = n_2 = n_3 = 1024, n_L = 10, ReLU),
    N = 256 training inputs: achieved FLOP/s (dense FLOPs of forward + backward + update, counted by
    :func:`flops_per_network_step`) of a warm run, against a 2048² float32 matmul measured in the same
    process (``_timing.gemm_peak_gflops``). Target ≥ 40 % of that peak. The first (compiling) call is reported too.
(c) Memory: ``store="moments"`` ensembles of 10³ and 10⁵ networks (GD, small MLP) each run in a fresh
    subprocess that reports its peak RSS; target: the 10⁵ run's peak RSS ≤ 1.1 × the 10³ run's.
Machine load (2 shared cores) makes both numbers indicative; the 1-min load average is recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import deepeft as de

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _timing import gemm_peak_gflops, stopwatch, write_results  # noqa: E402  (sibling module, after the sys.path insert)

THROUGHPUT_FRACTION = 0.40
MEMORY_RATIO = 1.10


def flops_per_network_step(net, N: int) -> int:
    """Dense FLOPs of one full-batch GD step of one network on N inputs: per layer the forward GEMM
    (2N n_ℓ n_{ℓ−1}), the weight gradient (same), the error backpropagation into layer ℓ−1 for ℓ ≥ 2
    (same), and the update (2 per parameter). Elementwise activation work is not counted."""
    n = net.n
    f = 0
    for l in range(1, net.L + 1):
        mn = n[l] * n[l - 1]
        f += 2 * N * mn * (3 if l > 1 else 2) + 2 * (mn + n[l])
    return f


def throughput(quick: bool) -> dict:
    width, N = (256, 64) if quick else (1024, 256)
    net = de.MLP(width, [width] * 3, 10, "relu", C_W=2.0, lambda_W=1.0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, width))
    Y = rng.standard_normal((N, 10))
    M, steps = (4, 5) if quick else (4, 10)
    kw = {"times": [0, steps], "eta": 1e-4, "seed": 0}  # η below 2/λ_max(Θ̃) (Θ̃ ~ N·L): stable
    with stopwatch() as sw:
        de.train_ensemble(net, X, Y, M, **kw)  # first call: compiles
    first = sw.wall
    with stopwatch() as sw:
        run = de.train_ensemble(net, X, Y, M, **kw)
    warm = sw.wall
    assert np.all(np.isfinite(run.train_loss))
    flops = flops_per_network_step(net, N) * M * steps
    achieved = flops / warm / 1e9
    peak = gemm_peak_gflops()
    frac = achieved / peak
    load = os.getloadavg()[0]
    return {
        "name": f"train_gd_width{width}_L4_N{N}_flops_fraction",
        "seconds": warm,
        "target": THROUGHPUT_FRACTION,
        "value": frac,
        "better": "higher",
        "measured": frac,
        "ratio": frac / THROUGHPUT_FRACTION,
        "passed": bool(frac >= THROUGHPUT_FRACTION),
        "gflops": achieved,
        "gemm_peak_gflops": peak,
        "first_call_seconds": first,
        "n_networks": M,
        "steps": steps,
        "micro_batch": run.micro_batch,
        "load_avg_1min": load,
        "notes": f"{M} networks × {steps} GD steps (+2 recordings) warm; target fraction of GEMM peak ≥ "
                 f"{THROUGHPUT_FRACTION:g} (ratio = measured/target, ≥ 1 passes); load {load:.1f} on {os.cpu_count()} cores",
    }


_CHILD = r"""
import json, sys, time
import numpy as np
import deepeft as de
M, store = int(sys.argv[1]), sys.argv[2]
net = de.MLP(4, [32, 32], 1, "tanh", C_W=1.0)
rng = np.random.default_rng(0)
X, Y, Xt = rng.standard_normal((8, 4)), rng.standard_normal((8, 1)), rng.standard_normal((32, 4))
t = time.perf_counter()
r = de.train_ensemble(net, X, Y, M, times=[0, 5, 10, 15, 20], eta=0.1, X_test=Xt, store=store, seed=0)
sec = time.perf_counter() - t
m = r.mean("test")
assert np.all(np.isfinite(m.value))
sys.path.insert(0, sys.argv[3])
from _rss import peak_rss_mb  # this process's own peak (ru_maxrss would report the runner's after fork)
print(json.dumps({"seconds": sec, "rss_mb": peak_rss_mb(), "micro_batch": r.micro_batch}))
"""


def _child(M: int, store: str = "moments") -> dict:
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    cmd = [sys.executable, "-c", _CHILD, str(M), store, str(HERE)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory(quick: bool) -> list[dict]:
    small, large = (1_000, 20_000) if quick else (1_000, 100_000)
    a, b = _child(small), _child(large)
    c = _child(large, "outputs")
    ratio = b["rss_mb"] / a["rss_mb"]
    control = {
        "name": f"train_outputs_memory_{large}_vs_{small}_networks_control",
        "seconds": c["seconds"],
        "measured": c["rss_mb"] / a["rss_mb"],
        "rss_large_outputs_mb": c["rss_mb"],
        "notes": "control (no target): the same run with store='outputs' keeps (M, 5, 40, 1) float64 outputs, "
                 "showing the RSS comparison detects per-network storage",
    }
    return [{
        "name": f"train_moments_memory_{large}_vs_{small}_networks",
        "seconds": b["seconds"],
        "target": MEMORY_RATIO,
        "value": ratio,
        "measured": ratio,
        "ratio": ratio / MEMORY_RATIO,
        "passed": bool(ratio <= MEMORY_RATIO),
        "rss_small_mb": a["rss_mb"],
        "rss_large_mb": b["rss_mb"],
        "seconds_small": a["seconds"],
        "micro_batch": b["micro_batch"],
        "notes": f"peak RSS of fresh subprocesses, store='moments', 4-32-32-1 tanh MLP, 20 GD steps, 8 train + 32 test "
                 f"inputs recorded at 5 times; target RSS({large})/RSS({small}) ≤ {MEMORY_RATIO:g}",
    }, control]


def run(quick: bool = False) -> list[dict]:
    return [throughput(quick), *memory(quick)]


if __name__ == "__main__":
    write_results("training", run("--quick" in sys.argv), indent=1)
