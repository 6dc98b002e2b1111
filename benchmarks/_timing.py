"""Timing a public call as a user meets it: the first call (compilation included) and the median of warm repeats.

One helper for the benchmark modules (``from _timing import timed``; the runner puts benchmarks/ on ``sys.path``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import NamedTuple


class Timing(NamedTuple):
    warm: float  # median wall seconds of the repeats after the first call
    cold: float  # wall seconds of the first call (compilation included)
    cpu: float  # median process CPU seconds of the repeats: the cost without a shared machine's contention


def timed(fn: Callable[[], object], repeats: int) -> Timing:
    """Call ``fn`` once (cold), then ``repeats`` times; see :class:`Timing`."""
    t0 = time.perf_counter()
    fn()
    cold = time.perf_counter() - t0
    wall, cpu = [], []
    for _ in range(max(int(repeats), 1)):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return Timing(statistics.median(wall), cold, statistics.median(cpu))
