"""Benchmark: deep single-input recursions (book §5.4) and the criticality search (§5.3).

    python benchmarks/bench_recursions.py [--quick]

prints a table and writes benchmarks/results/recursions.json. ``run(quick)`` returns the rows.
Times are seconds after a warm-up call (JIT compilation excluded; the first call is reported separately),
wall-clock and CPU (the scan is single-threaded, so CPU time ≈ wall time on an idle machine).
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import statistics
import sys

import numpy as np

from _timing import stopwatch  # sibling module (the runner puts benchmarks/ on sys.path)
from deepeft.theory.criticality import criticality
from deepeft.theory.single_input import single_input_recursion

_GELU = dict(C_b=0.17292239, C_W=1.98305826)  # (5.105), K* = (3 + √17)/2


def _time(fn, repeats: int):
    """(result, first-call wall seconds, [(wall, cpu) seconds of the repeats after the warm-up])."""
    with stopwatch() as first:
        out = fn()  # warm-up: compiles
    times = []
    for _ in range(repeats):
        with stopwatch() as sw:
            out = fn()
        times.append((sw.wall, sw.cpu))
    return out, first.wall, times


def run(quick: bool = False) -> list[dict]:
    depth = 10_000 if quick else 100_000
    repeats = 1 if quick else 3
    cases = [
        ("tanh", "tanh", 1.0, {}, lambda r: {"l*K": float(r.layers[-1] * r.K[-1])}),
        ("gelu (half-stable)", "gelu", 3.9, _GELU, lambda r: {"K_L": float(r.K[-1])}),
        ("relu", "relu", 1.0, {"C_W": 2.0}, lambda r: {"V/(K^2 (L-1))": float(r.V[-1] / r.K[-1] ** 2 / (depth - 1))}),
    ]
    rows = []
    for label, act, K1, kw, check in cases:
        r, first, times = _time(lambda act=act, K1=K1, kw=kw: single_input_recursion(act, K1, depth, **kw), repeats)
        rows.append(
            {
                "name": f"single_input_recursion {label}",
                "depth": depth,
                "seconds": min(t for t, _ in times),
                "seconds_median": statistics.median(t for t, _ in times),
                "cpu_seconds": min(c for _, c in times),
                "first_call_seconds": first,
                "layers_per_second": depth / min(t for t, _ in times),
                "target_seconds": 1.0 if depth == 100_000 else None,
                "target": 1.0 if depth == 100_000 else None,
                "passed": (min(t for t, _ in times) < 1.0) if depth == 100_000 else None,
                **check(r),
            }
        )
    for act in ("tanh", "gelu") if not quick else ("tanh",):
        c, first, times = _time(lambda act=act: criticality(act), 0 if quick else 1)
        t = min(t for t, _ in times) if times else first
        rows.append(
            {
                "name": f"criticality({act!r}) incl. exponent fit",
                "depth": c.exponents.depth,
                "seconds": t,
                "seconds_median": t,
                "cpu_seconds": min(c for _, c in times) if times else None,
                "first_call_seconds": first,
                "class": c.universality_class,
            }
        )
    return rows


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    rows = run(quick=quick)
    print(f"{'benchmark':46s} {'depth':>7s} {'wall s':>7s} {'cpu s':>6s} {'1st s':>6s}")
    for r in rows:
        cpu = "—" if r["cpu_seconds"] is None else f"{r['cpu_seconds']:.3f}"
        print(f"{r['name']:46s} {r['depth']:7d} {r['seconds']:7.3f} {cpu:>6s} {r['first_call_seconds']:6.3f}")
    out = pathlib.Path(__file__).resolve().parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "quick": quick,
        "numpy": np.__version__,
    }
    (out / "recursions.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out / 'recursions.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
