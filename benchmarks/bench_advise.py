"""Issue 15: ``deepeft advise`` on a 100-layer MLP answers in ≤ 2 s, cold, including imports.

Each row runs the real command in a fresh process (``deepeft advise --activation tanh --depth 100 --width 100
--json``), as a user meets it, and reports its wall time and the child's CPU time (user + sys, which a shared
machine's contention inflates much less than wall time):

* ``advise_L100_cold_first_run`` — a brand-new JAX compilation cache (the very first run on a machine);
* ``advise_L100_cold`` — a new process with the persistent compilation cache of the first run (every later run);
* ``import_deepeft_baseline`` — ``python -c "import deepeft"`` alone, measured in the same run: the floor set by
  importing JAX/SciPy, which the command cannot go below.

The target (2 s) applies to both advise rows; ``--quick`` runs each once instead of the median of three.
Timings on the shared 2-core machine are noisy: indicative only.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from _timing import child_seconds  # sibling module (the runner puts benchmarks/ on sys.path)

TARGET_S = 2.0
_SCRIPT = Path(sys.executable).with_name("deepeft")
_CMD = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "deepeft.cli"]
_ADVISE = ["advise", "--activation", "tanh", "--depth", "100", "--width", "100", "--json"]


def _median(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)


def run(quick: bool = False) -> list[dict]:
    reps = 1 if quick else 3
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONWARNINGS="ignore")
    rows = []
    cache_root = Path(tempfile.mkdtemp(prefix="deepeft_bench_advise_"))
    try:
        first = []
        for i in range(reps):  # each with an empty cache
            first.append(child_seconds(_CMD + _ADVISE, dict(env, DEEPEFT_JAX_CACHE=str(cache_root / f"c{i}"))))
        warm_env = dict(env, DEEPEFT_JAX_CACHE=str(cache_root / "c0"))
        later = [child_seconds(_CMD + _ADVISE, warm_env) for _ in range(reps)]
        base = [child_seconds([sys.executable, "-c", "import deepeft"], env) for _ in range(reps)]
    finally:
        shutil.rmtree(cache_root, ignore_errors=True)
    for name, runs, note in (
        ("advise_L100_cold_first_run", first, "fresh process, empty JAX compilation cache"),
        ("advise_L100_cold", later, "fresh process, persistent compilation cache of an earlier run"),
    ):
        wall, cpu = _median(runs)
        rows.append({"name": name, "seconds": wall, "target": TARGET_S, "ratio": wall / TARGET_S,
                     "passed": bool(wall <= TARGET_S), "cpu_seconds": cpu,
                     "notes": f"deepeft {' '.join(_ADVISE)}; {note}; median of {reps}"})
    wall, cpu = _median(base)
    rows.append({"name": "import_deepeft_baseline", "seconds": wall, "target": None, "ratio": None, "passed": None,
                 "cpu_seconds": cpu, "notes": f"python -c 'import deepeft' (the floor); median of {reps}"})
    return rows
