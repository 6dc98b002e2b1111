"""``deepeft predict`` / ``deepeft evidence`` as real subprocesses: outputs equal the Python API; clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import deepeft as de
from deepeft.cli import app

_SCRIPT = Path(sys.executable).with_name("deepeft")
_CMD = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "deepeft.cli"]


def cli(*args, cwd):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONWARNINGS="ignore")
    return subprocess.run([*_CMD, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_learning")
    rng = np.random.default_rng(0)
    XA, YA, XB = rng.standard_normal((8, 3)), rng.standard_normal((8, 2)), rng.standard_normal((3, 3))
    np.save(d / "xa.npy", XA)
    np.savetxt(d / "ya.csv", YA, delimiter=",", header="y1,y2", comments="")
    np.save(d / "xb.npy", XB)
    return d, XA, YA, XB


def test_predict_gd_zarr_and_npy_equal_api(files):
    d, XA, YA, XB = files
    r = cli("predict", "xa.npy", "ya.csv", "xb.npy", "--t", "0,5,inf", "--eta", "0.01", "--depth", "3",
            "--activation", "tanh", "--C-b", "0.1", "--out", "p.zarr", cwd=d)
    assert r.returncode == 0, r.stderr
    net = de.MLP(3, [1000] * 2, 2, "tanh", C_b=0.1)
    ref = de.gd_prediction(net, XA, YA, XB, np.array([0, 5, np.inf]), eta=0.01)
    ds = xr.open_zarr(d / "p.zarr", consolidated=False)
    np.testing.assert_allclose(ds["mean"].values, ref.mean, rtol=1e-12)
    np.testing.assert_allclose(ds["cov"].values, ref.cov, rtol=1e-12)
    r = cli("predict", "xa.npy", "ya.csv", "xb.npy", "--method", "bayes", "--noise", "0.01", "--depth", "3",
            "--activation", "tanh", "--C-b", "0.1", "--out", "b.npy", cwd=d)
    assert r.returncode == 0, r.stderr
    post = de.nngp_posterior(net, XA, YA, XB, noise=0.01)
    np.testing.assert_allclose(np.load(d / "b.mean.npy"), post.mean, rtol=1e-12)
    np.testing.assert_allclose(np.load(d / "b.cov.npy"), post.cov, rtol=1e-12)


def test_evidence_grid_json(files):
    d, XA, YA, _ = files
    r = cli("evidence", "xa.npy", "ya.csv", "--C-W", "0.5,1,2", "--depth", "2,3", "--activation", "relu,tanh",
            "--noise", "0.1", "--json", cwd=d)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["dims"] == ["activation", "C_b", "C_W", "depth", "noise"]
    b = out["best"]
    net = de.MLP(3, [1000] * (b["depth"] - 1), 2, b["activation"], C_b=b["C_b"], C_W=b["C_W"])
    assert b["log_evidence"] == pytest.approx(de.log_evidence(net, XA, YA, noise=0.1), rel=1e-12)
    assert np.asarray(out["posterior"]).sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "args, match",
    [
        (("predict", "xa.npy", "ya.csv", "xb.npy", "--eta", "100", "--t", "3"), "2/λ_max"),
        (("predict", "xa.npy", "ya.csv", "missing.npy"), "does not exist"),
        (("predict", "xa.npy", "ya.csv", "xb.npy", "--method", "mle"), "--method"),
        (("predict", "xa.npy", "ya.csv", "xb.npy", "--t", "-1"), "t must be >= 0"),
        (("evidence", "xa.npy", "xb.npy"), "rows"),
        (("predict", "xa.npy", "ya.csv", "xb.npy", "--out", "p.txt"), "--out"),
    ],
)
def test_errors_exit_2_with_message(files, args, match, monkeypatch):
    """In-process (typer's CliRunner: same code path, no interpreter start-up per case)."""
    from typer.testing import CliRunner

    monkeypatch.chdir(files[0])
    r = CliRunner().invoke(app, list(args))
    assert r.exit_code == 2, r.output
    assert "error:" in r.output and match in r.output


def test_error_as_subprocess(files):
    r = cli("predict", "xa.npy", "ya.csv", "xb.npy", "--eta", "100", "--t", "3", cwd=files[0])
    assert r.returncode == 2 and "2/λ_max" in r.stderr


@pytest.mark.parametrize("args, match", [
    (("predict", "strings.npy", "ya.csv", "xb.npy"), "not real numbers"),
    (("predict", "empty.npy", "ya.csv", "xb.npy"), "empty array of shape (0, 3)"),
    (("predict", "xa.npy", "ya.csv", "xb.npy", "--depth", "2.5"), "--depth must be whole numbers"),
    (("evidence", "xa.npy", "ya.csv", "--depth", "2,3.5"), "--depth must be whole numbers"),
    (("learning-rates", "--C-W", "abc"), "--C-W must be a number"),
    (("evidence", "xa.npy", "ya.csv", "--activation", ","), "at least one activation"),
    (("learning-rates", "--eta", "0"), "eta must be > 0"),
])
def test_bad_input_is_one_line_exit_2(files, args, match):
    """Each of these printed a traceback (exit 1 or 4) before: now one line, exit 2."""
    d = files[0]
    np.save(d / "strings.npy", np.array(["a", "b"]))
    np.save(d / "empty.npy", np.zeros((0, 3)))
    r = cli(*args, cwd=d)
    assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0, r.stderr  # one line
