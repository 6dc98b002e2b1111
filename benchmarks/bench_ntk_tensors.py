"""dNTK/ddNTK tensors (PDLT (11.8), (∞.5), (∞.7)) per network and their ensemble statistics P, Q, R, S, T, U.

No target is set by issue 14 for these (they feed the theory-vs-ensemble tests); the rows report the user-facing
time through the public API — first (compiling) call and steady state (median of repeats) — with a baseline in
the same run: the per-network NTK by autodiff (``empirical_ntk(method="autodiff")``) of the same network, and
``ntk_statistics`` (A, B, D, F) of the same ensemble.

Run as a script to write benchmarks/results/ntk_tensors.json.
"""

from __future__ import annotations

import numpy as np

import deepeft as de
from _timing import timed, write_results  # sibling module (the runner puts benchmarks/ on sys.path)


def run(quick: bool = False) -> list[dict]:
    n, N, M, reps = (16, 2, 128, 1) if quick else (64, 3, 1024, 3)
    X = np.random.default_rng(0).normal(size=(N, 8))
    net = de.MLP(8, [n, n], 4, "tanh", C_b=0.0, C_W=1.0)
    p = de.sample_params(net, seed=0, dtype="float64")
    rows = []
    base, _, _ = timed(lambda: de.empirical_ntk(net, X, p, method="autodiff", dtype="float64"), reps)
    sec, cold, _ = timed(lambda: de.empirical_ddntk(net, p, X), reps)
    rows.append({"name": f"empirical_ddntk_tanh_n{n}_L3_N{N}_nL4", "seconds": sec, "cold_seconds": cold,
                 "notes": f"z, Ĥ, dĤ, dd_IĤ, dd_IIĤ of the 4 outputs; median of {reps} after a compiling call; "
                          f"the NTK alone (autodiff) {base * 1e3:.1f} ms in the same run"})
    sec, cold, _ = timed(lambda: de.empirical_ddntk(net, p, X, layer=2, neurons=(0, 1, 2, 3)), reps)
    rows.append({"name": f"empirical_ddntk_hidden_neurons4_n{n}_N{N}", "seconds": sec, "cold_seconds": cold,
                 "notes": "layer 2, 4 of the n neurons (neurons=...)"})
    Xs = X[:2]
    w = 16 if quick else 32
    snet = de.MLP(8, [w, w], w, "tanh", C_b=0.0, C_W=1.0)
    base, _, _ = timed(lambda: de.ntk_statistics(snet, Xs, M, seed=0, blocks=8, micro_batch=16), 1)
    for fname, fn in (("dntk_statistics", de.dntk_statistics), ("ddntk_statistics", de.ddntk_statistics)):
        sec, cold, _ = timed(lambda fn=fn: fn(snet, Xs, M, seed=0), 1)
        rows.append({"name": f"{fname}_tanh_n{w}_L3_N2_M{M}", "seconds": sec, "cold_seconds": cold,
                     "networks_per_s": M / sec,
                     "notes": f"layers 2, 3, 8 neurons each; ntk_statistics (A, B, D, F) {base:.2f} s in the same run"})
    return rows


if __name__ == "__main__":
    write_results("ntk_tensors", run())
