"""Benchmark runner behind ``make bench``.

Discovers ``benchmarks/bench_*.py`` modules, calls each one's ``run(quick: bool = False) -> list[dict]``,
prints one aligned table and writes ``benchmarks/results/all.json`` (results + machine info).

Usage::

    python benchmarks/run.py                 # every bench_*.py
    python benchmarks/run.py -k kernels      # only modules whose name contains / globs "kernels"
    python benchmarks/run.py --quick         # reduced sizes (what each module's run(quick=True) means)
    python benchmarks/run.py --list          # show what would run

A module that raises, or returns something that is not a list of result dicts, becomes an ``ERROR``
row in the table and the JSON; the other modules still run. The exit status is 1 when any module
errored or any result has ``passed: false``, else 0. See benchmarks/README.md for the convention.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import difflib
import fnmatch
import importlib.util
import json
import math
import numbers
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "all.json"
STANDARD = ("name", "seconds", "target", "ratio", "passed", "notes")
# keys that say how ``passed`` relates to ``target``: the measured ``value`` (default: ``seconds``) and whether
# ``better`` is "lower" (default: a time or a size) or "higher" (a speed-up, a fraction of peak)
TARGET_KEYS = ("value", "better")
RESERVED = STANDARD + TARGET_KEYS
# free-form metric keys are allowed, but never one that reads as a pass/fail flag or a misspelt reserved key:
# a row {"pass": True} would otherwise never be counted (the runner reads ``passed``)
_ALIASES = {"pass", "passes", "pass_", "ok", "success", "succeeded", "fail", "failed", "failure", "status",
            "result", "target_met", "met", "good", "valid"}


# -- discovery and selection -------------------------------------------------------------------


def discover(directory: Path = HERE) -> list[Path]:
    """The ``bench_*.py`` files of ``directory``, sorted by name."""
    return sorted(p for p in Path(directory).glob("bench_*.py") if p.is_file())


def selected(path: Path, patterns: list[str] | None) -> bool:
    """True when no pattern is given or one matches the module name (substring or glob, case-insensitive).

    ``bench_kernels.py`` matches ``kernels``, ``bench_kern*``, ``KERNELS`` and ``bench_kernels``.
    """
    if not patterns:
        return True
    stem = path.stem.lower()
    short = stem.removeprefix("bench_")
    for pat in patterns:
        p = pat.lower().removesuffix(".py")
        if p in stem or fnmatch.fnmatchcase(stem, p) or fnmatch.fnmatchcase(short, p):
            return True
    return False


# -- running one module --------------------------------------------------------------------------


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"_deepeft_bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _jsonable(v):
    """Plain JSON value: numpy scalars → Python numbers, non-finite floats → None, others → str."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if hasattr(v, "item") and getattr(v, "shape", None) == ():
        v = v.item()
    if isinstance(v, bool):
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)


def _check_rows(rows) -> list[dict]:
    if not isinstance(rows, (list, tuple)):
        raise TypeError(f"run() must return a list of dicts, got {type(rows).__name__}")
    out = []
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise TypeError(f"result {i} is a {type(r).__name__}, not a dict")
        if not isinstance(r.get("name"), str) or not r["name"]:
            raise TypeError(f"result {i} has no string 'name': {r!r}")
        s = r.get("seconds")
        if isinstance(s, bool) or not isinstance(s, numbers.Real) or not math.isfinite(float(s)):
            raise TypeError(f"result {r['name']!r} has no finite number 'seconds': {s!r}")
        for k in r:
            _check_key(r["name"], str(k))
        p = r.get("passed")
        if p is not None and not isinstance(p, (bool, *np_bool_types())):
            raise TypeError(f"result {r['name']!r}: 'passed' must be true, false or null, got {p!r}")
        _check_target(r)
        out.append({str(k): _jsonable(v) for k, v in r.items()})
    return out


def np_bool_types() -> tuple[type, ...]:
    try:
        import numpy as np

        return (np.bool_,)
    except ImportError:  # pragma: no cover - numpy is a dependency
        return ()


def _check_key(name: str, key: str) -> None:
    """Unknown keys are free-form metrics, except those that read as a pass flag or a misspelt reserved key."""
    if key in RESERVED:
        return
    low = key.lower()
    close = difflib.get_close_matches(low, RESERVED, n=1, cutoff=0.8)
    if low in _ALIASES or low in RESERVED or (close and abs(len(low) - len(close[0])) <= 2):
        hint = f" (did you mean {close[0]!r}?)" if close else " (the runner reads 'passed')"
        raise TypeError(f"result {name!r} has the unknown key {key!r}{hint}; reserved keys are {', '.join(RESERVED)}")


def _check_target(r: dict) -> None:
    """No row passes without its target met: with a numeric ``target``, ``passed: true`` needs
    value ≤ target (``better`` = "lower", the default) or value ≥ target (``better`` = "higher");
    ``value`` defaults to ``seconds``."""
    better = r.get("better", "lower")
    if better not in ("lower", "higher"):
        raise TypeError(f"result {r['name']!r}: 'better' must be 'lower' or 'higher', got {better!r}")
    target = r.get("target")
    if target is None:
        if "value" in r or "better" in r:
            raise TypeError(f"result {r['name']!r} gives 'value'/'better' but no 'target'")
        return
    if isinstance(target, bool) or not isinstance(target, numbers.Real) or not math.isfinite(float(target)):
        raise TypeError(f"result {r['name']!r}: 'target' must be a finite number, got {target!r}")
    value = r.get("value", r["seconds"])
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"result {r['name']!r}: 'value' must be a number, got {value!r}")
    met = math.isfinite(float(value)) and (value <= target if better == "lower" else value >= target)
    if r.get("passed") and not met:
        raise TypeError(
            f"result {r['name']!r} says passed but its target is not met: value {value!r} vs target {target!r} "
            f"({better} is better); fix the row's 'passed' (or its 'value'/'better')"
        )


def run_module(path: Path, quick: bool = False) -> dict:
    """Import and run one benchmark module; never raises (errors are recorded in the returned dict)."""
    t0 = time.perf_counter()
    record = {"module": path.stem, "file": str(path), "status": "ok", "error": None, "results": []}
    try:
        module = _load(path)
        fn = getattr(module, "run", None)
        if not callable(fn):
            raise AttributeError(f"{path.name} defines no run(quick: bool = False) -> list[dict]")
        record["results"] = _check_rows(fn(quick=quick))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - a failing benchmark is data, not a crash (SystemExit too)
        record["status"] = "error"
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc()
    record["wall_seconds"] = time.perf_counter() - t0
    return record


# -- machine info --------------------------------------------------------------------------------


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _mem_total_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 2)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _version(dist: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001 - not installed
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict:
    """Where the numbers were measured (cpu, memory, library versions, time)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = {
        "timestamp": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "cpu_model": _cpu_model(),
        "mem_total_gb": _mem_total_gb(),
        "jax_platforms": os.environ.get("JAX_PLATFORMS"),
        "git_commit": _git_commit(),
    }
    for dist in ("deepeft", "jax", "jaxlib", "numpy", "scipy", "torch"):
        info[f"{dist}_version"] = _version(dist)
    return info


# -- table ---------------------------------------------------------------------------------------


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def rows_for_table(records: list[dict]) -> list[list[str]]:
    rows = []
    for rec in records:
        mod = rec["module"].removeprefix("bench_")
        if rec["status"] != "ok":
            first = (rec["error"].splitlines() or [""])[0]
            rows.append([mod, "ERROR", "", "", "", "NO", first[:120]])
            continue
        if not rec["results"]:
            rows.append([mod, "(no results)", "", "", "", "", ""])
        for r in rec["results"]:
            extra = [f"{k}={_fmt(v)}" for k, v in r.items() if k not in STANDARD and isinstance(v, (int, float))]
            notes = "; ".join(x for x in [_fmt(r.get("notes")), " ".join(extra)] if x)
            rows.append(
                [
                    mod,
                    r["name"],
                    _fmt(r["seconds"]),
                    _fmt(r.get("target")),
                    _fmt(r.get("ratio")),
                    _fmt(r.get("passed")),
                    notes,
                ]
            )
    return rows


def format_table(records: list[dict]) -> str:
    """One aligned plain-text table of every result (numbers right-aligned)."""
    header = ["module", "benchmark", "seconds", "target", "ratio", "passed", "notes"]
    rows = rows_for_table(records)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    right = {2, 3, 4}

    def line(cells):
        out = [str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def summarize(records: list[dict]) -> dict:
    results = [r for rec in records for r in rec["results"]]
    return {
        "modules": len(records),
        "module_errors": sum(rec["status"] != "ok" for rec in records),
        "benchmarks": len(results),
        "passed": sum(r.get("passed") is True for r in results),
        "failed": sum(r.get("passed") is False for r in results),
    }


# -- main ----------------------------------------------------------------------------------------


def write_json(path: Path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run deepeft's benchmarks/bench_*.py modules.")
    ap.add_argument("-k", dest="patterns", action="append", metavar="PATTERN",
                    help="only modules whose name contains / glob-matches PATTERN (repeatable)")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="reduced sizes (passed to run(quick=True))")
    ap.add_argument("--list", action="store_true", help="list the selected modules and exit")
    ap.add_argument("--dir", type=Path, default=HERE, help="where bench_*.py live (default: this folder)")
    ap.add_argument("--out", type=Path, default=None, help="JSON output (default: <dir>/results/all.json)")
    args = ap.parse_args(argv)

    directory = args.dir.resolve()
    out = args.out or directory / "results" / "all.json"
    paths = [p for p in discover(directory) if selected(p, args.patterns)]
    if args.list:
        print("\n".join(p.name for p in paths) or "(no benchmark modules selected)")
        return 0
    if not paths:
        which = f" matching {args.patterns}" if args.patterns else ""
        print(f"no bench_*.py modules{which} in {directory}", file=sys.stderr)
        return 2

    if str(directory) not in sys.path:  # modules may import helpers that sit next to them
        sys.path.insert(0, str(directory))
    payload = {"machine": machine_info(), "quick": args.quick, "patterns": args.patterns, "modules": []}
    for p in paths:
        print(f"running {p.name}{' (quick)' if args.quick else ''} ...", file=sys.stderr, flush=True)
        rec = run_module(p, quick=args.quick)
        if rec["status"] != "ok":
            print(rec["traceback"], file=sys.stderr)
        payload["modules"].append(rec)
        payload["summary"] = summarize(payload["modules"])
        write_json(out, payload)  # after every module: an interrupted run keeps what finished

    s, m = payload["summary"], payload["machine"]
    print(
        f"{m['cpu_model']} ({m['cpu_usable']}/{m['cpu_count']} cpus), jax {m['jax_version']}, "
        f"numpy {m['numpy_version']}, {m['timestamp']}\n"
    )
    print(format_table(payload["modules"]))
    print(
        f"\n{s['benchmarks']} benchmarks in {s['modules']} modules: {s['passed']} passed, {s['failed']} failed, "
        f"{s['module_errors']} module errors. Wrote {out}"
    )
    return 1 if s["failed"] or s["module_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
