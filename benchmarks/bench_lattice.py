"""Benchmark: exact conditional lattice sampler vs explicit-weight networks (paper App. 8.3 protocol).

Paper size: linear φ, σ_w² = 0.9, σ_b² = 0.01, N = 200, L = 1024, M = 200 networks (quick: N = 64, L = 128,
M = 50; speed-up target 10×). Target: the conditional sampler z^l | z^{l−1} ~ N(0, Σ^l I) (O(L·N·M)) is ≥ 50× faster than the
full-weight sampler (O(L·N²·M)), and draws the same distribution (two-sample KS tests on the window-mean
norm and the last-layer norm; p > 1e-3).

    python benchmarks/bench_lattice.py [--quick]     # writes benchmarks/results/lattice.json
"""

from __future__ import annotations

import sys

from scipy import stats

import deepeft.lattice as dl
from _timing import stopwatch, timed, write_results  # sibling module (the runner puts benchmarks/ on sys.path)

SW, SB = 0.9, 0.01


def run(quick: bool = False) -> list[dict]:
    N, L, M = (64, 128, 50) if quick else (200, 1024, 200)
    chunk = M if quick else 50
    kw = dict(N=N, L=L, n_networks=M, chunk=chunk)
    t_cond = timed(lambda: dl.sample_conditional("linear", SW, SB, seed=1, **kw), 3).warm  # median after a warm-up
    cond = dl.sample_conditional("linear", SW, SB, seed=1, **kw)
    # full weights: warm up on one chunk (same compiled shape), time one full run
    dl.sample_full_weights("linear", SW, SB, N=N, L=L, n_networks=chunk, chunk=chunk, seed=99)
    with stopwatch() as sw:
        full = dl.sample_full_weights("linear", SW, SB, seed=2, **kw)
    t_full = sw.wall
    w = slice(L // 2, L)
    p_mean = stats.ks_2samp(cond.r[:, w, 0].mean(1), full.r[:, w, 0].mean(1)).pvalue
    p_last = stats.ks_2samp(cond.r[:, -1, 0], full.r[:, -1, 0]).pvalue
    rs2 = dl.saddle_linear(SW, SB, N) ** 2
    speedup = t_full / t_cond
    target = 10.0 if quick else 50.0  # the speed-up grows ∝ N: the ≥ 50× target is for N = 200
    size = f"N{N}_L{L}_M{M}"
    return [
        {"name": f"lattice_conditional_{size}", "seconds": t_cond, "notes": "median of 3 after warm-up",
         "mean_r2_over_rstar2": float((cond.r[:, w, 0].astype(float) ** 2).mean() / rs2)},
        {"name": f"lattice_full_weights_{size}", "seconds": t_full, "notes": "one run after a one-chunk warm-up",
         "mean_r2_over_rstar2": float((full.r[:, w, 0].astype(float) ** 2).mean() / rs2)},
        {"name": f"lattice_speedup_{size}", "seconds": t_cond, "target": target, "value": speedup,
         "better": "higher", "speedup": speedup,
         "ratio": target / speedup, "passed": bool(speedup >= target and min(p_mean, p_last) > 1e-3),
         "ks_p_window_mean": float(p_mean), "ks_p_last_layer": float(p_last),
         "notes": f"speed-up t_full/t_cond (larger is better, target >= {target:g}) and same distribution (KS p > 1e-3)"},
    ]


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    write_results("lattice", run(quick=quick), quick=quick)
