"""An experiment module that fails to import fails `run` and `reproduce` (exit ≠ 0) and shows in the report."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from deepeft.cli import EXIT_TASK, app
from deepeft.experiments import registry, reproduce, run_experiment

TINY = {"activations": ["relu"], "variances": [1.0], "n_samples": 2000}


@pytest.fixture
def broken(monkeypatch):
    registry.discover()
    monkeypatch.setitem(registry._LOAD_ERRORS, "deepeft.experiments.broken_demo",
                        "Traceback ...\nImportError: cannot import name 'gone'")


def test_reproduce_fails_on_a_load_error(broken, tmp_path):
    s = reproduce(tmp_path, names=["gaussian-moments"], overrides={"gaussian-moments": TINY})
    assert not s["passed"] and "deepeft.experiments.broken_demo" in s["load_errors"]
    assert s["n_failed"] == 0  # the checks themselves pass: only the load error fails the run
    html = (tmp_path / "report.html").read_text()
    assert "failed to import" in html and "broken_demo" in html and "cannot import name" in html
    assert json.loads((tmp_path / "summary.json").read_text())["load_errors"]


def test_run_fails_on_a_load_error(broken, tmp_path):
    out = run_experiment("gaussian-moments", tmp_path, overrides=TINY)
    assert not out.passed and out.summary["load_errors"]
    assert "broken_demo" in (tmp_path / "report.html").read_text()


def test_cli_exit_codes_on_a_load_error(broken, tmp_path):
    sets = [x for k, v in TINY.items() for x in ("--set", f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}")]
    r = CliRunner().invoke(app, ["run", "gaussian-moments", *sets, "--out", str(tmp_path / "one")])
    assert r.exit_code == EXIT_TASK, r.output
    rsets = [x for s in sets[1::2] for x in ("--set", f"gaussian-moments.{s}")]
    r = CliRunner().invoke(app, ["reproduce", "--only", "gaussian-moments", *rsets, "--out", str(tmp_path / "all")])
    assert r.exit_code == EXIT_TASK, r.output
    assert "broken_demo" in r.output


def test_no_load_errors_in_this_installation():
    assert registry.load_errors() == {}
