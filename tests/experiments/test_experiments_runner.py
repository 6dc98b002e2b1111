"""Runner and store through the Python API: outputs, resume, refusal to mix configurations,
task failures, crash debris, Dask execution — plus the gaussian-moments experiment's science."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import xarray as xr

from deepeft.errors import DeepEFTInputError
from deepeft.experiments import (
    Experiment,
    TaskFailed,
    open_executor,
    param,
    run_experiment,
    zcheck,
)
from deepeft.experiments.store import RunStore, normalize_result

TINY = {"activations": "relu,tanh,perceptron", "variances": "0.5,2.0", "n_samples": 20_000}

_FAIL_AT: set[int] = set()  # task indices the toy experiment fails on (test switch)


class Toy(Experiment):
    """Sample means of N(mu, 1): fast, no JAX — exercises the framework alone."""

    name = "toy-means"
    description = "sample means of N(mu, 1)"

    @dataclasses.dataclass(frozen=True)
    class Params:
        mus: tuple[float, ...] = param((0.0, 1.0, 2.0, 3.0), "means")
        n: int = param(4000, "samples per task", min=2)
        seed: int = param(0, "seed", min=0)
        max_z: float = param(5.0, "z bound", min=0.0, analysis=True)

    presets = {"quick": {}, "paper": {"n": 10**6}}

    def sweep(self, p):
        return {"mu": list(p.mus)}

    def coords(self, p):
        return {"stat": ["mean", "var"]}

    def compute(self, p, task, ctx):
        if ctx.index in _FAIL_AT:
            raise RuntimeError("boom")
        x = task["mu"] + ctx.rng().standard_normal(p.n)
        return {"stats": (("stat",), np.array([x.mean(), x.var(ddof=1)])), "n": p.n}

    def analyze(self, p, ds):
        return [
            zcheck(f"mean at mu={mu:g}", mu, ds.stats.sel(mu=mu, stat="mean"), np.sqrt(1.0 / p.n), max_z=p.max_z)
            for mu in p.mus
        ]


def _load(path):
    return xr.open_zarr(path / "data.zarr", zarr_format=3, consolidated=False).load()


def test_toy_run_outputs_and_resume(tmp_path):
    out = run_experiment(Toy(), tmp_path / "r")
    s = out.summary
    assert s["passed"] and s["n_checks"] == 4 and s["timing"]["tasks_run"] == 4
    ds = _load(tmp_path / "r")
    assert ds.stats.dims == ("mu", "stat") and list(ds.stat.values) == ["mean", "var"]
    assert ds.n.dims == ("mu",) and int(ds.n[0]) == 4000
    assert json.loads(ds.attrs["config"]) == {"mus": [0.0, 1.0, 2.0, 3.0], "n": 4000, "seed": 0, "max_z": 5.0}
    assert len(ds.attrs["task_seeds"]) == 4 and ds.attrs["deepeft_version"]

    again = run_experiment(Toy(), tmp_path / "r", resume=True)
    assert again.summary["timing"]["tasks_run"] == 0 and again.summary["timing"]["tasks_resumed"] == 4
    xr.testing.assert_identical(ds, _load(tmp_path / "r"))

    fresh = run_experiment(Toy(), tmp_path / "r")  # same config without --resume: start over
    assert fresh.summary["timing"]["tasks_run"] == 4
    xr.testing.assert_identical(ds, _load(tmp_path / "r"))


def test_refuses_to_mix_configurations(tmp_path):
    run_experiment(Toy(), tmp_path / "r", overrides={"n": 100})
    for resume in (False, True):
        with pytest.raises(DeepEFTInputError, match=r"Differences: n: stored 100, now 200"):
            run_experiment(Toy(), tmp_path / "r", overrides={"n": 200}, resume=resume)
    out = run_experiment(Toy(), tmp_path / "r", overrides={"n": 200}, overwrite=True)
    assert out.summary["params"]["n"] == 200
    with pytest.raises(DeepEFTInputError, match="holds a run of experiment 'toy-means'"):
        run_experiment("gaussian-moments", tmp_path / "r", overrides=TINY)


def test_resume_reanalyses_when_only_analysis_params_change(tmp_path):
    run_experiment(Toy(), tmp_path / "r")
    ds = _load(tmp_path / "r")
    out = run_experiment(Toy(), tmp_path / "r", overrides={"max_z": 1e-9}, resume=True)
    s = out.summary
    assert s["timing"]["tasks_run"] == 0 and s["timing"]["tasks_resumed"] == 4
    assert s["params"]["max_z"] == 1e-9 and not s["passed"]  # re-analysed with the new bound
    assert json.loads((tmp_path / "r" / "run.json").read_text())["params"]["max_z"] == 1e-9
    assert np.array_equal(ds.stats.values, _load(tmp_path / "r").stats.values)
    with pytest.raises(DeepEFTInputError, match=r"Differences: max_z.*pass --resume to re-analyse"):  # no --resume
        run_experiment(Toy(), tmp_path / "r", overrides={"max_z": 3.0})
    with pytest.raises(DeepEFTInputError, match=r"Differences: n: stored 4000, now 10"):  # compute params: refuse
        run_experiment(Toy(), tmp_path / "r", overrides={"n": 10, "max_z": 3.0}, resume=True)


def test_failed_task_keeps_finished_ones_and_resumes(tmp_path):
    _FAIL_AT.clear()
    _FAIL_AT.add(2)
    try:
        with pytest.raises(TaskFailed, match=r"task 2 \{'mu': 2.0\} failed with RuntimeError: boom.*--resume"):
            run_experiment(Toy(), tmp_path / "r")
    finally:
        _FAIL_AT.clear()
    assert RunStore(tmp_path / "r").finished() == {0, 1}
    assert not (tmp_path / "r" / "data.zarr").exists()
    out = run_experiment(Toy(), tmp_path / "r", resume=True)
    assert out.summary["timing"]["tasks_run"] == 2 and out.summary["timing"]["tasks_resumed"] == 2
    ref = run_experiment(Toy(), tmp_path / "ref")
    xr.testing.assert_identical(_load(tmp_path / "r"), _load(ref.out_dir))


def test_crash_debris_is_ignored_and_removed(tmp_path):
    run_experiment(Toy(), tmp_path / "r")
    store = RunStore(tmp_path / "r")
    (store.tasks_dir / "task-000001.npz").unlink()  # as if killed before task 1 was renamed into place
    (store.tasks_dir / ".tmp-0123-task-000001.npz").write_bytes(b"PK\x03\x04 truncated")
    (store.root / ".tmp-4567-data.zarr").mkdir()
    assert store.finished() == {0, 2, 3}
    out = run_experiment(Toy(), tmp_path / "r", resume=True)
    assert out.summary["timing"]["tasks_run"] == 1
    assert not list(store.tasks_dir.glob(".tmp-*")) and not list(store.root.glob(".tmp-*"))


def test_result_validation():
    assert normalize_result({"a": 1.0})["a"] == ((), np.asarray(1.0))
    with pytest.raises(TypeError, match="numeric"):
        normalize_result({"a": np.array(["x"])})
    with pytest.raises(TypeError, match="do not match"):
        normalize_result({"a": (("i",), np.zeros((2, 2)))})
    with pytest.raises(TypeError, match="non-empty dict"):
        normalize_result({})


def test_dask_executor_matches_in_process(tmp_path):
    ref = run_experiment(Toy(), tmp_path / "a")
    from distributed import Client, LocalCluster

    from deepeft.experiments.executors import DaskExecutor

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            ex = DaskExecutor(client, "test cluster")
            run_experiment(Toy(), tmp_path / "b", executor=ex)
            xr.testing.assert_identical(_load(ref.out_dir), _load(tmp_path / "b"))
            _FAIL_AT.add(1)
            try:
                with pytest.raises(TaskFailed, match="task 1"):
                    run_experiment(Toy(), tmp_path / "c", executor=ex)
            finally:
                _FAIL_AT.clear()


def test_open_executor_errors(monkeypatch):
    with pytest.raises(DeepEFTInputError, match="not both"):
        with open_executor("tcp://127.0.0.1:1", 2):
            pass
    from deepeft.experiments import ClusterUnavailable

    monkeypatch.setenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "1s")
    import dask

    dask.config.refresh()
    try:
        with pytest.raises(ClusterUnavailable, match="could not connect to the Dask scheduler"):
            with open_executor("tcp://127.0.0.1:9", None):
                pass
    finally:
        monkeypatch.delenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT")
        dask.config.refresh()


# ---------------------------------------------------------------------------------------------
# gaussian-moments: the registered self-contained experiment
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moments(tmp_path_factory):
    out = tmp_path_factory.mktemp("gm")
    return run_experiment("gaussian-moments", out, overrides=TINY)


def test_gaussian_moments_checks_pass(moments):
    s = moments.summary
    zs = {c["name"]: round(c["z"], 2) for c in s["checks"]}
    print("gaussian-moments z-scores:", zs)
    assert s["n_checks"] == 3 * 2 * 3 and s["passed"], [c for c in s["checks"] if not c["pass"]]
    assert max(abs(z) for z in zs.values()) < 5
    for c in s["checks"]:
        assert set(c) == {"name", "kind", "theory", "simulation", "stderr", "z", "pass", "rule"}
        assert c["kind"] == "prediction"


def test_gaussian_moments_theory_matches_closed_forms(moments):
    ds = _load(moments.out_dir)
    K = ds.K.values
    relu = ds.theory.sel(activation="relu")
    np.testing.assert_allclose(relu.sel(moment=1), np.sqrt(K / (2 * np.pi)), rtol=1e-13)  # ⟨ReLU⟩ = √(K/2π)
    np.testing.assert_allclose(relu.sel(moment=2), K / 2, rtol=1e-13)  # ⟨ReLU²⟩ = K/2
    np.testing.assert_allclose(relu.sel(moment=4), 3 * K**2 / 2, rtol=1e-13)  # ⟨ReLU⁴⟩ = 3K²/2
    np.testing.assert_allclose(ds.theory.sel(activation="perceptron"), 0.5, rtol=1e-13)  # step: P(z ≥ 0)
    np.testing.assert_allclose(ds.theory.sel(activation="tanh", moment=1), 0.0, atol=1e-15)  # odd


def test_gaussian_moments_store_layout(moments):
    d = moments.out_dir
    ds = _load(d)
    assert ds.simulation.dims == ("activation", "K", "moment")
    assert ds.theory.dims == ("activation", "K", "moment") and ds.stderr.dims == ds.simulation.dims
    assert list(ds.activation.values) == ["relu", "tanh", "perceptron"]
    assert ds.attrs["experiment"] == "gaussian-moments" and ds.attrs["seed"] == 0
    assert json.loads(ds.attrs["config"])["n_samples"] == 20_000
    assert (d / "moments.png").stat().st_size > 1000 and (d / "zscores.png").stat().st_size > 1000
    summary = json.loads((d / "summary.json").read_text())
    assert summary["figures"] == ["moments.png", "zscores.png"]
    html = (d / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "<script" not in html


def test_fresh_run_removes_only_its_own_files(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    (d / "notes.png").write_bytes(b"user file")  # not ours: must survive
    (d / "notes.txt").write_text("user file")
    run_experiment("gaussian-moments", d, overrides=dict(TINY, activations="relu", variances="1.0"))
    assert (d / "moments.png").exists()
    run_experiment(Toy(), d, overwrite=True)  # a different run replaces the old one's files
    assert not (d / "moments.png").exists() and not (d / "zscores.png").exists()
    assert (d / "notes.png").read_bytes() == b"user file" and (d / "notes.txt").exists()
    assert json.loads((d / "run.json").read_text())["experiment"] == "toy-means"
