"""Timing scaffolding shared by every benchmark module (``from _timing import …``; the runner and each benchmark's
own ``__main__`` put benchmarks/ on ``sys.path``).

* :func:`timed` — a public call as a user meets it: the first call (compilation included) and the median of warm
  repeats, wall and process CPU;
* :func:`seconds` / :func:`best_seconds` — the wall seconds of one call / the best of several after a warm-up;
* :class:`stopwatch` — wall and process CPU seconds of a ``with`` block;
* :func:`child_seconds` — wall and CPU seconds of a fresh process (imports and compilation included);
* :func:`gemm_peak_gflops` — this machine's GEMM rate now (the reference of the throughput rows);
* :func:`unit_inputs` — N random inputs with |x|²/n0 = 1;
* :func:`write_results` — the ``__main__`` epilogue: results/<name>.json and one printed line per row.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent


class Timing(NamedTuple):
    warm: float  # median wall seconds of the repeats after the first call
    cold: float  # wall seconds of the first call (compilation included)
    cpu: float  # median process CPU seconds of the repeats: the cost without a shared machine's contention


def timed(fn: Callable[[], object], repeats: int) -> Timing:
    """Call ``fn`` once (cold), then ``repeats`` times; see :class:`Timing`."""
    cold = seconds(fn)
    wall, cpu = [], []
    for _ in range(max(int(repeats), 1)):
        with stopwatch() as sw:
            fn()
        wall.append(sw.wall)
        cpu.append(sw.cpu)
    return Timing(statistics.median(wall), cold, statistics.median(cpu))


class stopwatch:  # noqa: N801 (used as a context manager, like a function)
    """``with stopwatch() as sw: …`` then ``sw.wall`` and ``sw.cpu`` (process CPU, all threads) in seconds."""

    wall: float
    cpu: float

    def __enter__(self) -> stopwatch:
        self._t, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._t
        self.cpu = time.process_time() - self._c


def seconds(fn: Callable[[], object]) -> float:
    """Wall seconds of one call of ``fn``."""
    with stopwatch() as sw:
        fn()
    return sw.wall


def best_seconds(fn: Callable[[], object], repeats: int, *, warmup: bool = True) -> float:
    """Best wall seconds of ``repeats`` calls (after one untimed call when ``warmup``): on a shared machine the
    least disturbed run."""
    if warmup:
        fn()
    return min(seconds(fn) for _ in range(max(int(repeats), 1)))


def child_seconds(cmd: Sequence[str], env: dict[str, str] | None = None, timeout: float = 600) -> tuple[float, float]:
    """(wall, CPU) seconds of one fresh process running ``cmd`` (user + sys of the child); raises if it fails."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(list(cmd), env=env, capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-400:]}")
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def gemm_peak_gflops(n: int = 2048, repeats: int = 5, *, float64: bool = False) -> float:
    """GFLOP/s of a jitted n×n matmul (float32, or float64), best of ``repeats`` after a warm-up."""
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(float64):
        a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float64 if float64 else jnp.float32)
        f = jax.jit(lambda x: x @ x)
        best = best_seconds(lambda: f(a).block_until_ready(), repeats)
    return 2 * n**3 / best / 1e9


def unit_inputs(N: int, n0: int = 16, seed: int = 0):
    """N standard-normal inputs of dimension n0, each rescaled to |x|²/n0 = 1."""
    import numpy as np

    X = np.random.default_rng(seed).normal(size=(N, n0))
    return X / np.sqrt(np.mean(X**2, axis=1, keepdims=True))


def write_results(name: str, rows: list[dict], *, quick: bool | None = None, indent: int = 2) -> Path:
    """Write benchmarks/results/<name>.json (the rows, or {"quick", "results"} when ``quick`` is given) and print
    one line per row."""
    out = HERE / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    data: object = rows if quick is None else {"quick": quick, "results": rows}
    out.write_text(json.dumps(data, indent=indent, default=float))
    for r in rows:
        print(json.dumps(r, default=float))
    return out
