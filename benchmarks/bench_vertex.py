"""Multi-input four-point vertex V^{(ℓ)} (4.119) (+ NLO metric (4.115)): N inputs through L layers.

Target: full V for N = 8 inputs, 10 layers of a smooth activation (tanh at criticality, K^{(1)} = 1)
in ≤ 10 s on 2 cores (steady state: median of repeats after one compiling call). GELU and ReLU rows
are reported without a target (see docs/vertex.md for the cost model C(N, 4)·M⁴ per layer).

Run as a script to write benchmarks/results/vertex.json.
"""

from __future__ import annotations

import numpy as np

import deepeft as de
from _timing import timed, unit_inputs, write_results  # sibling module (the runner puts benchmarks/ on sys.path)
from deepeft.theory.vertex import vertex_flow

TARGET_S = 10.0


def run(quick: bool = False) -> list[dict]:
    N, L, reps = (4, 4, 1) if quick else (8, 10, 3)
    X = unit_inputs(N)  # |x|²/n0 = 1 → K^{(1)} = C_b + C_W
    cases = [("tanh", 0.0, 1.0, TARGET_S)]
    if not quick:
        cases += [("relu", 0.0, 2.0, None), ("gelu", 0.17292239, 1.98305826, None)]
    rows = []
    for act, C_b, C_W, target in cases:
        net = de.MLP(X.shape[1], [256] * (L - 1), 1, act, C_b=C_b, C_W=C_W)
        for nlo in (False, True):
            if act != "tanh" and nlo:
                continue
            sec, cold, cpu = timed(lambda net=net, nlo=nlo: vertex_flow(net, X, nlo=nlo), reps)
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
    write_results("vertex", run())
