"""Multi-input four-point vertex V^{(ℓ)} (4.119) (+ NLO metric (4.115)): N inputs through L layers.

Target: full V for N = 8 inputs, 10 layers of a smooth activation (tanh at criticality, K^{(1)} = 1)
in ≤ 10 s on 2 cores (steady state: median of repeats after one compiling call). GELU and ReLU rows
are reported without a target (see docs/vertex.md for the cost model C(N, 4)·M⁴ per layer).

Run as a script to write benchmarks/results/vertex.json.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np

import deepeft as de
from deepeft.theory.vertex import vertex_flow

TARGET_S = 10.0


def _inputs(N: int, n0: int = 16, seed: int = 0) -> np.ndarray:
    X = np.random.default_rng(seed).normal(size=(N, n0))
    return X / np.sqrt(np.mean(X**2, axis=1, keepdims=True))  # |x|²/n0 = 1 → K^{(1)} = C_b + C_W


def _time(net, X, nlo: bool, repeats: int):
    t0 = time.perf_counter()
    vertex_flow(net, X, nlo=nlo)
    cold = time.perf_counter() - t0
    ts, cs = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        vertex_flow(net, X, nlo=nlo)
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    return statistics.median(ts), cold, statistics.median(cs)


def run(quick: bool = False) -> list[dict]:
    N, L, reps = (4, 4, 1) if quick else (8, 10, 3)
    X = _inputs(N)
    cases = [("tanh", 0.0, 1.0, TARGET_S)]
    if not quick:
        cases += [("relu", 0.0, 2.0, None), ("gelu", 0.17292239, 1.98305826, None)]
    rows = []
    for act, C_b, C_W, target in cases:
        net = de.MLP(X.shape[1], [256] * (L - 1), 1, act, C_b=C_b, C_W=C_W)
        for nlo in (False, True):
            if act != "tanh" and nlo:
                continue
            sec, cold, cpu = _time(net, X, nlo, reps)
            row = {
                "name": f"vertex{'+nlo' if nlo else ''}_{act}_N{N}_L{L}",
                "seconds": sec,
                "cold_seconds": cold,
                "cpu_seconds": cpu,  # process CPU: the cost without the shared machine's contention
                "notes": f"median of {reps} after a compiling call; integrals/layer: C({N}+3,4) = "
                f"{int(np.prod(range(N, N + 4)) // 24)}",
            }
            if target is not None:
                row.update(target=target, ratio=sec / target, passed=sec <= target)
            rows.append(row)
    return rows


if __name__ == "__main__":
    res = run()
    out = Path(__file__).resolve().parent / "results" / "vertex.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    for r in res:
        print(r)
