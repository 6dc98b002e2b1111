"""benchmarks/run.py: discovery, -k selection, table, JSON with machine info, failing modules as rows."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def runner():
    spec = importlib.util.spec_from_file_location("_bench_runner_under_test", RUNNER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


GOOD = '''
import numpy as np
from _helper import SCALE  # a helper module next to the benchmarks

def run(quick: bool = False) -> list[dict]:
    n = 10 if quick else 1000
    return [
        {"name": "sum", "seconds": 0.0125 * SCALE, "target": 0.05, "ratio": np.float64(0.25), "passed": True,
         "notes": f"n={n}", "gflops": np.float32(3.5), "n": n},
        {"name": "slow_thing", "seconds": 2.0, "target": 1.0, "ratio": 2.0, "passed": False, "speedup": float("nan")},
    ]
'''
CRASH = '''
def run(quick: bool = False):
    raise RuntimeError("kernel exploded")
'''
BAD_ROWS = '''
def run(quick: bool = False):
    return [{"name": "no_seconds"}]
'''
NO_RUN = "x = 1\n"


@pytest.fixture
def bench_dir(tmp_path):
    d = tmp_path / "benchmarks"
    d.mkdir()
    (d / "_helper.py").write_text("SCALE = 1.0\n")
    (d / "bench_alpha.py").write_text(textwrap.dedent(GOOD))
    (d / "bench_crash.py").write_text(textwrap.dedent(CRASH))
    (d / "bench_zbad.py").write_text(textwrap.dedent(BAD_ROWS))
    (d / "bench_norun.py").write_text(NO_RUN)
    (d / "not_a_bench.py").write_text("raise SystemExit('must not be imported')\n")
    return d


def test_discover_and_select(runner, bench_dir):
    names = [p.name for p in runner.discover(bench_dir)]
    assert names == ["bench_alpha.py", "bench_crash.py", "bench_norun.py", "bench_zbad.py"]
    pick = lambda pats: [p.stem for p in runner.discover(bench_dir) if runner.selected(p, pats)]  # noqa: E731
    assert pick(None) == ["bench_alpha", "bench_crash", "bench_norun", "bench_zbad"]
    assert pick(["alpha"]) == ["bench_alpha"]
    assert pick(["ALPHA"]) == ["bench_alpha"]
    assert pick(["bench_c*"]) == ["bench_crash"]
    assert pick(["z*", "alpha.py"]) == ["bench_alpha", "bench_zbad"]
    assert pick(["nothing"]) == []


def test_main_runs_all_and_reports_failures_as_rows(runner, bench_dir, capsys):
    out = bench_dir / "results" / "all.json"
    rc = runner.main(["--dir", str(bench_dir), "--quick"])
    assert rc == 1  # a module errored and a benchmark failed its target
    text = capsys.readouterr().out
    lines = text.splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.startswith("module"))
    table = lines[header : header + 2 + 6]
    # aligned: the "seconds" column ends at the same offset in every row (right-aligned numbers)
    end = table[0].index("seconds") + len("seconds")
    assert table[2][:end].endswith("0.0125") and table[3][:end].endswith("2")
    assert "alpha" in table[2] and "sum" in table[2] and "yes" in table[2] and "n=10" in table[2]
    assert "gflops=3.5" in table[2]
    assert "slow_thing" in table[3] and "NO" in table[3]
    crash = next(ln for ln in table if ln.startswith("crash"))
    assert "ERROR" in crash and "RuntimeError: kernel exploded" in crash
    assert "no finite number 'seconds'" in next(ln for ln in table if ln.startswith("zbad"))
    assert "defines no run" in next(ln for ln in table if ln.startswith("norun"))
    assert "4 modules: 1 passed, 1 failed, 3 module errors" in text

    data = json.loads(out.read_text())
    m = data["machine"]
    assert m["cpu_count"] >= 1 and m["cpu_model"] and m["numpy_version"] and m["jax_version"]
    assert m["timestamp"].endswith("+00:00") and data["quick"] is True
    mods = {rec["module"]: rec for rec in data["modules"]}
    assert mods["bench_alpha"]["status"] == "ok" and mods["bench_crash"]["status"] == "error"
    assert "kernel exploded" in mods["bench_crash"]["traceback"]
    r0, r1 = mods["bench_alpha"]["results"]
    assert r0 == {"name": "sum", "seconds": 0.0125, "target": 0.05, "ratio": 0.25, "passed": True,
                  "notes": "n=10", "gflops": 3.5, "n": 10}  # fmt: skip
    assert r1["speedup"] is None  # NaN → null: strict JSON
    assert data["summary"] == {"modules": 4, "module_errors": 3, "benchmarks": 2, "passed": 1, "failed": 1}


def test_k_selects_and_exit_zero_when_all_pass(runner, tmp_path, capsys):
    d = tmp_path / "b"
    d.mkdir()
    (d / "bench_ok.py").write_text("def run(quick=False):\n    return [{'name': 'x', 'seconds': 1, 'passed': True}]\n")
    (d / "bench_crash.py").write_text(textwrap.dedent(CRASH))
    out = tmp_path / "o.json"
    assert runner.main(["--dir", str(d), "-k", "ok", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r["module"] for r in data["modules"]] == ["bench_ok"] and data["quick"] is False
    assert data["patterns"] == ["ok"]
    assert runner.main(["--dir", str(d), "-k", "nomatch", "--out", str(out)]) == 2
    assert runner.main(["--dir", str(d), "--list"]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == ["bench_crash.py", "bench_ok.py"]


def test_command_line_entry_point(tmp_path):
    d = tmp_path / "b"
    d.mkdir()
    (d / "bench_one.py").write_text(
        "import sys\ndef run(quick=False):\n    return [{'name': 'q' if quick else 'full', 'seconds': 0.5}]\n"
    )
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "--dir", str(d), "--quick"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert " q " in proc.stdout + " " and "0.5" in proc.stdout
    assert json.loads((d / "results" / "all.json").read_text())["modules"][0]["results"][0]["name"] == "q"


def test_row_keys_are_validated(runner, tmp_path):
    """A misspelt pass flag ({"pass": True}: the runner reads "passed") is an error, not an uncounted row."""
    with pytest.raises(TypeError, match="unknown key 'pass'"):
        runner._check_rows([{"name": "k", "seconds": 1.0, "target": 2.0, "pass": True}])
    with pytest.raises(TypeError, match="did you mean 'passed'"):
        runner._check_rows([{"name": "k", "seconds": 1.0, "pased": True}])
    for alias in ("ok", "success", "status"):
        with pytest.raises(TypeError, match="unknown key"):
            runner._check_rows([{"name": "k", "seconds": 1.0, alias: True}])
    # free-form metrics stay allowed
    assert runner._check_rows([{"name": "k", "seconds": 1.0, "seconds_all": [1.0], "gflops": 3.0}])
    (tmp_path / "bench_typo.py").write_text(
        'def run(quick=False):\n    return [{"name": "k", "seconds": 5.0, "target": 1.0, "pass": False}]\n')
    rec = runner.run_module(tmp_path / "bench_typo.py")
    assert rec["status"] == "error" and "'pass'" in rec["error"]


def test_no_row_passes_without_its_target_met(runner):
    with pytest.raises(TypeError, match="target is not met"):
        runner._check_rows([{"name": "slow", "seconds": 2.0, "target": 1.0, "passed": True}])
    with pytest.raises(TypeError, match="target is not met"):
        runner._check_rows([{"name": "speedup", "seconds": 0.1, "target": 50.0, "value": 20.0, "better": "higher",
                             "passed": True}])
    with pytest.raises(TypeError, match="'better'"):
        runner._check_rows([{"name": "x", "seconds": 0.1, "target": 1.0, "better": "up", "passed": True}])
    ok = runner._check_rows([
        {"name": "fast", "seconds": 0.5, "target": 1.0, "passed": True},
        {"name": "speedup", "seconds": 9.0, "target": 50.0, "value": 60.0, "better": "higher", "passed": True},
        {"name": "slow, honest", "seconds": 2.0, "target": 1.0, "passed": False},
    ])
    assert [r["passed"] for r in ok] == [True, True, False]


def test_bench_modules_use_the_reserved_keys():
    """Every bench module writes 'passed' (never 'pass') and states 'better' where higher is better."""
    import re

    for path in sorted(RUNNER.parent.glob("bench_*.py")):
        src = path.read_text()
        assert not re.search(r'"pass"\s*:', src), path.name
