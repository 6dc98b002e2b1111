"""Benchmark: NNGP + NTK (K^{(ℓ)}, Θ^{(ℓ)}) of a 20-hidden-layer MLP on N random inputs.

Targets (2 CPU cores, N = 1000, n0 = 10, L = 21, critical initialization, measured after warm-up):
tanh ≤ 1 s at ≤ 1e-9 relative error, ReLU ≤ 0.6 s, erf ≤ 0.3 s, peak memory ≤ 1 GB.
(neural-tangents on the same machine: ReLU 0.62 s, Erf 0.27 s, tanh via ElementwiseNumerical:
out of memory at N = 1000, 21.8 s at N = 400 with relative error ~1e-3.)

Accuracy reference: the kernel recursion is entrywise — K^{(ℓ+1)}_{αβ} depends only on the 2×2
block of K^{(ℓ)} on (α, β) — so a random subset of pairs is recomputed layer by layer with the
engine's independent nested Gauss–Legendre quadrature (no Mehler series, no closed forms).

Each case runs in a fresh subprocess so that its peak RSS (``resource.getrusage``) is its own.

    python benchmarks/bench_kernels.py [--quick]      # prints a table, writes benchmarks/results/kernels.json
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    # name: (activation, C_b, C_W, time target [s])
    "relu": ("relu", 0.0, 2.0, 0.6),
    "erf": ("erf", 0.0, math.pi / 4.0, 0.3),  # χ_⊥ = C_W σ'(0)² = 1 at K* = 0
    "tanh": ("tanh", 0.0, 1.0, 1.0),
}
ERR_TARGET = 1e-9
MEM_TARGET_MB = 1024.0


def _reference_pairs(net, X, pairs):
    """K, Θ on the given (α, β) pairs by nested quadrature only (independent of the fast path)."""
    import numpy as np

    from deepeft.gaussian.engine import Factor, expect

    a, b = pairs[:, 0], pairs[:, 1]
    n0 = X.shape[1]
    p = net.arrays()
    g = np.einsum("pi,pi->p", X[a], X[b]) / n0
    ga, gb = np.einsum("pi,pi->p", X[a], X[a]) / n0, np.einsum("pi,pi->p", X[b], X[b]) / n0
    K = np.stack([p["C_b"][0] + p["C_W"][0] * ga, p["C_b"][0] + p["C_W"][0] * gb, p["C_b"][0] + p["C_W"][0] * g], 1)
    T = p["lambda_b"][0] + p["lambda_W"][0] * g
    Ks, Ts = [K[:, 2].copy()], [T.copy()]
    act = net.activation
    for l in range(1, net.L):
        K2 = np.empty((len(pairs), 2, 2))
        K2[:, 0, 0], K2[:, 1, 1], K2[:, 0, 1] = K[:, 0], K[:, 1], K[:, 2]
        K2[:, 1, 0] = K2[:, 0, 1]
        ss = expect(act, (Factor(), Factor()), K2, method="quadrature", rtol=1e-13)
        dd = expect(act, (Factor((1,)), Factor((1,))), K2, method="quadrature", rtol=1e-13)
        d0 = expect(act, Factor((0, 0)), K2[:, :1, :1], method="quadrature", rtol=1e-13)
        d1 = expect(act, Factor((0, 0)), K2[:, 1:, 1:], method="quadrature", rtol=1e-13)
        T = p["lambda_b"][l] + p["lambda_W"][l] * ss + p["C_W"][l] * dd * T
        K = np.stack([p["C_b"][l] + p["C_W"][l] * d0, p["C_b"][l] + p["C_W"][l] * d1, p["C_b"][l] + p["C_W"][l] * ss], 1)
        Ks.append(K[:, 2].copy())
        Ts.append(T.copy())
    return np.array(Ks), np.array(Ts)


def _child(case: str, N: int, n_ref: int) -> dict:
    import resource

    import numpy as np

    import deepeft as de
    from deepeft.theory.kernel import kernel_and_ntk

    name, C_b, C_W, target = CASES[case]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, 10))
    net = de.MLP(10, [1000] * 20, 1, name, C_b=C_b, C_W=C_W, lambda_b=1.0, lambda_W=1.0)
    kernel_and_ntk(net, X)  # warm-up (compilation, caches)
    times = []
    K = T = None
    for _ in range(3):
        del K, T  # peak memory = one computation (the two (L, N, N) results are 2 × 168 MB at N = 1000)
        t0 = time.perf_counter()
        K, T = kernel_and_ntk(net, X)
        times.append(time.perf_counter() - t0)
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    pairs = rng.integers(0, N, size=(n_ref, 2))
    pairs[: min(20, n_ref), 1] = pairs[: min(20, n_ref), 0]  # include diagonal entries
    Kr, Tr = _reference_pairs(net, X, pairs)
    Kf, Tf = K[:, pairs[:, 0], pairs[:, 1]], T[:, pairs[:, 0], pairs[:, 1]]
    rel = lambda a, r: float(np.max(np.abs(a - r) / np.abs(r)))  # noqa: E731
    # size-normalised: |ΔK_αβ| / √(K_αα K_ββ) (entries near 0 make elementwise relative error meaningless)
    diagK = np.stack([np.diagonal(k) for k in K])
    diagT = np.stack([np.diagonal(t) for t in T])
    nK = np.sqrt(diagK[:, pairs[:, 0]] * diagK[:, pairs[:, 1]])
    nT = np.sqrt(np.abs(diagT[:, pairs[:, 0]] * diagT[:, pairs[:, 1]]))
    return {
        "name": f"nngp+ntk {case} L=21 N={N}",
        "activation": case,
        "N": N,
        "seconds": min(times),
        "seconds_all": times,
        "target_seconds": target,
        "ratio": min(times) / target,
        "value": min(times),
        "target": target,
        "peak_rss_mb": maxrss_mb,
        "target_rss_mb": MEM_TARGET_MB,
        "n_reference_pairs": int(n_ref),
        "max_rel_err_K": rel(Kf, Kr),
        "max_rel_err_ntk": rel(Tf, Tr),
        "max_scaled_err_K": float(np.max(np.abs(Kf - Kr) / nK)),
        "max_scaled_err_ntk": float(np.max(np.abs(Tf - Tr) / nT)),
        "target_rel_err": ERR_TARGET,
        "passed": bool(min(times) <= target and maxrss_mb <= MEM_TARGET_MB and rel(Kf, Kr) <= ERR_TARGET
                     and rel(Tf, Tr) <= ERR_TARGET),
    }


def run(quick: bool = False) -> list[dict]:
    """Rows {name, seconds, value, target, ratio, …} for ReLU, erf and tanh (quick: N = 200)."""
    N = 200 if quick else 1000
    n_ref = 20 if quick else 60
    rows = []
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for case in CASES:
        out = subprocess.run(
            [sys.executable, __file__, "--child", case, str(N), str(n_ref)],
            capture_output=True, text=True, env=env, check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"benchmark case {case} failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def _table(rows):
    hdr = f"{'case':<28}{'time s':>9}{'target':>8}{'RSS MB':>9}{'relerr K':>11}{'relerr Θ':>11}  pass"
    lines = [hdr, "-" * len(hdr)]
    for r in rows:
        lines.append(
            f"{r['name']:<28}{r['seconds']:>9.3f}{r['target']:>8.2f}{r['peak_rss_mb']:>9.0f}"
            f"{r['max_rel_err_K']:>11.1e}{r['max_rel_err_ntk']:>11.1e}  {r['passed']}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
        sys.exit(0)
    rows = run(quick="--quick" in sys.argv)
    print(_table(rows))
    out = Path(__file__).resolve().parent / "results" / "kernels.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    print(f"wrote {out}")
