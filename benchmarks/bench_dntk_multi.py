"""Multi-input dNTK and ddNTK statistics (PDLT (11.49), (11.52), (∞.172)–(∞.176)): P, Q, R, S, T, U.

Target (issue 14): all of P..U for N = 6 inputs, depth 6, a smooth activation (tanh at criticality,
|x|²/n0 = 1) ≤ 30 s, through the public API ``de.ddntk`` (which returns P, Q as well). Steady state (median
after one compiling call) is the judged number; the first (compiling) call is reported too. The NTK
fluctuations A, B, D, F of the same network (``de.ntk_fluctuations``, which ``de.ddntk`` builds on) are timed
in the same run as the baseline, and ``de.dntk`` (P, Q only) alongside.

Run as a script to write benchmarks/results/dntk_multi.json.
"""

from __future__ import annotations

import deepeft as de
from _timing import timed, unit_inputs, write_results  # sibling module (the runner puts benchmarks/ on sys.path)

TARGET_S = 30.0




def run(quick: bool = False) -> list[dict]:
    N, L, reps = (3, 3, 1) if quick else (6, 6, 2)
    X = unit_inputs(N)
    net = de.MLP(16, [128] * (L - 1), 1, "tanh", C_b=0.0, C_W=1.0)
    base, _, _ = timed(lambda: de.ntk_fluctuations(net, X), reps)
    pq, pq_cold, _ = timed(lambda: de.dntk(net, X), reps)
    sec, cold, _ = timed(lambda: de.ddntk(net, X), reps)
    return [
        {
            "name": f"ddntk_PQRSTU_tanh_N{N}_L{L}",
            "seconds": sec,
            "cold_seconds": cold,
            "target": TARGET_S,
            "ratio": sec / TARGET_S,
            "passed": sec <= TARGET_S,
            "notes": f"median of {reps} after a compiling call; ntk_fluctuations alone {base:.2f} s in the same run",
        },
        {
            "name": f"dntk_PQ_tanh_N{N}_L{L}",
            "seconds": pq,
            "cold_seconds": pq_cold,
            "notes": f"P, Q only (no target of its own); ntk_fluctuations alone {base:.2f} s in the same run",
        },
    ]


if __name__ == "__main__":
    write_results("dntk_multi", run())
