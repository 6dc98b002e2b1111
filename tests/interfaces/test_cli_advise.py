"""``deepeft advise`` (issue 15 item 4) in-process through typer's CliRunner: the JSON equals ``de.advise(...).to_dict()``,
the HTML page is written, exit codes 0 / 1 (--strict) / 2 (bad input) / 3 (residual not available)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import deepeft as de
from deepeft.cli import app

pytestmark = pytest.mark.filterwarnings("ignore::deepeft.DeepEFTWarning")


@pytest.fixture(autouse=True)
def _no_persistent_cache(monkeypatch):
    monkeypatch.setenv("DEEPEFT_JAX_CACHE", "0")  # keep the test process's JAX config untouched


def run(*args):
    return CliRunner().invoke(app, ["advise", *map(str, args)])


def test_json_equals_python_api():
    r = run("--activation", "tanh", "--depth", "6", "--width", "32", "--C-W", "1.5", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    net = de.MLP(10, [32] * 5, 1, "tanh", C_b=0.0, C_W=1.5)
    ref = de.advise(net).to_dict()
    assert d["command"] == "advise" and d["html"] is None
    for k in ref:
        assert d[k] == ref[k], k
    assert d["criticality"]["at_critical_point"] is False


def test_table_defaults_to_critical_and_strict_exit(tmp_path):
    r = run("--activation", "relu", "--depth", "4", "--width", "64")
    assert r.exit_code == 0 and "verdict" in r.stdout and "critical" in r.stdout, r.output
    r = run("--activation", "relu", "--depth", "4", "--width", "64", "--C-W", "3", "--strict")
    assert r.exit_code == 1 and "use C_b = 0, C_W = 2" in r.stdout, r.output
    r = run("--activation", "relu", "--widths", "64,32,64", "--C-W", "2", "--C-b", "0", "--html", tmp_path / "a.html")
    assert r.exit_code == 0 and (tmp_path / "a.html").is_file(), r.output
    assert "data:image/png;base64," in (tmp_path / "a.html").read_text()
    r = run("--activation", "leaky_relu", "--param", "slope=0.5", "--depth", "3", "--width", "16", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["critical_point"]["C_W"] == pytest.approx(2 / (1 + 0.5**2), rel=1e-12)  # 1/A₂ (5.67)


@pytest.mark.parametrize("args, code, match", [
    (("--activation", "tnah"), 2, "tanh"),
    (("--activation", "relu", "--gamma", "1.0"), 2, "no critical initialization"),
    (("--activation", "relu", "--gamma", "-0.1"), 2, "0 ≤ γ < 1"),
    (("--activation", "relu", "--widths", "64,2.5"), 2, "--widths must be whole numbers"),
    (("--activation", "relu", "--C-W", "abc"), 2, "--C-W must be a number"),
    (("--activation", "sigmoid"), 2, "pass --C-W and --C-b"),
    (("--activation", "relu", "--param", "slope"), 2, "KEY=VALUE"),
    (("--activation", "relu", "--html", "out.png"), 2, ".html"),
    (("--activation", "relu", "--html", "no/such/dir/a.html"), 2, "does not exist"),
])
def test_bad_input_exit_codes(args, code, match):
    r = run(*args)
    assert r.exit_code == code and match in r.stderr and "Traceback" not in r.output, (r.exit_code, r.output)


def test_bad_input_json_error_object():
    r = run("--activation", "relu", "--gamma", "1.5", "--json")
    assert r.exit_code == 2 and json.loads(r.stdout)["error"]["exit_code"] == 2


def test_persistent_cache_failure_warns_with_what_to_do(tmp_path, monkeypatch):
    """A cache folder that cannot be created (here: under a file) leaves JAX's config alone and says what to set."""
    from deepeft.cli_advise import _enable_compilation_cache

    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("DEEPEFT_JAX_CACHE", str(blocker / "cache"))
    with pytest.warns(de.DeepEFTWarning, match="Set DEEPEFT_JAX_CACHE to a writable folder"):
        _enable_compilation_cache()
