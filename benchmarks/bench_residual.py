"""Residual-MLP multi-input four-point vertex (PDLT (B.24) with the three-point feed, docs/residual.md).

Target (issue 15): V for N = 8 inputs through 50 layers of a residual MLP ≤ 10 s, through the public API
``de.four_point_vertex``. Cases: tanh (odd σ: the book's recursion) and ReLU (with the three-point tensor U), both
at the residual critical point C_W(γ) with γ² = 0.5. The plain-MLP vertex of the same depth (γ = 0,
``de.MLP``) is timed in the same run as the baseline. Steady state (median after one compiling call) is the judged
number; the first call is reported too.

Run as a script to write benchmarks/results/residual.json.
"""

from __future__ import annotations

import math

import deepeft as de
from _timing import timed, unit_inputs, write_results  # sibling module (the runner puts benchmarks/ on sys.path)

TARGET_S = 10.0


def run(quick: bool = False) -> list[dict]:
    N, L, reps = (3, 6, 1) if quick else (8, 50, 1)
    X = unit_inputs(N)
    g = math.sqrt(0.5)
    rows = []
    for act in ("tanh", "relu"):
        cw = de.residual_critical_point(act, g).C_W
        # every layer ℓ ≥ 2 has the skip (output width n), so the whole stack sits at the critical point
        net = de.ResidualMLP(16, [128] * (L - 1), 128, act, C_W=[1.0] + [cw] * (L - 1), gamma=[0.0] + [g] * (L - 1))
        t = timed(lambda net=net: de.four_point_vertex(net, X), reps)
        row = {"name": f"residual_vertex_{act}_N{N}_L{L}", "seconds": t.warm, "cold_seconds": t.cold,
               "notes": f"median of {reps} after a compiling call (CPU {t.cpu:.2f} s)"}  # fmt: skip
        if act == "tanh":  # the judged row, with the plain-MLP vertex of the same size as the baseline
            base = timed(lambda net=net: de.four_point_vertex(net.mlp.replace(C_W=1.0), X), reps)
            row.update(target=TARGET_S, ratio=t.warm / TARGET_S, passed=t.warm <= TARGET_S)
            row["notes"] += f"; plain MLP vertex {base.warm:.2f} s in the same run (ratio {t.warm / base.warm:.2f})"
        else:
            row["notes"] += "; no target (kinked σ: larger quadrature grids, plus the three-point tensor U)"
        rows.append(row)
    return rows


if __name__ == "__main__":
    write_results("residual", run())
