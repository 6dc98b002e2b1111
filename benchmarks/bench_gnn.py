"""Benchmark: graph-convolution networks through the public API (``de.kernel`` on a ``de.GCN``, ``de.sample_ensemble``).

Targets (issue 16; 2 CPU cores):
* node kernel K^{(ℓ)} of a 2000-node sparse graph (Watts–Strogatz, 8 neighbours, sym-normalised Â with
  self-loops), 32 layers, ReLU: ≤ 5 s warm (the cold first call is reported). The N × N kernel is dense
  (32 layers × 2000² float64 = 1 GB returned); Â enters as sparse·dense products. tanh (Mehler series, no
  target) is reported alongside.
* ensembles of 10⁴ random GCNs of width 128 on the karate club (34 nodes, 4 layers): forward-pass GEMM
  throughput ≥ 30 % of the float32 GEMM peak measured in the same process (2048² matmul). The FLOP count is
  that of the forward pass (X W and Â(·) products) plus the per-network statistics (z zᵀ, Â σ, Ĝ).

    python benchmarks/bench_gnn.py [--quick]
"""

from __future__ import annotations

import sys
import warnings

from _timing import best_seconds, gemm_peak_gflops, seconds, stopwatch  # sibling module (the runner puts benchmarks/ on sys.path)


def _kernel_rows(quick: bool) -> list[dict]:
    import networkx as nx
    import numpy as np

    import deepeft as de

    N, L = (500, 8) if quick else (2000, 32)
    G = nx.connected_watts_strogatz_graph(N, 8, 0.1, seed=0)
    A = de.normalize_adjacency(nx.to_scipy_sparse_array(G), "sym")
    X = np.random.default_rng(0).normal(size=(N, 16))
    rows = []
    for act, C_W, target in (("relu", 2.0, 5.0), ("tanh", 1.5, None)):
        net = de.GCN(A, 16, [128] * (L - 1), 1, act, C_b=0.1, C_W=C_W)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cold = seconds(lambda net=net: de.kernel(net, X))
            with stopwatch() as sw:
                warm = best_seconds(lambda net=net: de.kernel(net, X), 2, warmup=False)
            cpu = sw.cpu / 2
        row = {"name": f"gcn_node_kernel_{act}_N{N}_L{L}", "seconds": warm,
               "notes": f"de.kernel(GCN), sparse Â ({A.nnz} nonzeros), warm best of 2; cold {cold:.2f} s; "
                        f"process CPU time per call {cpu:.2f} s (all threads: on a loaded machine the honest lower bound)"}
        if target is not None and not quick:
            row.update(target=target, ratio=warm / target, passed=warm <= target)
        rows.append(row)
    return rows


def _ensemble_rows(quick: bool) -> list[dict]:
    import networkx as nx
    import numpy as np

    import deepeft as de

    A = de.normalize_adjacency(nx.to_numpy_array(nx.karate_club_graph(), weight=None), "sym")
    N, n, n0, L = 34, 128, 34, 4
    S = 2000 if quick else 10_000
    net = de.GCN(A, n0, [n] * (L - 1), n, "relu", C_b=0.1, C_W=2.0)
    X = np.eye(N)
    de.sample_ensemble(net, X, 256, seed=1, vertex=False)  # compile
    t = best_seconds(lambda: de.sample_ensemble(net, X, S, seed=2, vertex=False), 2, warmup=False)
    widths = net.n
    per_net = 0
    for l in range(1, L + 1):
        per_net += 2 * N * widths[l - 1] * widths[l] + 2 * N * N * widths[l]  # a W, Â (a W)
        per_net += 2 * N * N * widths[l] + 2 * N * N * widths[l - 1] + 2 * N * N * widths[l - 1]  # z zᵀ, Â σ, Ĝ
    gflops = per_net * S / t / 1e9
    peak = gemm_peak_gflops()
    frac = gflops / peak
    return [{
        "name": f"gcn_ensemble_karate_width{n}_S{S}", "seconds": t, "value": frac, "target": 0.3, "better": "higher",
        "passed": bool(frac >= 0.3) if not quick else None, "gflops": gflops,
        "notes": f"{gflops:.1f} GFLOP/s = {frac:.0%} of the float32 GEMM peak {peak:.0f} GFLOP/s (2048² matmul, same "
                 "process); includes drawing the weights (one normal draw per network)",
    }]


def run(quick: bool = False) -> list[dict]:
    rows = _kernel_rows(quick) + _ensemble_rows(quick)
    for r in rows:
        if r.get("passed") is None:
            r.pop("passed", None)
            if quick:
                r.pop("target", None), r.pop("ratio", None), r.pop("better", None), r.pop("value", None)
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
