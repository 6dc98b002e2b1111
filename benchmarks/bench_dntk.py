"""dNTK / ddNTK statistics (PDLT §11.3, §∞.1): single-input P, Q, R, S, T, U to ℓ = 10⁵.

Target (issue 14): single-input P, Q, R, S, T, U to ℓ = 10⁵ ≤ 1 s (critical tanh, equivalence-principle rates
λ_b = 1/ℓ, λ_W = 1, |x|²/n0 = 1), through the public API de.ddntk_single_input. Steady state (median after one
compiling call) is the judged number; the first (compiling) call is reported too. The NTK part it builds on
(de.ntk_single_input: K, V, Θ, A, B, D, F) is timed in the same run as the baseline, and de.dntk_single_input
(P, Q only) as a second row.

Run as a script to write benchmarks/results/dntk.json.
"""

from __future__ import annotations

import numpy as np

import deepeft as de
from _timing import timed, write_results  # sibling module (the runner puts benchmarks/ on sys.path)

TARGET_SINGLE_S = 1.0




def run(quick: bool = False) -> list[dict]:
    depth, reps = (10_000, 2) if quick else (100_000, 3)
    ell = np.arange(1, depth + 1)
    net = de.MLP(1, [128] * (depth - 1), 1, "tanh", C_b=0.0, C_W=1.0, lambda_b=1.0 / ell, lambda_W=1.0)
    base, _, base_cpu = timed(lambda: de.ntk_single_input(net, norm=1.0), reps)
    rows = []
    for name, fn, what in (("ddntk_single_input", de.ddntk_single_input, "P, Q, R, S, T, U"),
                           ("dntk_single_input", de.dntk_single_input, "P, Q")):
        sec, cold, cpu = timed(lambda fn=fn: fn(net, norm=1.0), reps)
        rows.append({"name": f"{name}_tanh_L{depth}", "seconds": sec, "cold_seconds": cold, "cpu_seconds": cpu,
                     "target": TARGET_SINGLE_S, "ratio": sec / TARGET_SINGLE_S, "passed": sec <= TARGET_SINGLE_S,
                     "measured": sec,
                     "notes": f"{what}; median of {reps} after a compiling call; of which ntk_single_input "
                              f"(K, V, Θ, A, B, D, F) {base:.2f} s wall, {base_cpu:.2f} s CPU in the same run"})
    return rows


if __name__ == "__main__":
    write_results("dntk", run())
