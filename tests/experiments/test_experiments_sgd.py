"""The SGD phase-diagram experiments (sgd-phase-diagram, sgd-linear-scaling, sgd-finite-size) at reduced
size with fixed seeds: outputs exist, every check is computed and passes, the member chunks assemble
into one ensemble, and the qualitative checks do fail when the phase structure is destroyed."""

from __future__ import annotations

import numpy as np
import pytest

from _expt import assert_complete_run, load_dataset
from deepeft.errors import DeepEFTInputError
from deepeft.experiments import _sgd_common as sc
from deepeft.experiments import available_experiments, get_experiment, resolve_params, run_experiment
from deepeft.experiments.sgd_linear_scaling import _transition_ratio_check

SMALL = {
    "sgd-phase-diagram": {"temperatures": [2.0**-5, 0.5, 1.0, 4.0], "inv_sigma_W": [2.0**-8, 8.0], "members": 8,
                          "members_per_task": 3, "steps": 16_000, "n_records": 8,
                          # 8 members (binomial noise ±0.18 per fraction) on a 4-octave T gap: measured 0.30 ± 0.23
                          "dbm_transition_factor": 5.0,
                          # 8 members: the corner loss ratio (≈ 170 ± 45 here) resolves ≥ 20 at z ≥ 3, not the preset's ≥ 100
                          "loss_ratio": 20.0},
    "sgd-linear-scaling": {"temperatures": [0.125, 4.0], "batch_sizes": [2, 4], "members": 8, "steps": 3000,
                           "n_records": 4},
    "sgd-finite-size": {"n1": [32, 64], "n2": [16, 32], "temperatures": [2.0**-5, 1.0, 4.0], "members": 8,
                        "steps": 8000, "n_records": 4, "loss_ratio": 20.0},  # 8 members: ratio ≈ 140 ± 60
}


_load = load_dataset


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sgd")
    return {name: (run_experiment(name, root / name, preset="quick", overrides=over), root / name)
            for name, over in SMALL.items()}


@pytest.mark.parametrize("name", list(SMALL))
def test_checks_pass_and_outputs_exist(runs, name):
    res, path = runs[name]
    s = res.summary
    for c in s["checks"]:
        print(("PASS" if c["pass"] else "FAIL"), c["name"], c["simulation"], c["z"])
    assert_complete_run(s, path)


def test_registered_with_presets():
    names = available_experiments()
    for n in SMALL:
        assert n in names
        e = get_experiment(n)
        assert set(e.presets) >= {"quick", "paper"}
        assert resolve_params(e, "paper").members == 100
    p = resolve_params("sgd-phase-diagram", "paper")
    assert len(p.temperatures) == 12 and len(p.inv_sigma_W) == 12 and p.steps == 100_000 and p.batch_size == 4
    assert len(get_experiment("sgd-phase-diagram").tasks(p)) == 10  # member chunks


def test_phase_diagram_dataset_and_check_set(runs):
    res, path = runs["sgd-phase-diagram"]
    ds = _load(path)
    # 8 members in chunks of 3, 3, 2 assembled into one ensemble
    assert ds.sizes["member"] == 8 and ds.sizes["T"] == 4 and ds.sizes["inv_sigma_W"] == 2
    assert ds.test_loss.dims == ("time", "member", "T", "inv_sigma_W")
    assert ds.eig_phase.dims == ("time", "member", "phase", "level") and ds.sizes["level"] == 16
    assert list(ds.phase.values) == list(sc.PHASES)
    assert np.all((ds.dbm_fraction >= 0) & (ds.dbm_fraction <= 1))
    # chunks are independent ensembles: no two members share a teacher
    te = ds.teacher_eigenvalues.values
    assert len({tuple(np.round(r, 10)) for r in te}) == te.shape[0]
    names = [c["name"] for c in res.summary["checks"]]
    for key in ("loss: paramagnetic", "loss: jamming", "alignment: ordered corner > paramagnetic",
                "memory: G(t_f,0) jamming", "transition temperature", "closed form vs paper 0.046",
                "closed form vs paper 190000", "MP second moment", "DBM (4.15)", "(2.24) Wishart couplings",
                "(2.7) loss as energy"):
        assert any(key in n for n in names), key
    # common random numbers: the initial spectrum is the same draw scaled by σ_W² in every column
    e = ds.eig_init.values
    np.testing.assert_allclose(e[:, 0] * 2.0**-16, e[:, 1] * 2.0**6, rtol=1e-4)


def test_phase_checks_fail_without_phase_structure(runs):
    """Give every point the ordered corner's loss/alignment/G: the structure checks must fail."""
    _, path = runs["sgd-phase-diagram"]
    exp = get_experiment("sgd-phase-diagram")
    p = resolve_params(exp, "quick", overrides=SMALL["sgd-phase-diagram"])
    ds = _load(path)
    flat = ds.copy()
    for k in ("test_loss", "alignment", "G"):
        flat[k] = ds[k].isel(T=0, inv_sigma_W=-1).broadcast_like(ds[k]).copy()
    failed = {c.name.split(":")[0] for c in exp.analyze(p, flat) if not c.passed}
    assert {"loss", "alignment", "memory"} <= failed, failed


def test_linear_scaling_paired_and_detects_wrong_temperature(runs):
    res, path = runs["sgd-linear-scaling"]
    ds = _load(path)
    assert ds.test_loss.dims == ("batch", "member", "T", "inv_sigma_W")
    # T* ratio for |B| = 2, and the loss at T = 1/8 (ε = 0.25, 0.5 ≤ max_lr); T = 4 (ε ≥ 8) only through T*
    # plus the first-step loss drop at T = 1/8 for |B| = 2 and 4 (T|B| ≤ max_lr)
    names = [c["name"] for c in res.summary["checks"] if not c["name"].startswith("first-step")]
    assert len(names) == 2 and names[0].startswith("loss transition T*") and "T=0.125" in names[1]
    first = [c for c in res.summary["checks"] if c["name"].startswith("first-step")]
    assert [("|B|=2" in c["name"], "|B|=4" in c["name"]) for c in first] == [(True, False), (False, True)]
    assert all(c["kind"] == "prediction" and c["pass"] and "allowance" in c["rule"] for c in first)
    # a different temperature is not the same phase: comparing T = 1/8 with T = 4 fails
    exp = get_experiment("sgd-linear-scaling")
    p = resolve_params(exp, "quick", overrides=SMALL["sgd-linear-scaling"])
    bad = ds.copy()
    bad["test_loss"] = ds.test_loss.copy()
    bad["test_loss"].loc[{"batch": 2}] = ds.test_loss.sel(batch=4).roll(T=1).values
    failed = [c.name for c in exp.analyze(p, bad) if not c.passed]
    assert any(n.startswith("loss transition") for n in failed) and any(n.startswith("test loss") for n in failed)
    # a transition moved by more than the allowed factor fails: shift |B| = 2's loss curve by 4× in T
    T = np.asarray(p.temperatures)
    r = _transition_ratio_check("t", np.r_[T, 8 * T[-1:]], np.c_[ds.test_loss.sel(batch=4).squeeze().values[:, :1],
                                ds.test_loss.sel(batch=4).squeeze().values],
                                np.c_[ds.test_loss.sel(batch=4).squeeze().values,
                                      ds.test_loss.sel(batch=4).squeeze().values[:, -1:]], 2.0, 0)
    assert not r.passed and r.simulation > 2.0


def test_finite_size_edge_and_widths(runs):
    res, path = runs["sgd-finite-size"]
    ds = _load(path)
    assert list(ds.n1.values) == [32, 64] and list(ds.n2.values) == [16, 32]
    assert ds.x_max_init.dims == ("width", "member", "inv_sigma_W")
    assert any("MP edge deviation" in c["name"] for c in res.summary["checks"])


def test_helpers():
    assert sc.member_tasks(8, 3) == [{"chunk": 0, "members": 3}, {"chunk": 1, "members": 3},
                                     {"chunk": 2, "members": 2}]
    T = np.array([0.25, 0.5, 1.0, 2.0])
    assert sc.transition_temperature(T, [1e-4, 1e-4, 1e-2, 1e-2]) == pytest.approx(0.7071, rel=1e-3)
    assert np.isnan(sc.transition_temperature(T, [1e-2, 1e-3, 1e-4, 1e-5]))
    c = sc.ratio_check("r", 200.0, 10.0, 1.0, 0.1, 100.0, "ratio")
    assert c.passed and c.simulation == pytest.approx(200.0)
    assert not sc.ratio_check("r", 50.0, 1.0, 1.0, 0.1, 100.0, "ratio").passed
    assert not sc.greater_check("g", 1.0, 0.5, 0.9, 0.5, min_z=3.0, what="d").passed
    x = np.random.default_rng(0).normal(1.0, 0.1, 50)
    ok = sc.factor_check("f", lambda idx: 1.5 * x[idx].mean() / x[idx].mean(), 50, 2.0, "r")
    assert ok.passed and ok.simulation == pytest.approx(1.5) and ok.stderr == pytest.approx(0.0, abs=1e-12)
    bad = sc.factor_check("f", lambda idx: 3 * x[idx].mean(), 50, 2.0, "r")
    assert not bad.passed and bad.stderr > 0
    assert not sc.factor_check("f", lambda idx: np.nan, 50, 2.0, "r").passed
    se = sc.bootstrap_se(lambda idx: x[idx].mean(), 50, 0, 400)  # ≈ σ/√n of the mean
    assert se == pytest.approx(x.std() / np.sqrt(50), rel=0.15)
    assert np.isnan(sc.bootstrap_se(lambda idx: np.inf, 50))


@pytest.mark.parametrize("over, msg", [
    ({"temperatures": [1.0, 0.5]}, "increasing"),
    ({"inv_sigma_W": [8.0]}, "at least 2"),
    ({"transition_range": [4.0, 1.0]}, "transition_range"),
])
def test_bad_parameters(over, msg):
    with pytest.raises(DeepEFTInputError, match=msg):
        resolve_params("sgd-phase-diagram", "quick", overrides=over)
    with pytest.raises(DeepEFTInputError, match="reference_batch"):
        resolve_params("sgd-linear-scaling", "quick", overrides={"batch_sizes": [2, 8]})
    with pytest.raises(DeepEFTInputError, match="same number"):
        resolve_params("sgd-finite-size", "quick", overrides={"n1": [32, 64], "n2": [16]})
